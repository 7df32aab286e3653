"""Normalisations on tf.Module: batch norm (with an optional cross-replica
mode and a freeze switch), layer norm and ConvNeXt's layer scale.

Training normalises by the batch statistics and moves the moving averages
towards them; inference normalises by the moving averages:

  y = scale * (x - mean) / sqrt(var + eps) + offset
  moving_mean     <- momentum * moving_mean     + (1 - momentum) * mean
  moving_variance <- momentum * moving_variance + (1 - momentum) * var_unbiased

`var_unbiased` is the batch variance with Bessel's correction n/(n-1) (n the
number of pixels in the batch), what TensorFlow's fused kernel returns and
what Keras 2 (fused) and PyTorch store; normalisation itself uses the biased
variance. Statistics and the four variables are float32 under every policy.

Speed: the local path is one `FusedBatchNormV3` op, which on CPU takes
bfloat16/float16 activations with float32 scale/offset and accumulates in
float32, so no cast of the activations is needed in mixed precision. The
cross-replica path sums (count, sum, sum of squares) over replicas with one
`all_reduce` and applies `x * a + b` with per-channel `a`, `b`.

Freezing (`frozen`, a float32 variable shared by the layers of a pretrained
encoder, 1 = frozen): while it reads 1, training-mode calls behave as
inference (normalise by the moving statistics, update nothing, record
nothing for the recompute below); the switch is a variable, not a Python
bool, so one traced train step serves both phases of a fine-tuning run.

Re-estimating the moving statistics (`record_batch_statistics`): inside that
context a training-mode call still normalises by the batch statistics, but
leaves the moving averages alone and hands the recorder the float64 sums
(count, sum, sum of squares) of its input, so a caller can pool them over many
batches and replicas into the exact population statistics
(`train_loop.bn_recompute.recompute_batch_norm`).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

import tensorflow as tf

from core.precision import Policy
from layers.base import Module, once, static_channels


_RECORDERS = threading.local()


class BatchStatistics:
    """Per-layer float64 sums of the inputs of training-mode BatchNorm calls.

    For a layer with C channels, `sums(layer)` is a float64 tensor [1 + 2C]:
    (n, sum over n values of x per channel, sum of x**2 per channel), with n
    = B*H*W pixels of this replica's batch (summed over the layer's calls in
    the traced forward pass). Each call's mean and variance are the float32
    moments the normalisation computed anyway (the fused kernel's, which
    accumulate in float32 about the mean), turned into float64 sums only
    then, so pooling many batches loses no precision to the
    E[x^2] - E[x]^2 cancellation.
    """

    def __init__(self):
        self._sums: dict = {}

    def add(self, layer: "BatchNorm", count: tf.Tensor, mean: tf.Tensor,
            variance: tf.Tensor) -> None:
        """Adds `count` values per channel with float32 `mean` and biased
        `variance` [C] for `layer`."""
        n = tf.cast(count, tf.float64)
        mean = tf.cast(mean, tf.float64)
        var = tf.cast(variance, tf.float64)
        sums = tf.concat([tf.reshape(n, [1]), n * mean, n * (var + tf.square(mean))], 0)
        key = id(layer)
        if key in self._sums:
            sums = self._sums[key][1] + sums
        self._sums[key] = (layer, sums)

    def sums(self, layer: "BatchNorm") -> Optional[tf.Tensor]:
        """float64 [1 + 2C], or None when `layer` was not called."""
        entry = self._sums.get(id(layer))
        return None if entry is None else entry[1]


@contextlib.contextmanager
def record_batch_statistics() -> Iterator[BatchStatistics]:
    """In this context (this thread), training-mode BatchNorm calls record
    their input statistics in the yielded `BatchStatistics` instead of
    updating the moving averages; normalisation is unchanged (by the batch).

    It acts when the layers are called, i.e. while a `tf.function` is traced:
    enter it inside the traced function (inside the replica function under
    `strategy.run`, whose replicas may trace in threads of their own).
    """
    stack = getattr(_RECORDERS, "stack", None)
    if stack is None:
        stack = _RECORDERS.stack = []
    recorder = BatchStatistics()
    stack.append(recorder)
    try:
        yield recorder
    finally:
        stack.pop()


def _active_recorder() -> Optional[BatchStatistics]:
    stack = getattr(_RECORDERS, "stack", None)
    return stack[-1] if stack else None


def _count(x: tf.Tensor) -> tf.Tensor:
    """B*H*W of x [B,H,W,C] as a float32 scalar."""
    return tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)


class _Untracked:
    """A reference tf.Module does not walk (no variables, no checkpoint)."""

    def __init__(self, value):
        self.value = value


def _live_count(x: tf.Tensor, live) -> tf.Tensor:
    """The pixel count, 0 while frozen: the recompute then skips the layer."""
    return _count(x) if live is None else _count(x) * live


def _replicas_in_sync() -> int:
    """Replicas of the current replica context; 1 in a cross-replica context."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


