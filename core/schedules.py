"""Learning-rate (and momentum) schedules, plateau reduction, early stopping.

Step schedules are pure functions of a step tensor, usable inside the inner
`tf.function` loop: `lr, momentum = one_cycle(step, ...)` then
`optimizer.learning_rate.assign(lr)`. They compute in float64 (the step can be
large and one-cycle compares against fractional phase boundaries) and return
float32 scalars.

`ReduceOnPlateau` and `EarlyStopping` are driven by the eager outer loop once
per evaluation; their state is in tf.Variables so a checkpoint holding them
resumes with the same patience counters.
"""
from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf


def _anneal(start, end, pct, anneal: str):
    if anneal == "cos":
        return end + (start - end) / 2.0 * (tf.cos(math.pi * pct) + 1.0)
    return (end - start) * pct + start


def one_cycle_min_steps(pct_start: float) -> int:
    """The fewest `total_steps` `one_cycle` takes with `pct_start` in (0, 1):
    its warm-up must end after step 0, pct_start * total_steps > 1 (the
    annealing phase is then never empty either)."""
    steps = math.floor(1.0 / pct_start) + 1
    return steps if pct_start * steps > 1.0 else steps + 1  # float rounding


def one_cycle(step, total_steps: int, max_lr: float, *, pct_start: float = 0.3,
              div_factor: float = 25.0, final_div_factor: float = 1e4,
              anneal: str = "cos", base_momentum: float = 0.85,
              max_momentum: float = 0.95) -> tuple[tf.Tensor, tf.Tensor]:
    """One-cycle policy (Smith 2018), as torch.optim.lr_scheduler.OneCycleLR.

    With T = total_steps, a0 = max_lr / div_factor, a_min = a0 /
    final_div_factor, e1 = pct_start * T - 1 and e2 = T - 1:
      phase 1, step <= e1: p = step / e1,
        lr = anneal(a0 -> max_lr, p),  momentum = anneal(max_m -> base_m, p);
      phase 2: p = (step - e1) / (e2 - e1),
        lr = anneal(max_lr -> a_min, p), momentum = anneal(base_m -> max_m, p);
    where anneal(s -> e, p) = e + (s - e)(cos(pi p) + 1) / 2 ("cos") or
    s + (e - s) p ("linear"). This is OneCycleLR(three_phase=False) after
    `step` calls of scheduler.step(). The last step, T - 1, gives p = 1:
    lr = a_min and momentum = max_m, and every later step gives the same
    values (PyTorch raises beyond T - 1; extrapolating p > 1 would make a
    linear lr negative), so the learning rate is never below a_min.

    Args:
      step: int or float scalar tensor (0 for the first update).
    Returns:
      (learning_rate, momentum): float32 scalar tensors.
    Raises:
      ValueError: for arguments that leave a phase empty or a bad anneal.
    """
    if anneal not in ("cos", "linear"):
        raise ValueError(f"one_cycle: anneal must be 'cos' or 'linear', got {anneal!r}")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"one_cycle: pct_start must be in (0, 1), got {pct_start}")
    if total_steps < one_cycle_min_steps(pct_start):
        raise ValueError(
            f"one_cycle: total_steps={total_steps} with pct_start={pct_start} leaves "
            "a phase empty; need pct_start * total_steps > 1 and < total_steps")
    end1 = float(pct_start * total_steps) - 1.0
    end2 = float(total_steps - 1)
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    # Clamped to the last step: the schedule ends at its final values and stays.
    step = tf.clip_by_value(tf.cast(step, tf.float64), 0.0, end2)
    in_warmup = step <= end1
    pct = tf.where(in_warmup, step / end1, (step - end1) / (end2 - end1))
    lr = tf.where(in_warmup, _anneal(initial_lr, max_lr, pct, anneal),
                  _anneal(max_lr, min_lr, pct, anneal))
    momentum = tf.where(in_warmup, _anneal(max_momentum, base_momentum, pct, anneal),
                        _anneal(base_momentum, max_momentum, pct, anneal))
    return tf.cast(lr, tf.float32), tf.cast(momentum, tf.float32)


def lr_range(step, num_steps: int, min_lr: float, max_lr: float) -> tf.Tensor:
    """Exponential sweep for the LR range test (Smith 2017).

    lr = min_lr * (max_lr / min_lr) ** (step / (num_steps - 1)), so step 0
    gives min_lr and step num_steps - 1 gives max_lr (steps are clamped).

    Returns:
      float32 scalar tensor.
    """
    if not 0.0 < min_lr < max_lr or num_steps < 2:
        raise ValueError(f"lr_range: need 0 < min_lr < max_lr and num_steps >= 2, got "
                         f"min_lr={min_lr}, max_lr={max_lr}, num_steps={num_steps}")
    step = tf.clip_by_value(tf.cast(step, tf.float64), 0.0, float(num_steps - 1))
    fraction = step / float(num_steps - 1)
    ratio = tf.constant(float(max_lr) / float(min_lr), tf.float64)
    return tf.cast(float(min_lr) * tf.pow(ratio, fraction), tf.float32)


def constant(step, learning_rate: float) -> tf.Tensor:
    """The same learning rate at every step (float32 scalar)."""
    del step
    return tf.constant(learning_rate, tf.float32)


