"""Step functions: one training or evaluation step on one batch, and many
steps inside one `tf.function`.

`make_train_step` and `make_eval_step` return plain Python callables
`step(batch) -> dict of scalar tensors`. They hold no loop and no strategy, so
a user can call them eagerly, wrap them in `tf.function`, hand them to
`strategy.run` (see `distribute_step`) or drive them with `run_steps`, which is
how the trainer runs `steps_per_loop` steps per Python round trip (Orbit's
inner loop).

A batch is the dict of DESIGN.md: `{"image": [B,H,W,C] raw band values,
"label": [B,H,W] uint8}` with ignore index 255.
"""
from __future__ import annotations

import weakref
from typing import Callable, Mapping, Optional

import tensorflow as tf

Batch = Mapping[str, tf.Tensor]
Logs = dict
StepFn = Callable[[Batch], Logs]
# (step int64 tensor) -> learning rate, or (learning rate, momentum).
Schedule = Callable[[tf.Tensor], "tf.Tensor | tuple[tf.Tensor, tf.Tensor]"]


def _replica_count() -> int:
    """Replicas the gradient will be summed over (1 outside a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def _assign_schedule(optimizer, schedule: Optional[Schedule], step: tf.Tensor) -> None:
    if schedule is None:
        return
    values = schedule(step)
    if isinstance(values, (tuple, list)):
        lr, momentum = values
        optimizer.momentum.assign(tf.cast(momentum, optimizer.momentum.dtype))
    else:
        lr = values
    optimizer.learning_rate.assign(tf.cast(lr, optimizer.learning_rate.dtype))


def make_train_step(model, loss_fn, optimizer, *, schedule: Optional[Schedule] = None,
                    step_counter: Optional[tf.Variable] = None, loss_scale=None,
                    clip_norm: Optional[float] = None, metrics=None,
                    decay_variables=None) -> StepFn:
    """Builds `train_step(batch) -> logs`.

    One step: the learning rate and momentum are assigned from `schedule` at
    the current step, the forward pass runs under `GradientTape` in the
    model's policy, the loss runs in float32 on float32 logits, the loss is
    scaled under float16 (`loss_scale`, a `core.precision.DynamicLossScale`),
    gradients are unscaled, optionally clipped by global norm, and applied by
    `optimizer` (a `core.optim.SGD`); a step whose float16 gradients are not
    finite is skipped and the scale halved. Batch-norm moving averages update
    in the forward pass (`training=True`). `metrics` (a
    `core.metrics.ConfusionMatrix`) accumulates the argmax predictions.

    Under `tf.distribute` the per-replica loss is divided by the number of
    replicas before differentiation, so summed gradients equal the gradient
    of the global-batch mean for pixel-mean losses (cross-entropy, focal)
    with equal valid pixels per replica; region losses (Jaccard, Dice,
    Lovasz) are computed over each replica's batch and averaged.

    Args:
      model: callable `model(images, training=bool) -> logits [B,H,W,K]
        float32` with `trainable_variables` (e.g. `layers.UNet`).
      loss_fn: `loss_fn(labels [B,H,W] uint8, logits) -> scalar float32`.
      optimizer: object with `apply(grads, variables, decay_variables=...)`
        and float32 variables `learning_rate`, `momentum`.
      schedule: `schedule(step) -> lr` or `(lr, momentum)`; None keeps the
        optimizer's current values (e.g. driven by ReduceOnPlateau).
      step_counter: int64 variable incremented once per applied-or-skipped
        step; the schedule reads it. Defaults to a new variable
        (`train_step.step_counter`).
      loss_scale: a DynamicLossScale, or None (float32/bfloat16).
      clip_norm: clip gradients to this global norm when given.
      metrics: a ConfusionMatrix, or None.
      decay_variables: passed to `optimizer.apply`; defaults to
        `model.decay_variables` when the model has it.

    Returns:
      `train_step(batch) -> {"loss", "lr", "momentum", "grad_norm",
      "loss_scale"}`, scalar float32 tensors; `loss` is this replica's
      unscaled loss.
    """
    if step_counter is None:
        step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    if decay_variables is None:
        decay_variables = getattr(model, "decay_variables", None)

    def train_step(batch: Batch) -> Logs:
        images, labels = batch["image"], batch["label"]
        _assign_schedule(optimizer, schedule, step_counter)
        if hasattr(optimizer, "begin_step"):  # frozen flags of parameter groups (core.optim)
            optimizer.begin_step()
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.cast(loss_fn(labels, tf.cast(logits, tf.float32)), tf.float32)
            objective = loss / tf.cast(_replica_count(), tf.float32)
            if loss_scale is not None:
                objective = loss_scale.scale_loss(objective)
        variables = model.trainable_variables
        grads = tape.gradient(objective, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Sum over replicas here, not in the optimizer, so the norm, the
            # clipping and the finiteness check see the global gradient and
            # every replica takes the same decision.
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        finite = None
        if loss_scale is not None:
            grads, finite = loss_scale.unscale(grads)
        grad_norm = tf.linalg.global_norm(grads)
        if clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
        # A float16 overflow (finite=False) leaves variables and slots as they
        # were; `finite` masks the update instead of a tf.cond, which would
        # hold the optimizer's merge_call and is illegal under strategy.run.
        optimizer.apply(grads, variables, decay_variables=decay_variables, finite=finite,
                        aggregate_gradients=False)
        if loss_scale is not None:
            loss_scale.update(finite)
        step_counter.assign_add(1)
        if metrics is not None:
            metrics.update(labels, tf.argmax(logits, axis=-1, output_type=tf.int32))
        scale = loss_scale.scale if loss_scale is not None else tf.constant(1.0)
        return {
            "loss": loss,
            "lr": tf.identity(optimizer.learning_rate),
            "momentum": tf.identity(optimizer.momentum),
            "grad_norm": tf.cast(grad_norm, tf.float32),
            "loss_scale": tf.cast(scale, tf.float32),
        }

    train_step.step_counter = step_counter
    return train_step


def make_eval_step(model, loss_fn=None, metrics=None) -> StepFn:
    """Builds `eval_step(batch) -> {"loss"}` (inference mode, no update).

    `metrics` (a ConfusionMatrix) accumulates argmax predictions; the loss is
    0 when `loss_fn` is None.
    """

    def eval_step(batch: Batch) -> Logs:
        logits = tf.cast(model(batch["image"], training=False), tf.float32)
        if metrics is not None:
            metrics.update(batch["label"], tf.argmax(logits, axis=-1, output_type=tf.int32))
        loss = loss_fn(batch["label"], logits) if loss_fn is not None else tf.constant(0.0)
        return {"loss": tf.cast(loss, tf.float32)}

    return eval_step


def distribute_step(strategy: tf.distribute.Strategy, step: StepFn) -> StepFn:
    """Runs `step` on every replica of `strategy`; logs averaged over replicas.

    The returned callable takes a per-replica (distributed) batch, as produced
    by `strategy.distribute_datasets_from_function`.
    """

    def distributed(batch):
        per_replica = strategy.run(step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    return distributed


_LOOPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _loop_for(step: StepFn, jit_compile: bool):
    """One traced loop per (step, jit) so repeated calls never retrace."""
    cache = _LOOPS.setdefault(step, {})
    if jit_compile not in cache:
        inner = tf.function(step, jit_compile=True) if jit_compile else step

        @tf.function
        def loop(iterator, num_steps):
            # The first step runs before the loop: it fixes the structure of
            # the logs the loop carries.
            logs = inner(next(iterator))
            loss_sum = logs["loss"]
            finite = tf.math.is_finite(logs["loss"])
            for _ in tf.range(num_steps - 1):
                logs = inner(next(iterator))
                loss_sum += logs["loss"]
                finite = tf.logical_and(finite, tf.math.is_finite(logs["loss"]))
            out = dict(logs)
            out["mean_loss"] = loss_sum / tf.cast(num_steps, tf.float32)
            out["all_finite"] = finite
            return out

        cache[jit_compile] = loop
    return cache[jit_compile]


def run_steps(step: StepFn, iterator, num_steps: int, *, jit_compile: bool = False) -> Logs:
    """Runs `num_steps` (>= 1) steps of `step` on batches from `iterator` in
    one `tf.function` (`for _ in tf.range(num_steps)`).

    Args:
      step: a step function (or a `distribute_step` of one).
      iterator: a `tf.data` iterator (or distributed iterator).
      num_steps: steps to run; a Python int or scalar tensor.
      jit_compile: compile the step with XLA. On CPU XLA bypasses oneDNN's
        convolutions and was slower here; on GPU it usually helps.

    Returns:
      The last step's logs plus `mean_loss` over the steps and `all_finite`
      (bool: every step's loss was finite).
    """
    if int(num_steps) < 1:
        raise ValueError(f"run_steps: num_steps must be >= 1, got {num_steps}")
    loop = _loop_for(step, bool(jit_compile))
    return loop(iterator, tf.constant(int(num_steps), tf.int32))