class BatchNorm(Module):
    """Batch normalisation over the batch and spatial axes of NHWC input.

    Args:
      momentum: moving-average momentum (Keras' 0.99).
      epsilon: added to the variance (Keras' 1e-3).
      cross_replica: under `tf.distribute`, normalise by the statistics of
        the global batch (all replicas), i.e. synchronised batch norm.
      frozen: optional float32 scalar tf.Variable; while it is 1,
        training-mode calls are inference-mode calls (see the module
        docstring). Owned by the caller (not tracked here).

    Variables (float32, [C]): `scale` (1), `offset` (0) trainable;
    `moving_mean` (0), `moving_variance` (1) non-trainable, one copy per
    replica read as their mean (`ON_READ`, like Keras).

    Call: `x` [B,H,W,C] any float dtype, `training` Python bool ->
    [B,H,W,C] in the compute dtype.
    """

    def __init__(self, *, momentum: float = 0.99, epsilon: float = 1e-3,
                 cross_replica: bool = False, frozen: Optional[tf.Variable] = None,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        # Held untracked: the flag belongs to the model (one variable in its
        # checkpoint), not to every layer's variables.
        self._frozen = _Untracked(frozen)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1]; got {momentum}")
        if epsilon <= 0.0:
            raise ValueError(f"BatchNorm epsilon must be > 0; got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.cross_replica = bool(cross_replica)

    @once
    def _build(self, x: tf.Tensor) -> None:
        c = static_channels(x, self.name)
        self.scale = self.make_variable("scale", lambda: tf.ones([c]))
        self.offset = self.make_variable("offset", lambda: tf.zeros([c]))
        self.moving_mean = self.make_variable(
            "moving_mean", lambda: tf.zeros([c]), trainable=False, on_read=True)
        self.moving_variance = self.make_variable(
            "moving_variance", lambda: tf.ones([c]), trainable=False, on_read=True)

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        self._build(x)
        x = tf.cast(x, self.compute_dtype)
        if not training:
            return self._normalize_moving(x)
        # live: 1.0 when training normally, 0.0 when frozen.
        live = None if self._frozen.value is None else 1.0 - self._frozen.value
        cross_replica = self.cross_replica and _replicas_in_sync() > 1
        if cross_replica:
            y, mean, var = self._cross_replica_normalize(x)
        else:
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, self.scale, self.offset, epsilon=self.epsilon,
                is_training=True)
        recorder = _active_recorder()
        if recorder is None:
            self._update_moving(mean, var, live)
        elif cross_replica:
            # The recorder sums over replicas itself: this replica's moments
            # (two passes; only when recording), not the global ones.
            local_mean, local_var = tf.nn.moments(tf.cast(x, tf.float32), axes=[0, 1, 2])
            recorder.add(self, _live_count(x, live), local_mean, local_var)
        else:
            # The fused kernel returns the Bessel-corrected variance.
            n = _count(x)
            recorder.add(self, _live_count(x, live), mean, var * (n - 1.0) / tf.maximum(n, 1.0))
        if live is None:
            return y
        # Frozen: the inference output (a select, so no tf.cond: the
        # cross-replica all_reduce above must run on every replica alike).
        return tf.where(live > 0.5, y, self._normalize_moving(x))

    def _normalize_moving(self, x: tf.Tensor) -> tf.Tensor:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, self.scale, self.offset, mean=self.moving_mean.read_value(),
            variance=self.moving_variance.read_value(),
            epsilon=self.epsilon, is_training=False)
        return y

    def inference_affine(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Inference as one per-channel affine map: returns float32 (a, b)
        with `bn(x, training=False) == a * x + b`, so a preceding linear layer
        can absorb it (`layers.blocks.ConvBNAct` folds it into its conv)."""
        a = self.scale * tf.math.rsqrt(self.moving_variance.read_value() + self.epsilon)
        return a, self.offset - self.moving_mean.read_value() * a

    def _cross_replica_normalize(self, x: tf.Tensor):
        """Normalises by global-batch statistics; returns (y, mean, var_unbiased)."""
        xf = tf.cast(x, tf.float32)
        count = tf.cast(tf.reduce_prod(tf.shape(xf)[:-1]), tf.float32)
        local = tf.concat([
            tf.reshape(count, [1]),
            tf.reduce_sum(xf, axis=[0, 1, 2]),
            tf.reduce_sum(tf.square(xf), axis=[0, 1, 2]),
        ], axis=0)
        total = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, local)
        c = self.scale.shape[0]
        n = total[0]
        mean = total[1:1 + c] / n
        # E[x^2] - E[x]^2 can go slightly negative by round-off.
        var = tf.maximum(total[1 + c:] / n - tf.square(mean), 0.0)
        a = self.scale * tf.math.rsqrt(var + self.epsilon)
        b = self.offset - mean * a
        y = x * tf.cast(a, x.dtype) + tf.cast(b, x.dtype)
        return y, mean, var * n / tf.maximum(n - 1.0, 1.0)

    def _update_moving(self, mean: tf.Tensor, var: tf.Tensor, live=None) -> None:
        # The statistics carry no gradient into the moving averages.
        mean = tf.stop_gradient(mean)
        var = tf.stop_gradient(var)
        decay = 1.0 - self.momentum
        if live is not None:  # frozen: a decay of 0 leaves them bit-identical
            decay = decay * live
        self.moving_mean.assign_sub((self.moving_mean - mean) * decay)
        self.moving_variance.assign_sub((self.moving_variance - var) * decay)


class LayerNorm(Module):
    """Layer normalisation over the channel axis (ConvNeXt's, Keras'
    `LayerNormalization(axis=-1)`):

      y = scale * (x - mean_c(x)) / sqrt(var_c(x) + eps) + offset

    with mean and (biased) variance over the C channels of each pixel,
    computed in float32 whatever the policy (like the batch norm's
    statistics). Variables (float32, [C]): `scale` (1), `offset` (0).

    Call: `x` [..., C] any float dtype -> same shape, compute dtype.
    """

    def __init__(self, *, epsilon: float = 1e-6, policy: "str | Policy" = "float32",
                 name: str | None = None):
        super().__init__(policy=policy, name=name)
        if epsilon <= 0.0:
            raise ValueError(f"LayerNorm epsilon must be > 0; got {epsilon}")
        self.epsilon = float(epsilon)

    @once
    def _build(self, x: tf.Tensor) -> None:
        c = static_channels(x, self.name)
        self.scale = self.make_variable("scale", lambda: tf.ones([c]))
        self.offset = self.make_variable("offset", lambda: tf.zeros([c]))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        self._build(x)
        xf = tf.cast(x, tf.float32)
        mean, var = tf.nn.moments(xf, axes=[-1], keepdims=True)
        a = tf.math.rsqrt(var + self.epsilon) * self.scale
        return tf.cast(xf * a + (self.offset - mean * a), self.compute_dtype)


class LayerScale(Module):
    """ConvNeXt's layer scale: `x * scale`, one learned factor per channel,
    initialised small (1e-6) so a fresh residual branch starts near zero.

    Variable: `scale` float32 [C]. Call: `x` [..., C] -> compute dtype.
    """

    def __init__(self, init_value: float = 1e-6, *, policy: "str | Policy" = "float32",
                 name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.init_value = float(init_value)

    @once
    def _build(self, x: tf.Tensor) -> None:
        c = static_channels(x, self.name)
        self.scale = self.make_variable("scale", lambda: tf.fill([c], self.init_value))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        self._build(x)
        return tf.cast(x, self.compute_dtype) * tf.cast(self.scale, self.compute_dtype)
