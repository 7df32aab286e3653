"""The outer loop (Orbit's controller, kept small): train `steps_per_loop`
steps in one `tf.function`, then, in eager Python, log, write summaries,
evaluate, checkpoint, and apply plateau and early stopping, the work the
talk's Keras callbacks did. Before every evaluation the batch-norm moving
statistics are re-estimated exactly for the current weights
(`train_loop.bn_recompute`), so what is evaluated, kept as `best` and saved as
`latest` is what inference and export will use.

Read `train` top to bottom: set-up, restore, loop, finish.
"""
from __future__ import annotations

import math
import os
import signal
import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from core import losses, metrics as metrics_lib, optim, precision, schedules
from core.data import labels as labels_lib
from train_loop import bn_recompute
from train_loop import steps as steps_lib
from train_loop import workdir as workdir_lib
from train_loop.config import TrainConfig
from train_loop.progress import ProgressBar, format_duration
from train_loop.state import TrainState


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss under float32 (no scaler to skip it)."""


class _StopSignal:
    """Turns SIGTERM/SIGINT into a flag the loop checks between inner loops,
    so a stopped run saves a checkpoint and exits cleanly."""

    def __init__(self):
        self.received: Optional[int] = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):  # pylint: disable=unused-argument
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _make_schedule(config: TrainConfig) -> Optional[Callable]:
    o = config.optim
    total = config.loop.train_steps
    if o.schedule == "one_cycle":
        return lambda step: schedules.one_cycle(
            step, total, o.max_lr, pct_start=o.pct_start, div_factor=o.div_factor,
            final_div_factor=o.final_div_factor, anneal=o.anneal,
            base_momentum=o.base_momentum, max_momentum=o.max_momentum)
    # "plateau" and "constant": the optimizer keeps max_lr until the plateau
    # rule lowers it between evaluations.
    return None


def _display_rgb(images: tf.Tensor, rgb_channels: Sequence[int]) -> tf.Tensor:
    """[B,H,W,C] raw bands -> [B,H,W,3] float in [0,1], stretched per image
    between the 2nd and 98th percentile like a GIS viewer's default."""
    rgb = tf.gather(tf.cast(images, tf.float32), list(rgb_channels), axis=-1).numpy()
    lo = np.percentile(rgb, 2, axis=(1, 2, 3), keepdims=True)
    hi = np.percentile(rgb, 98, axis=(1, 2, 3), keepdims=True)
    return tf.constant(np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0))


def _write_scalars(writer, step: int, values: dict) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)


def train(config: TrainConfig, *, workdir: str, model_fn: Callable[[], tf.Module],
          train_dataset_fn: Callable, eval_dataset_fn: Callable,
          class_names: Sequence[str], palette: Sequence[Sequence[int]],
          rgb_channels: Sequence[int] = (0, 1, 2), exclude_from_means: Sequence[int] = (),
          strategy: Optional[tf.distribute.Strategy] = None,
          checkpoint_data: bool = True,
          bn_dataset_fn: Optional[Callable] = None,
          log: Callable[[str], None] = print) -> dict:
    """Trains (or resumes) a run in `workdir` and returns the final summary.

    Args:
      config: the TrainConfig.
      workdir: the run's folder (see `train_loop.workdir`); config.json is
        written by the caller.
      model_fn: builds the model (called under the strategy's scope).
      train_dataset_fn: `(input_context) -> tf.data.Dataset`, infinite,
        per-replica batches; its iterator is checkpointed (data position).
      eval_dataset_fn: `(input_context) -> tf.data.Dataset`, finite.
      class_names, palette: for per-class summaries and images.
      rgb_channels: the band indices shown as the input image.
      exclude_from_means: classes left out of the logged means (not of
        the checkpoint selection, which uses all classes).
      strategy: a tf.distribute strategy; the default strategy when None.
      checkpoint_data: put the data iterator in `latest` checkpoints (False
        for cached pipelines: resume replays the stream instead).
      bn_dataset_fn: `(input_context) -> tf.data.Dataset` of training
        batches on which the batch-norm statistics are re-estimated before
        every evaluation (`config.batch_norm.recompute_batches` of them,
        0: never). A fresh iterator each time, never the training one, so
        the training stream and an exact resume do not depend on it; best
        a second seed of the training pipeline. Default: train_dataset_fn
        (its first batches).
      log: receives one line per inner loop and per evaluation.

    Returns:
      dict with step, best_mean_iou, last validation metrics, stopped_early.

    Raises:
      NonFiniteLossError: a non-finite loss under float32/bfloat16, naming
        the step range; the last good checkpoint is left as `latest`.
    """
    # Signals are caught from the start, so a SIGTERM while the model builds
    # still ends with a checkpoint after the first inner loop.
    with _StopSignal() as stop:
        return _train(config, workdir, model_fn, train_dataset_fn, eval_dataset_fn,
                      class_names, palette, rgb_channels, exclude_from_means, strategy,
                      checkpoint_data, bn_dataset_fn or train_dataset_fn, log, stop)


