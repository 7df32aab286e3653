"""The learning-rate finder of the talk (Leslie Smith's LR range test).

Train for `num_steps` steps while the learning rate grows exponentially from
`min_lr` to `max_lr`, record the loss of every step, smooth it, stop once it
diverges, and suggest a maximum learning rate for one-cycle training. The
model's variables and the optimizer's state are saved before the sweep and
restored after it bit for bit, so the finder can run on the model you are
about to train.

    result = find_lr(model, loss_fn, optimizer, iter(dataset), num_steps=100)
    print(result.suggested_lr)
    write_csv(result, "lr_find.csv"); write_png(result, "lr_find.png")

Suggestion rule (documented choice): the learning rate where the smoothed
loss falls fastest against log(lr) (`method="steepest"`, fastai's
"steepest" suggestion), searched between the first `skip_start` points and
the minimum of the smoothed loss: a rate at which the net still learns
quickly and is well below the rate where training breaks. When that range is
too short (the loss never falls) it falls back to `method="min_div10"`: the
lr of the minimum smoothed loss divided by 10 (the rule of thumb of Smith and
of the talk's plot reading).

A training config's sweep (`sweep_config`: tools.train's optimizer, encoder
group, loss and loss scaling) is what tools.lr_find runs and what
tools.train --max_lr=auto runs before training (`auto_max_lr`).
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
import warnings
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from core import precision, schedules
from train_loop import build
from train_loop import steps as steps_lib
from train_loop.config import LRSweepConfig, TrainConfig

SUGGESTION_METHODS = ("steepest", "min_div10")


class NonFiniteSweepError(ValueError):
    """The sweep's first loss was not finite: a data or setup problem the
    user can act on (tools report it in one line, unlike a programming error)."""


@dataclasses.dataclass(frozen=True)
class LRFinderResult:
    """What a sweep recorded, one entry per step run.

    Attributes:
      lrs: [N] float64, the learning rate of each step (increasing).
      losses: [N] float64, each step's training loss (before its update).
      smoothed: [N] float64, bias-corrected exponential moving average of
        `losses` (see `smooth_losses`).
      suggested_lr: the suggested maximum learning rate (see module doc).
      best_lr: the lr of the lowest smoothed loss.
      stopped_early: True when the sweep stopped on divergence before
        reaching `max_lr`.
    """
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float
    best_lr: float
    stopped_early: bool = False


def smooth_losses(losses: Sequence[float], smoothing: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (Adam's correction).

        avg_i = beta avg_{i-1} + (1 - beta) loss_i,  avg_{-1} = 0
        smoothed_i = avg_i / (1 - beta**(i+1))

    Args:
      losses: [N] losses.
      smoothing: beta in [0, 1); 0 means no smoothing.
    Returns:
      [N] float64.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"lr finder: smoothing must be in [0, 1), got {smoothing}")
    out, avg = np.empty(len(losses), np.float64), 0.0
    for i, loss in enumerate(losses):
        avg = smoothing * avg + (1.0 - smoothing) * float(loss)
        out[i] = avg / (1.0 - smoothing ** (i + 1))
    return out


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float], *,
               method: str = "steepest", skip_start: int = 0) -> float:
    """Suggests a maximum learning rate from a smoothed loss curve.

    Args:
      lrs: [N] increasing learning rates.
      smoothed: [N] smoothed losses.
      method: "steepest" (most negative d smoothed / d log lr before the
        minimum, ignoring the first `skip_start` points) or "min_div10" (lr
        of the minimum / 10). "steepest" falls back to "min_div10" when fewer
        than 3 points lie between `skip_start` and the minimum.
    Returns:
      The suggested lr (a Python float).
    """
    if method not in SUGGESTION_METHODS:
        raise ValueError(f"lr finder: unknown suggestion method {method!r}; "
                         f"expected one of {SUGGESTION_METHODS}")
    lrs, smoothed = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    if lrs.size == 0:
        raise ValueError("lr finder: no loss was recorded, nothing to suggest")
    best = int(np.argmin(smoothed))
    if method == "steepest":
        start = min(max(0, skip_start), best)
        if best - start + 1 >= 3:
            x, y = np.log(lrs[start:best + 1]), smoothed[start:best + 1]
            return float(lrs[start + int(np.argmin(np.gradient(y, x)))])
    return float(lrs[best] / 10.0)


# --- saving and restoring state ----------------------------------------------
def _state_variables(*modules) -> list:
    """Every variable of the given modules (tf.Module or objects with
    `variables`), deduplicated by identity."""
    seen, out = set(), []
    for module in modules:
        if module is None:
            continue
        for var in getattr(module, "variables", ()):
            if var.ref() not in seen:
                seen.add(var.ref())
                out.append(var)
    return out


def _snapshot(variables) -> list:
    # numpy() copies the buffer: later updates cannot alias the saved values.
    return [np.array(v.numpy(), copy=True) for v in variables]


def _restore(variables, values) -> None:
    for var, value in zip(variables, values):
        var.assign(value)


# --- the sweep ---------------------------------------------------------------
def find_lr(model, loss_fn: Callable, optimizer, iterator, *, min_lr: float = 1e-7,
            max_lr: float = 10.0, num_steps: int = 100, smoothing: float = 0.98,
            divergence: float = 4.0, method: str = "steepest",
            skip_start: Optional[int] = None, loss_scale=None,
            clip_norm: Optional[float] = None, decay_variables=None,
            jit_compile: bool = False,
            log: Optional[Callable[[str], None]] = None) -> LRFinderResult:
    """Runs the LR range test and returns the recorded curve and suggestion.

    Step i (0-based) trains with lr_i = min_lr * (max_lr / min_lr)**(i / (N-1))
    (`core.schedules.lr_range`), through `train_loop.make_train_step`, so
    it runs exactly the update the trainer runs (loss scaling, clipping,
    weight decay). The sweep stops early, after recording the step, when the
    smoothed loss exceeds `divergence` times the lowest smoothed loss so far,
    or at once on a non-finite loss (that step is not recorded).

    The optimizer's slots are created (zero, like a fresh optimizer's) before
    the sweep; every variable of `model`, `optimizer` and `loss_scale` is
    saved before the first step and assigned back afterwards, also when a
    step raises, so they end bit-identical to what they were.

    Args:
      model: `model(images, training) -> logits [B,H,W,K]`, a tf.Module; built
        here on the first batch if its variables are lazy.
      loss_fn: `loss_fn(labels, logits) -> scalar float32`.
      optimizer: a `core.optim.SGD` (its momentum is kept; lr is swept).
      iterator: yields batches `{"image": [B,H,W,C], "label": [B,H,W] uint8}`;
        `num_steps` batches are drawn at most.
      min_lr, max_lr: 0 < min_lr < max_lr, the sweep's end points.
      num_steps: N >= 2 steps.
      smoothing: beta of `smooth_losses`. The average lags about
        1 / (1 - beta) steps (50 at 0.98): with 100 steps the smoothed curve
        trails the raw one by half a sweep; use ~0.9 or more steps to tighten.
      divergence: stop factor (> 1); None or inf never stops early.
      method: suggestion rule of `suggest_lr`.
      skip_start: points ignored by the "steepest" rule (the first smoothed
        values rest on few losses); default N // 10.
      loss_scale: a DynamicLossScale under mixed_float16, else None.
      clip_norm, decay_variables: as in `make_train_step`.
      jit_compile: XLA-compile the step.
      log: optional callable receiving one line every ~10% of the sweep.

    Returns:
      LRFinderResult.
    Raises:
      ValueError: bad sweep arguments, or no finite loss at all.
    """
    if not 0.0 < min_lr < max_lr:
        raise ValueError(f"lr finder: need 0 < min_lr < max_lr, got min_lr={min_lr}, "
                         f"max_lr={max_lr}")
    if int(num_steps) < 2:
        raise ValueError(f"lr finder: num_steps must be >= 2, got {num_steps}")
    if divergence is not None and not divergence > 1.0:
        raise ValueError(f"lr finder: divergence must be > 1, got {divergence}")
    num_steps = int(num_steps)
    skip_start = num_steps // 10 if skip_start is None else int(skip_start)
    smooth_losses([], smoothing)  # validates smoothing before any work

    # The first batch builds lazy variables without changing them
    # (training=False leaves batch-norm statistics alone).
    first = next(iterator)
    model(first["image"], training=False)
    optimizer.build(model.trainable_variables)
    saved_vars = _state_variables(model, optimizer, loss_scale)
    saved = _snapshot(saved_vars)

    counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="lr_find_step")
    schedule = lambda step: schedules.lr_range(step, num_steps, min_lr, max_lr)  # noqa: E731
    train_step = steps_lib.make_train_step(
        model, loss_fn, optimizer, schedule=schedule, step_counter=counter,
        loss_scale=loss_scale, clip_norm=clip_norm, decay_variables=decay_variables)
    step_fn = tf.function(train_step, jit_compile=jit_compile, reduce_retracing=True)

    lrs, losses = [], []
    avg, best, stopped = 0.0, math.inf, False
    try:
        batch = first
        for i in range(num_steps):
            if i > 0:
                try:
                    batch = next(iterator)
                except (StopIteration, tf.errors.OutOfRangeError):
                    break
            logs = step_fn(batch)
            loss, lr = float(logs["loss"]), float(logs["lr"])
            if not math.isfinite(loss):
                stopped = i < num_steps - 1
                break
            lrs.append(lr)
            losses.append(loss)
            avg = smoothing * avg + (1.0 - smoothing) * loss
            value = avg / (1.0 - smoothing ** (i + 1))
            best = min(best, value)
            if log is not None and (i % max(1, num_steps // 10) == 0):
                log(f"lr_find step {i}/{num_steps}: lr {lr:.3g} loss {loss:.4f} "
                    f"smoothed {value:.4f}")
            if divergence is not None and value > divergence * best:
                stopped = i < num_steps - 1
                break
    finally:
        _restore(saved_vars, saved)

    if not losses:
        raise NonFiniteSweepError("lr finder: the first step's loss was not finite; lower "
                         "the sweep's min_lr (--sweep_min_lr) or check the data")
    lrs_a, losses_a = np.asarray(lrs, np.float64), np.asarray(losses, np.float64)
    smoothed = smooth_losses(losses_a, smoothing)
    return LRFinderResult(
        lrs=lrs_a, losses=losses_a, smoothed=smoothed,
        suggested_lr=suggest_lr(lrs_a, smoothed, method=method, skip_start=skip_start),
        best_lr=float(lrs_a[int(np.argmin(smoothed))]), stopped_early=stopped)


# --- a training config's sweep ------------------------------------------------
def sweep_config(config: TrainConfig, model, batches, sweep: LRSweepConfig, *,
                 log: Optional[Callable[[str], None]] = None) -> LRFinderResult:
    """The LR range test of a training run: `find_lr` with the run's
    optimizer (started at `sweep.min_lr`) and its pretrained encoder's
    parameter group (`build.build_variables`, as the controller builds
    them), the run's loss, loss scaling, gradient clipping and compile
    setting. tools.lr_find and tools.train --max_lr=auto both run this.

    Args:
      config: the run's TrainConfig (its max_lr is not used).
      model: a fresh model as training builds it (`build.make_model`);
        every variable ends as it was (created ones as created).
      batches: iterator of training batches; `sweep.num_steps` are drawn
        at most.
      sweep: the sweep's settings; `divergence` <= 1 never stops early.
      log: optional callable receiving progress lines.
    """
    batches = iter(batches)
    first = next(batches)
    optimizer = build.make_optimizer(config, learning_rate=sweep.min_lr)
    # The encoder group sets the model's frozen flag for step 0 before
    # find_lr's snapshot: the variables the model has now are given back too.
    existing = _state_variables(model)
    saved = _snapshot(existing)
    try:
        build.build_variables(model, optimizer, config, first["image"][:1])
        return find_lr(
            model, build.make_loss(config), optimizer, itertools.chain([first], batches),
            min_lr=sweep.min_lr, max_lr=sweep.max_lr, num_steps=sweep.num_steps,
            smoothing=sweep.smoothing,
            divergence=sweep.divergence if sweep.divergence > 1 else None,
            method=sweep.suggestion,
            loss_scale=precision.DynamicLossScale.for_policy(config.model.policy),
            clip_norm=config.optim.clip_norm, jit_compile=config.loop.jit_compile, log=log)
    finally:
        _restore(existing, saved)


def auto_max_lr(config: TrainConfig, *, model_fn: Callable, batches_fn: Callable,
                recorded: Optional[dict] = None,
                log: Callable[[str], None] = print) -> TrainConfig:
    """Chooses `config.optim.max_lr` when it is not given (--max_lr=auto).

    A run that resumes keeps the max_lr it started with, whatever chose it
    (`recorded`, the "optim" section of its config.json): a sweep now would
    run on a fresh model, not on the run's weights, and a changed rate
    would break the exact resume. Otherwise the sweep of
    `config.optim.max_lr_auto` runs (`sweep_config`) on `model_fn()`, a
    fresh model as training builds it, and `batches_fn()`, the run's
    training batches; its suggestion becomes max_lr, and one line is
    logged. A config whose max_lr is set is returned as it is.

    Returns:
      the config with max_lr set; max_lr_auto is kept (the sweep recorded
      with the value it chose), or the recorded run's.
    """
    o = config.optim
    if o.max_lr is not None:
        return config
    if recorded is not None and recorded.get("max_lr") is not None:
        chosen = float(recorded["max_lr"])
        sweep = (LRSweepConfig(**recorded["max_lr_auto"]) if recorded.get("max_lr_auto")
                 else None)
        how = "chosen by its LR range test" if sweep else "given when it started"
        differ = (f"; the sweep flags now differ ({dataclasses.asdict(o.max_lr_auto)}) and "
                  f"apply to new runs only" if sweep not in (None, o.max_lr_auto) else "")
        log(f"max_lr=auto: resuming a run whose max_lr {chosen!r} was {how}; keeping it{differ}")
        return dataclasses.replace(config, optim=dataclasses.replace(
            o, max_lr=chosen, max_lr_auto=sweep))
    result = sweep_config(config, model_fn(), batches_fn(), o.max_lr_auto, log=log)
    stop = " (stopped early: the loss diverged)" if result.stopped_early else ""
    log(f"max_lr=auto: LR range test over {len(result.lrs)} steps from {result.lrs[0]:.3g} "
        f"to {result.lrs[-1]:.3g}{stop} suggested {result.suggested_lr!r}")
    return dataclasses.replace(config, optim=dataclasses.replace(
        o, max_lr=result.suggested_lr))


# --- writers -------------------------------------------------------------------
CSV_HEADER = ("lr", "loss", "smoothed")


def write_csv(result: LRFinderResult, path: str) -> None:
    """Writes `lr,loss,smoothed` rows (one per step) to `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for row in zip(result.lrs, result.losses, result.smoothed):
            writer.writerow([repr(float(v)) for v in row])


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads a `write_csv` file back: (lrs, losses, smoothed), float64 [N]."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise ValueError(f"{path}: expected a header {','.join(CSV_HEADER)}")
    data = np.asarray(rows[1:], np.float64).reshape(-1, 3)
    return data[:, 0], data[:, 1], data[:, 2]


def write_png(result: LRFinderResult, path: str, *, title: str = "LR range test") -> bool:
    """Plots loss and smoothed loss against lr (log x) with the suggested lr
    marked. Needs matplotlib (the `plot` extra): without it, warns and
    returns False."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
    except ImportError:
        warnings.warn(f"matplotlib is not installed (pip install ortholoop[plot]); "
                      f"{path} not written")
        return False
    # Figure without pyplot: no global state, safe in threads and tests.
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
    ax.axvline(result.suggested_lr, color="C3", ls="--",
               label=f"suggested max lr {result.suggested_lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    # Keep the diverging tail from flattening the interesting part.
    top = min(float(np.max(result.losses)), 2.0 * float(result.smoothed[0]))
    bottom = min(float(np.min(result.smoothed)), float(np.min(result.losses)))
    if top > bottom:
        ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.05 * (top - bottom))
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return True


def write_tensorboard(result: LRFinderResult, logdir: str) -> None:
    """Writes scalars `lr_find/{lr,loss,smoothed_loss}` at step = sweep index
    and `lr_find/suggested_lr` as a text summary to `logdir`."""
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for i, (lr, loss, smooth) in enumerate(
                zip(result.lrs, result.losses, result.smoothed)):
            for tag, value in (("lr_find/lr", lr), ("lr_find/loss", loss),
                               ("lr_find/smoothed_loss", smooth)):
                tf.summary.scalar(tag, float(value), step=i)
        tf.summary.text("lr_find/suggested_lr",
                        f"suggested max lr {result.suggested_lr:.4g} "
                        f"(lowest smoothed loss at lr {result.best_lr:.4g})", step=0)
    writer.flush()
    writer.close()
