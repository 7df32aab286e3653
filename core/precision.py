"""Dtype policies and dynamic loss scaling for mixed precision.

A policy is given to a model at construction, never read from a global:
variables stay float32, convolutions run in the compute dtype, and softmax,
losses, batch-norm statistics and logits run in float32.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Policy:
    """A named pair of dtypes.

    Attributes:
      name: "float32", "mixed_float16" or "mixed_bfloat16".
      compute_dtype: dtype of convolutions and activations.
      variable_dtype: dtype of every variable (always float32 here).
    """
    name: str
    compute_dtype: tf.DType
    variable_dtype: tf.DType = tf.float32

    @property
    def needs_loss_scaling(self) -> bool:
        """float16 underflows small gradients; bfloat16 has float32's range."""
        return self.compute_dtype == tf.float16


POLICIES = {
    "float32": Policy("float32", tf.float32),
    "mixed_float16": Policy("mixed_float16", tf.float16),
    "mixed_bfloat16": Policy("mixed_bfloat16", tf.bfloat16),
}


def get_policy(policy: "str | Policy") -> Policy:
    """Returns the Policy for a name (or the Policy itself).

    Raises:
      ValueError: naming the accepted names, for an unknown one.
    """
    if isinstance(policy, Policy):
        return policy
    try:
        return POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"unknown precision policy {policy!r}; expected one of "
            f"{sorted(POLICIES)}") from None


class DynamicLossScale(tf.Module):
    """Dynamic loss scaling for float16 training.

    float16 flushes gradients below ~6e-8 to zero; multiplying the loss by a
    large scale S before differentiation keeps them representable, and the
    gradients are divided by S before the update. S adapts: a step whose
    gradients are not all finite is skipped and S is divided by `factor`
    (never below 1); after `growth_interval` finite steps in a row S is
    multiplied by `factor` (if that stays finite).

    Use in a train step (inside tf.function and/or strategy.run):
      with tf.GradientTape() as tape:
          loss = loss_fn(...)                      # float32
          scaled = loss_scale.scale_loss(loss)
      grads, finite = loss_scale.unscale(tape.gradient(scaled, variables))
      optimizer.apply(grads, variables, finite=finite)  # skips when False
      loss_scale.update(finite)

    Under float32 and bfloat16, `for_policy` returns a disabled scaler:
    scale 1, `unscale` returns the gradients unchanged with finite=True
    (it never skips; non-finite guards are the trainer's job there) and
    `update` does nothing.

    Attributes:
      scale: float32 tf.Variable S.
      good_steps: int64 tf.Variable, finite steps since the last change of S.
    """

    def __init__(self, initial_scale: float = 2.0 ** 15, growth_interval: int = 2000,
                 factor: float = 2.0, *, enabled: bool = True, min_scale: float = 1.0,
                 name: str = "loss_scale"):
        super().__init__(name=name)
        if growth_interval < 1 or factor <= 1.0 or not initial_scale >= min_scale > 0:
            raise ValueError(
                "DynamicLossScale: need growth_interval >= 1, factor > 1 and "
                f"initial_scale >= min_scale > 0, got growth_interval={growth_interval}, "
                f"factor={factor}, initial_scale={initial_scale}, min_scale={min_scale}")
        self.enabled = bool(enabled)
        self.growth_interval = int(growth_interval)
        self.factor = float(factor)
        self.min_scale = float(min_scale)
        # ONLY_FIRST_REPLICA: `update` may run inside strategy.run; `unscale`
        # makes `finite` identical on every replica, so any copy will do.
        replicated = dict(trainable=False,
                          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        with self.name_scope:
            self.scale = tf.Variable(float(initial_scale) if enabled else 1.0,
                                     dtype=tf.float32, name="scale", **replicated)
            self.good_steps = tf.Variable(0, dtype=tf.int64, name="good_steps",
                                          **replicated)

    @classmethod
    def for_policy(cls, policy: "str | Policy", **kwargs) -> "DynamicLossScale":
        """An enabled scaler for mixed_float16, a disabled one otherwise."""
        if get_policy(policy).needs_loss_scaling:
            return cls(**kwargs)
        return cls(enabled=False, name=kwargs.get("name", "loss_scale"))

    def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
        """loss * S (in the loss dtype, normally float32)."""
        if not self.enabled:
            return loss
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads) -> tuple[list, tf.Tensor]:
        """Divides gradients by S and checks them.

        Args:
          grads: list of gradient tensors (None entries are kept as None).
        Returns:
          (grads / S, all_finite): all_finite is a bool scalar, reduced over
          replicas inside strategy.run so every replica skips together.
        """
        grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        if not self.enabled:
            return grads, tf.constant(True)
        inverse = 1.0 / self.scale
        grads = [None if g is None else g * tf.cast(inverse, g.dtype) for g in grads]
        checks = [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        finite = tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                 tf.cast(tf.logical_not(finite), tf.float32))
            finite = tf.equal(bad, 0.0)
        return grads, finite

    def update(self, all_finite: tf.Tensor) -> tf.Tensor:
        """Halves S on a non-finite step, doubles it after growth_interval good ones.

        Returns:
          all_finite (so callers can chain it), unchanged.
        """
        all_finite = tf.convert_to_tensor(all_finite, tf.bool)
        if not self.enabled:
            return all_finite
        good = tf.where(all_finite, self.good_steps + 1, tf.zeros_like(self.good_steps))
        grow = tf.logical_and(all_finite, good >= self.growth_interval)
        grown = self.scale * self.factor
        grown = tf.where(tf.math.is_finite(grown), grown, self.scale)
        shrunk = tf.maximum(self.scale / self.factor, self.min_scale)
        new_scale = tf.where(grow, grown, tf.where(all_finite, self.scale, shrunk))
        with tf.control_dependencies([new_scale, good]):
            self.scale.assign(new_scale)
            self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))
        return all_finite


def cpu_flags() -> set:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def default_policy_name() -> str:
    """The policy `--precision=auto` picks for this machine.

    - a GPU of compute capability >= 8 (Ampere on): mixed_bfloat16 (tensor
      cores, float32's range, no loss scaling);
    - an older GPU >= 7 (Volta, Turing): mixed_float16 with loss scaling;
    - a CPU with AVX-512 BF16 or AMX: mixed_bfloat16 (oneDNN's bfloat16
      convolutions ran 2.0x float32's throughput on an AVX-512 BF16 CPU
      without AMX, the hardware's ratio; AMX tiles give more);
    - anything else: float32.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        major = (details.get("compute_capability") or (0, 0))[0]
        if major >= 8:
            return "mixed_bfloat16"
        return "mixed_float16" if major >= 7 else "float32"
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return "mixed_bfloat16"
    return "float32"