def _train(config, workdir, model_fn, train_dataset_fn, eval_dataset_fn, class_names,
           palette, rgb_channels, exclude_from_means, strategy, checkpoint_data,
           bn_dataset_fn, log, stop):
    loop_cfg, optim_cfg = config.loop, config.optim
    strategy = strategy or tf.distribute.get_strategy()
    policy = precision.get_policy(config.model.policy)
    num_classes = len(class_names)

    # --- state: model, optimizer, scaler, callbacks (under the strategy) ---
    with strategy.scope():
        model = model_fn()
        optimizer = optim.make_optimizer(
            optim_cfg.optimizer, optim_cfg.max_lr, momentum=optim_cfg.momentum,
            nesterov=optim_cfg.nesterov, weight_decay=optim_cfg.weight_decay,
            beta_2=optim_cfg.adam_beta_2, epsilon=optim_cfg.adam_epsilon)
        plateau = early = None
        if optim_cfg.schedule == "plateau":
            plateau = schedules.ReduceOnPlateau(
                optimizer.learning_rate,
                factor=optim_cfg.plateau_factor, patience=optim_cfg.plateau_patience,
                cooldown=optim_cfg.plateau_cooldown, min_lr=optim_cfg.min_lr,
                min_delta=optim_cfg.min_delta, mode="max")
        if optim_cfg.early_stopping_patience > 0:
            early = schedules.EarlyStopping(patience=optim_cfg.early_stopping_patience,
                                            min_delta=optim_cfg.min_delta, mode="max")
        state = TrainState.create(model, optimizer,
                                  precision.DynamicLossScale.for_policy(policy),
                                  plateau, early)
        train_cm = metrics_lib.ConfusionMatrix(num_classes)
        # Build the lazy variables and slots in cross-replica context so that
        # a restore is immediate and strategy.run never creates variables.
        sample = next(iter(eval_dataset_fn(None).take(1)))
        model(sample["image"][:1], training=False)
        optimizer.build(model.trainable_variables)
        if getattr(model, "encoder_variables", ()):  # a pretrained encoder's group
            optimizer.add_group("encoder", model.encoder_variables,
                                lr_multiplier=config.encoder.lr_multiplier,
                                freeze_steps=config.encoder.freeze_steps,
                                frozen_flag=model.encoder_frozen)

    loss_fn = losses.get_loss(config.loss, **config.loss_kwargs())
    train_step = steps_lib.make_train_step(
        model, loss_fn, optimizer, schedule=_make_schedule(config),
        step_counter=state.step, loss_scale=state.loss_scale,
        clip_norm=optim_cfg.clip_norm, metrics=train_cm)
    # Across several workers each one evaluates the whole validation set
    # itself: sharded tiles give workers unequal batch counts, which
    # collectives cannot take, and identical scores keep the plateau and
    # early-stopping decisions identical on every worker.
    multi_worker = _num_workers(strategy) > 1
    with (tf.init_scope() if multi_worker else strategy.scope()):
        eval_cm = metrics_lib.ConfusionMatrix(num_classes)
    eval_step = steps_lib.make_eval_step(model, loss_fn, eval_cm)
    dist_train_step = steps_lib.distribute_step(strategy, train_step)
    run_eval_step = eval_step if multi_worker else steps_lib.distribute_step(strategy, eval_step)

    # --- data ---
    train_ds = strategy.distribute_datasets_from_function(train_dataset_fn)
    eval_ds = (eval_dataset_fn(None) if multi_worker
               else strategy.distribute_datasets_from_function(eval_dataset_fn))
    iterator = iter(train_ds)
    # Rebuilt at every recompute, not re-iterated: a seeded shuffle reshuffles
    # for each new iterator of one dataset object, so the batches would depend
    # on how many recomputes this process has run, and a resumed run would
    # see other batches than an uninterrupted one. `take` ends it after the
    # batches it needs so that no input work outlives it.
    bn_batches = config.batch_norm.recompute_batches

    def bn_batches_iterator():
        return iter(strategy.distribute_datasets_from_function(
            lambda ctx: bn_dataset_fn(ctx).take(bn_batches)))

    # --- restore: the newest readable `latest` checkpoint, if any ---
    # `latest` holds the data iterator too (its position and shuffle buffer),
    # so a resumed run sees the batches the interrupted one would have seen;
    # `best` holds the training state only. Every worker saves (saving reads
    # replica-synchronised variables, a collective), but only the chief into
    # the workdir; all of them restore from the chief's files.
    chief = is_chief(strategy)
    write_root = workdir if chief else worker_dir(workdir, strategy)
    # tf.distribute's multi-replica iterators cannot be checkpointed, and an
    # iterator over a cached dataset would carry the whole cache into every
    # checkpoint: there the data position is restored by replaying the
    # (seeded) stream instead.
    data_in_checkpoint = checkpoint_data and isinstance(
        iterator, tf.__internal__.tracking.Trackable)
    latest_ckpt = state.checkpoint(data=iterator) if data_in_checkpoint else state.checkpoint()
    latest = tf.train.CheckpointManager(
        latest_ckpt, workdir_lib.checkpoint_dir(write_root, "latest"),
        max_to_keep=loop_cfg.keep_checkpoints)
    best = tf.train.CheckpointManager(
        state.checkpoint(), workdir_lib.checkpoint_dir(write_root, "best"), max_to_keep=1)
    chief_latest = latest if chief else tf.train.CheckpointManager(
        latest_ckpt, workdir_lib.checkpoint_dir(workdir, "latest"), max_to_keep=None)
    restored = workdir_lib.restore_latest(latest_ckpt, chief_latest, log=log)
    start_step = int(state.step.numpy())
    if restored:
        log(f"resumed from {restored} at step {start_step}")
    if restored and not data_in_checkpoint:
        log(f"replaying the input stream to batch {start_step} (exact with --deterministic)")
        iterator = iter(strategy.distribute_datasets_from_function(
            lambda ctx: train_dataset_fn(ctx).skip(start_step)))
    writers = {split: (tf.summary.create_file_writer(workdir_lib.tensorboard_dir(workdir, split))
                       if chief else tf.summary.create_noop_writer())
               for split in ("train", "validation")}
    summary_batch = sample  # the first validation batch, read once above

    @tf.function
    def evaluate_dataset():
        total, count = tf.constant(0.0), tf.constant(0.0)
        for batch in eval_ds:
            total += run_eval_step(batch)["loss"]
            count += 1.0
        return tf.math.divide_no_nan(total, count)

    bn_seconds = 0.0

    def recompute_statistics(step: int) -> float:
        """Exact batch-norm statistics for the current weights, from a fresh
        iterator of `bn_dataset_fn` (the same batches at every evaluation,
        whether or not the run was resumed); returns the seconds spent."""
        tic = time.perf_counter()
        done = bn_recompute.recompute_batch_norm(model, bn_batches_iterator(), bn_batches, strategy)
        seconds = time.perf_counter() - tic
        log(f"step {step}: batch-norm statistics re-estimated on {done['batches']} "
            f"batches ({done['layers']} layers, {seconds:.1f} s)")
        return seconds

    def evaluate(step: int) -> dict:
        eval_cm.reset()
        eval_loss = float(evaluate_dataset())
        result = eval_cm.result()
        miou = float(result["mean_iou"])
        values = {"loss": eval_loss, "overall_accuracy": float(result["overall_accuracy"]),
                  "mean_iou": miou, "mean_f1": float(result["mean_f1"])}
        values.update({f"iou/{name}": float(v) for name, v in zip(class_names, result["iou"])})
        if exclude_from_means:
            values["mean_iou_excluding"] = float(eval_cm.result(exclude=exclude_from_means)["mean_iou"])
        _write_scalars(writers["validation"], step, values)
        logits = model(summary_batch["image"], training=False)
        pred = tf.argmax(logits, axis=-1)
        n = loop_cfg.summary_images
        with writers["validation"].as_default(step=step):
            tf.summary.image("input", _display_rgb(summary_batch["image"][:n], rgb_channels), max_outputs=n)
            tf.summary.image("label", labels_lib.colorize_tf(summary_batch["label"][:n], palette), max_outputs=n)
            tf.summary.image("prediction", labels_lib.colorize_tf(pred[:n], palette), max_outputs=n)
        return values

    # --- loop: inner tf.function loops, eager bookkeeping between them ---
    total = loop_cfg.train_steps
    step = start_step
    bar = ProgressBar(total - start_step, desc="train", unit="step")
    last_eval: dict = {}
    stopped_early = False
    batch_size = int(sample["image"].shape[0]) * strategy.num_replicas_in_sync
    run_start = time.perf_counter()
    log(f"training from step {start_step} to {total}")
    while step < total:
        boundary = min(total, _next_multiple(step, loop_cfg.eval_every),
                       _next_multiple(step, loop_cfg.checkpoint_every))
        num = min(loop_cfg.steps_per_loop, boundary - step)
        tic = time.perf_counter()
        logs = steps_lib.run_steps(dist_train_step, iterator, num,
                                   jit_compile=loop_cfg.jit_compile)
        first, step = step + 1, int(state.step.numpy())
        if not bool(logs["all_finite"]) and not policy.needs_loss_scaling:
            raise NonFiniteLossError(
                f"non-finite loss between steps {first} and {step}; stopped. "
                f"The last good checkpoint is {latest.latest_checkpoint} "
                f"(lower --max_lr, use --clip_norm, or check the data)")
        images_per_s = num * batch_size / max(time.perf_counter() - tic, 1e-9)
        train_result = train_cm.result()
        scalars = {k: float(logs[k]) for k in ("lr", "momentum", "grad_norm", "loss_scale")}
        scalars.update(loss=float(logs["mean_loss"]), images_per_s=images_per_s,
                       overall_accuracy=float(train_result["overall_accuracy"]),
                       mean_iou=float(train_result["mean_iou"]))
        _write_scalars(writers["train"], step, scalars)
        bar.update(step - start_step, f"loss {scalars['loss']:.4f}")
        eta = (time.perf_counter() - run_start) / max(step - start_step, 1) * (total - step)
        log(f"step {step}/{total} loss {scalars['loss']:.4f} lr {scalars['lr']:.3g} "
            f"{images_per_s:.1f} img/s ETA {format_duration(eta)}")

        if step % loop_cfg.eval_every == 0 or step == total:
            train_cm.reset()
            if bn_batches > 0:
                bn_seconds += recompute_statistics(step)
            last_eval = evaluate(step)
            log(f"step {step} validation: loss {last_eval['loss']:.4f} "
                f"OA {last_eval['overall_accuracy']:.4f} mIoU {last_eval['mean_iou']:.4f}")
            stopped_early = after_evaluation(state, last_eval["mean_iou"], step, best, log)
        if step % loop_cfg.checkpoint_every == 0 or step == total or stopped_early or stop.received:
            latest.save(checkpoint_number=step)
        if stopped_early:
            break
        if stop.received:
            log(f"signal {stop.received}: saved {latest.latest_checkpoint}, exiting")
            bar.close()
            return {"step": step, "interrupted": True,
                    "best_mean_iou": float(state.best_metric.numpy())}
    bar.close()

    # --- finish ---
    summary = {"step": step, "best_mean_iou": float(state.best_metric.numpy()),
               "validation": last_eval, "stopped_early": stopped_early,
               "seconds": time.perf_counter() - run_start,
               "bn_recompute_seconds": bn_seconds}
    if chief:
        workdir_lib.mark_finished(workdir, summary)
    return summary


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes checkpoints and summaries (the
    only worker outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return (task_type == "worker" and task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def _num_workers(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def worker_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
    """Where a non-chief worker writes its own (never read) checkpoints."""
    resolver = strategy.cluster_resolver
    return os.path.join(workdir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def after_evaluation(state: TrainState, mean_iou: float, step: int,
                     best: tf.train.CheckpointManager, log=print) -> bool:
    """The talk's callbacks after one validation: keep the best checkpoint
    (ModelCheckpoint on val mean IoU), lower the lr on a plateau
    (ReduceLROnPlateau, which assigns the optimizer's lr variable), and
    decide on early stopping.

    Returns:
      True when early stopping says stop.
    """
    if mean_iou > float(state.best_metric.numpy()):
        state.best_metric.assign(mean_iou)
        best.save(checkpoint_number=step)
        log(f"step {step}: best validation mean IoU so far ({mean_iou:.4f}), "
            f"saved {best.latest_checkpoint}")
    if state.plateau is not None:
        before = float(state.optimizer.learning_rate.numpy())
        after = state.plateau.update(mean_iou)
        if after < before:
            log(f"step {step}: validation mean IoU on a plateau, lr {before:.3g} -> {after:.3g}")
    if state.early_stopping is not None and state.early_stopping.update(mean_iou):
        log(f"step {step}: early stopping, no improvement in "
            f"{state.early_stopping.patience} evaluations")
        return True
    return False


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else math.inf
