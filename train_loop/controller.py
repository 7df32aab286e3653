"""The outer loop (Orbit's controller, kept small): train `steps_per_loop`
steps in one `tf.function`, then, in eager Python, log, write summaries,
evaluate, checkpoint, and apply plateau and early stopping, the work the
talk's Keras callbacks did. Before every evaluation the batch-norm moving
statistics are re-estimated exactly for the current weights
(`train_loop.evaluator`), so what is evaluated, kept as `best` and saved as
`latest` is what inference and export will use.

The parts come from `train_loop.build` (model, loss, optimizer, schedule,
monitors), `train_loop.evaluator` (validation) and `train_loop.distribute`
(which worker writes what). Read `_train` top to bottom: set-up, restore,
loop, finish.
"""
from __future__ import annotations

import math
import signal
import time
from typing import Callable, Optional, Sequence

import tensorflow as tf

from core import metrics as metrics_lib, precision
from train_loop import build, distribute
from train_loop import steps as steps_lib
from train_loop import workdir as workdir_lib
from train_loop.config import TrainConfig
from train_loop.evaluator import Evaluator, write_scalars
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
    loop_cfg = config.loop
    strategy = strategy or tf.distribute.get_strategy()
    policy = precision.get_policy(config.model.policy)

    # --- state: model, optimizer, scaler, monitors (under the strategy) ---
    with strategy.scope():
        model = model_fn()
        optimizer = build.make_optimizer(config)
        state = TrainState.create(model, optimizer,
                                  precision.DynamicLossScale.for_policy(policy),
                                  *build.make_monitors(config, optimizer))
        train_cm = metrics_lib.ConfusionMatrix(len(class_names))
        # Build the lazy variables and slots in cross-replica context so that
        # a restore is immediate and strategy.run never creates variables.
        sample = next(iter(eval_dataset_fn(None).take(1)))
        build.build_variables(model, optimizer, config, sample["image"][:1])

    # --- steps, data, evaluation ---
    loss_fn = build.make_loss(config)
    train_step = steps_lib.distribute_step(strategy, steps_lib.make_train_step(
        model, loss_fn, optimizer, schedule=build.make_schedule(config),
        step_counter=state.step, loss_scale=state.loss_scale,
        clip_norm=config.optim.clip_norm, metrics=train_cm))
    train_ds = strategy.distribute_datasets_from_function(train_dataset_fn)
    writers = distribute.summary_writers(workdir, strategy)
    evaluator = Evaluator(
        model, loss_fn, strategy, eval_dataset_fn=eval_dataset_fn,
        bn_dataset_fn=bn_dataset_fn, bn_batches=config.batch_norm.recompute_batches,
        class_names=class_names, palette=palette, rgb_channels=rgb_channels,
        exclude_from_means=exclude_from_means, summary_batch=sample,
        summary_images=loop_cfg.summary_images, writer=writers["validation"], log=log)

    # --- restore: the newest readable `latest` checkpoint, if any ---
    latest, best, iterator = _restore(state, iter(train_ds), train_dataset_fn, workdir,
                                      strategy, checkpoint_data, loop_cfg.keep_checkpoints, log)

    # --- loop: inner tf.function loops, eager bookkeeping between them ---
    total = loop_cfg.train_steps
    start_step = step = int(state.step.numpy())
    bar = ProgressBar(total - start_step, desc="train", unit="step")
    last_eval, stopped_early = {}, False
    batch_size = int(sample["image"].shape[0]) * strategy.num_replicas_in_sync
    run_start = time.perf_counter()
    log(f"training from step {start_step} to {total}")
    while step < total:
        boundary = min(total, _next_multiple(step, loop_cfg.eval_every),
                       _next_multiple(step, loop_cfg.checkpoint_every))
        num = min(loop_cfg.steps_per_loop, boundary - step)
        tic = time.perf_counter()
        logs = steps_lib.run_steps(train_step, iterator, num, jit_compile=loop_cfg.jit_compile)
        first, step = step + 1, int(state.step.numpy())
        if not bool(logs["all_finite"]) and not policy.needs_loss_scaling:
            raise NonFiniteLossError(
                f"non-finite loss between steps {first} and {step}; stopped. "
                f"The last good checkpoint is {latest.latest_checkpoint} "
                f"(lower --max_lr, use --clip_norm, or check the data)")
        scalars = _train_scalars(logs, train_cm.result(),
                                 num * batch_size / max(time.perf_counter() - tic, 1e-9))
        write_scalars(writers["train"], step, scalars)
        bar.update(step - start_step, f"loss {scalars['loss']:.4f}")
        eta = (time.perf_counter() - run_start) / max(step - start_step, 1) * (total - step)
        log(f"step {step}/{total} loss {scalars['loss']:.4f} lr {scalars['lr']:.3g} "
            f"{scalars['images_per_s']:.1f} img/s ETA {format_duration(eta)}")

        if step % loop_cfg.eval_every == 0 or step == total:
            train_cm.reset()
            last_eval = evaluator(step)
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
               "bn_recompute_seconds": evaluator.bn_seconds}
    if distribute.is_chief(strategy):
        workdir_lib.mark_finished(workdir, summary)
    return summary


def _restore(state: TrainState, iterator, train_dataset_fn: Callable, workdir: str,
             strategy: tf.distribute.Strategy, checkpoint_data: bool, keep: int, log):
    """Restores the newest readable `latest` checkpoint of the chief, if any.

    `latest` holds the data iterator too (its position and shuffle buffer),
    so a resumed run sees the batches the interrupted one would have seen;
    `best` holds the training state only. tf.distribute's multi-replica
    iterators cannot be checkpointed, and an iterator over a cached dataset
    would carry the whole cache into every checkpoint: there the data
    position is restored by replaying the (seeded) stream instead.

    Returns:
      (latest, best, iterator): the managers this worker saves with
      (`distribute.checkpoint_managers`) and the iterator to train from.
    """
    data_in_checkpoint = checkpoint_data and isinstance(
        iterator, tf.__internal__.tracking.Trackable)
    latest_ckpt = state.checkpoint(data=iterator) if data_in_checkpoint else state.checkpoint()
    latest, best, restore_from = distribute.checkpoint_managers(
        latest_ckpt, state.checkpoint(), workdir, strategy, keep)
    restored = workdir_lib.restore_latest(latest_ckpt, restore_from, log=log)
    start_step = int(state.step.numpy())
    if restored:
        log(f"resumed from {restored} at step {start_step}")
    if restored and not data_in_checkpoint:
        log(f"replaying the input stream to batch {start_step} (exact with --deterministic)")
        iterator = iter(strategy.distribute_datasets_from_function(
            lambda ctx: train_dataset_fn(ctx).skip(start_step)))
    return latest, best, iterator


def _train_scalars(logs: dict, train_result: dict, images_per_s: float) -> dict:
    """The train/ TensorBoard scalars of one inner loop."""
    scalars = {k: float(logs[k]) for k in ("lr", "momentum", "grad_norm", "loss_scale")}
    scalars.update(loss=float(logs["mean_loss"]), images_per_s=images_per_s,
                   overall_accuracy=float(train_result["overall_accuracy"]),
                   mean_iou=float(train_result["mean_iou"]))
    return scalars


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