def step_decay(step, boundaries: Sequence[int], values: Sequence[float]) -> tf.Tensor:
    """Piecewise-constant learning rate.

    values[i] for boundaries[i-1] <= step < boundaries[i] (like PyTorch's
    MultiStepLR: the new value applies from the boundary step on).

    Args:
      boundaries: increasing step numbers, one fewer than values.
    Returns:
      float32 scalar tensor.
    """
    boundaries, values = list(boundaries), list(values)
    if len(values) != len(boundaries) + 1 or boundaries != sorted(boundaries):
        raise ValueError(f"step_decay: need increasing boundaries and one more value "
                         f"than boundaries, got {boundaries} and {values}")
    index = tf.reduce_sum(tf.cast(
        tf.cast(step, tf.int64) >= tf.constant(boundaries, tf.int64), tf.int32))
    return tf.gather(tf.constant(values, tf.float32), index)


class _Monitor(tf.Module):
    """Shared best-value logic for plateau and early stopping."""

    def __init__(self, mode: str, min_delta: float, name: str):
        super().__init__(name=name)
        if mode not in ("max", "min"):
            raise ValueError(f"{type(self).__name__}: mode must be 'max' or 'min', "
                             f"got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"{type(self).__name__}: min_delta must be >= 0, "
                             f"got {min_delta}")
        self.mode = mode
        self.min_delta = float(min_delta)
        with self.name_scope:
            self.best = tf.Variable(-math.inf if mode == "max" else math.inf,
                                    dtype=tf.float64, trainable=False, name="best")
            self.num_bad = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="num_bad_evaluations")

    def _improved(self, metric: float) -> bool:
        """Updates best / num_bad; True if metric beats best by min_delta."""
        metric = float(metric)
        best = float(self.best.numpy())
        if self.mode == "max":
            better = metric > best + self.min_delta
        else:
            better = metric < best - self.min_delta
        if better:
            self.best.assign(metric)
            self.num_bad.assign(0)
        else:
            self.num_bad.assign_add(1)
        return better


class ReduceOnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` when a metric stops improving.

    Semantics of PyTorch's ReduceLROnPlateau with an absolute threshold:
    after more than `patience` evaluations without an improvement larger than
    `min_delta`, lr = max(lr * factor, min_lr), then `cooldown` evaluations
    during which bad evaluations are not counted.

    Args:
      learning_rate: the initial learning rate (float), or a float tf.Variable
        to read and assign (e.g. `optimizer.learning_rate`).
      factor: in (0, 1). patience, cooldown: evaluations (ints >= 0).
      min_lr: lower bound. mode: "max" (mean IoU) or "min" (a loss).

    The defaults (factor 0.5, patience 3, cooldown 0, min_lr 1e-6,
    min_delta 1e-4) are those of `train_loop.config.OptimConfig` and so of
    `tools.train`'s flags (a test keeps them equal), not PyTorch's (0.1, 10,
    0, 0, 1e-4): evaluations here are every few hundred steps, not epochs.
    """

    def __init__(self, learning_rate: "float | tf.Variable", factor: float = 0.5,
                 patience: int = 3, cooldown: int = 0, min_lr: float = 1e-6,
                 mode: str = "max", min_delta: float = 1e-4,
                 name: str = "reduce_on_plateau"):
        super().__init__(mode, min_delta, name)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceOnPlateau: factor must be in (0, 1), got {factor}")
        if patience < 0 or cooldown < 0:
            raise ValueError(f"ReduceOnPlateau: patience and cooldown must be >= 0, "
                             f"got {patience} and {cooldown}")
        self.factor, self.patience, self.cooldown = float(factor), int(patience), int(cooldown)
        self.min_lr = float(min_lr)
        with self.name_scope:
            if isinstance(learning_rate, tf.Variable):
                self.learning_rate = learning_rate
            else:
                self.learning_rate = tf.Variable(float(learning_rate), dtype=tf.float32,
                                                 trainable=False, name="learning_rate")
            self.cooldown_counter = tf.Variable(0, dtype=tf.int64, trainable=False,
                                                name="cooldown_counter")

    def update(self, metric: float) -> float:
        """Records one evaluation (eager); returns the (new) learning rate."""
        self._improved(metric)
        if int(self.cooldown_counter.numpy()) > 0:
            self.cooldown_counter.assign_sub(1)
            self.num_bad.assign(0)
        lr = float(self.learning_rate.numpy())
        if int(self.num_bad.numpy()) > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > 1e-8:  # PyTorch's eps: at min_lr nothing changes
                self.learning_rate.assign(new_lr)
                lr = float(self.learning_rate.numpy())
            self.cooldown_counter.assign(self.cooldown)
            self.num_bad.assign(0)
        return lr


class EarlyStopping(_Monitor):
    """Says stop after `patience` evaluations without an improvement > min_delta.

    Args:
      patience: evaluations >= 1. min_delta: >= 0. mode: "max" or "min".
    """

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "max",
                 name: str = "early_stopping"):
        super().__init__(mode, min_delta, name)
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        self.patience = int(patience)

    def update(self, metric: float) -> bool:
        """Records one evaluation (eager); True when training should stop."""
        self._improved(metric)
        return int(self.num_bad.numpy()) >= self.patience
