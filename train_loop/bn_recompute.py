"""Re-estimates the batch-norm moving statistics from training batches, with
the weights frozen, before an evaluation, a checkpoint or an export.

Why: the moving averages follow the batch statistics by an exponential moving
average (momentum 0.99: a memory of about 100 steps, and about 460 steps for
the initial values to fade to 1 %). A short run, or weights that move fast
under a one-cycle peak, leaves them far from the statistics the current
weights produce, and inference (which normalises by them) then predicts
garbage although the weights have learned. Recomputing them exactly is
cheap: forward passes only.

What (the population statistics of each layer's input over the N batches,
like `torch.optim.swa_utils.update_bn`, which averages with momentum=None):
every batch-norm layer's input is pooled over all pixels of all N batches
and all replicas, n pixels in all,

    moving_mean     = sum(x) / n
    moving_variance = sum((x - moving_mean)**2) / n     (pooled, not Bessel)

The forward passes run in training mode, so each layer sees the input it
saw in training (earlier layers normalised by their batch statistics,
dropout on); they update nothing but these two variables.

Pooled variance rather than the mean of the per-batch variances: a layer's
training output is normalised per batch, so over all training batches it has
mean 0 and variance 1; normalising the same inputs by the pooled statistics
gives exactly that (the mean of the batch variances leaves out the spread of
the batch means between batches, which at a deep level with a few pixels per
batch is not small). With a single batch the pooled statistics are that
batch's, so inference then reproduces the training-mode output. Without
Bessel's correction because normalisation itself divides by the biased
variance (the EMA stores the unbiased one, a factor n/(n-1), with n in the
hundreds of thousands here).

Exact under tf.distribute: each replica returns float64 (count, sum, sum of
squares) per layer, summed over replicas and batches before dividing, so two
replicas with half batches give what one device gives with the whole batch.
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Iterable, Optional

import tensorflow as tf

from layers.norm import BatchNorm, record_batch_statistics


def batch_norm_layers(model: tf.Module) -> list:
    """The built `layers.norm.BatchNorm` layers of `model`, in the
    deterministic order `tf.Module` walks its submodules."""
    return [m for m in model.submodules
            if isinstance(m, BatchNorm) and hasattr(m, "moving_mean")]


_SUMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _sums_fn(model: tf.Module, bn_layers: list, strategy: tf.distribute.Strategy):
    """One traced `batch -> float64 [sum over layers of (1 + 2C)]` per
    (model, strategy): the layers' (count, sum, sum of squares), summed over
    replicas. Cached so every evaluation of a run reuses the trace."""
    cache = _SUMS.setdefault(model, {})
    key = (id(strategy), len(bn_layers))
    if key in cache:
        return cache[key][1]
    sizes = [1 + 2 * int(layer.moving_mean.shape[0]) for layer in bn_layers]

    def replica_sums(batch):
        images = batch["image"] if isinstance(batch, Mapping) else batch
        with record_batch_statistics() as recorder:
            model(images, training=True)
        parts = []
        for layer, size in zip(bn_layers, sizes):
            sums = recorder.sums(layer)
            parts.append(tf.zeros([size], tf.float64) if sums is None else sums)
        return tf.concat(parts, axis=0)

    @tf.function
    def sums_fn(batch):
        per_replica = strategy.run(replica_sums, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    # The strategy is kept alive with its function: the id stays its own.
    cache[key] = (strategy, sums_fn)
    return sums_fn


def recompute_batch_norm(model: tf.Module, batches: Iterable, num_batches: int,
                         strategy: Optional[tf.distribute.Strategy] = None) -> dict:
    """Sets every batch norm's moving statistics to the exact population
    statistics of its input over `num_batches` batches (weights frozen).

    Args:
      model: a built model (called once) whose normalisation layers are
        `layers.norm.BatchNorm`; `model(images, training=True)` is called.
      batches: an iterable of batches, `{"image": [B,H,W,C], ...}` dicts or
        image tensors: a `tf.data.Dataset`, an iterator, a list; under a
        strategy with several replicas, a distributed dataset or iterator
        (`strategy.distribute_datasets_from_function`). Use batches that do
        not come from the training iterator (a second iterator of the
        training data), so that the training stream, and an exact resume,
        do not depend on whether this ran.
      num_batches: batches to draw (>= 1); fewer when `batches` ends first.
      strategy: the strategy the model was built under; default: the
        current one (`tf.distribute.get_strategy()`).

    Returns:
      {"batches": batches used, "layers": layers updated, "pixels": pixels
      pooled per layer, summed over layers}.

    Raises:
      ValueError: num_batches < 1, no batch-norm layer built, or `batches`
        yielded nothing.
    """
    if int(num_batches) < 1:
        raise ValueError(f"recompute_batch_norm: num_batches must be >= 1; got {num_batches}")
    strategy = strategy or tf.distribute.get_strategy()
    bn_layers = batch_norm_layers(model)
    if not bn_layers:
        raise ValueError("recompute_batch_norm: the model has no built BatchNorm layer "
                         "(call the model once first)")
    sums_fn = _sums_fn(model, bn_layers, strategy)

    total = None
    used = 0
    iterator = iter(batches)
    for _ in range(int(num_batches)):
        try:
            batch = next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            break
        sums = sums_fn(batch)
        total = sums if total is None else total + sums
        used += 1
    if total is None:
        raise ValueError("recompute_batch_norm: `batches` yielded no batch")

    updated, pixels = 0, 0.0
    offset = 0
    # In the strategy's cross-replica context an assignment reaches every
    # replica's copy of the (sync-on-read) statistics.
    with strategy.scope():
        for layer in bn_layers:
            c = int(layer.moving_mean.shape[0])
            sums = total[offset:offset + 1 + 2 * c]
            offset += 1 + 2 * c
            n = sums[0]
            if float(n) == 0.0:  # not called by the forward pass
                continue
            mean = sums[1:1 + c] / n
            # float64 sums of two-pass float32 moments: the cancellation of
            # E[x^2] - E[x]^2 costs nothing at float32 precision.
            var = tf.maximum(sums[1 + c:] / n - tf.square(mean), 0.0)
            layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
            layer.moving_variance.assign(tf.cast(var, layer.moving_variance.dtype))
            updated += 1
            pixels += float(n)
    return {"batches": used, "layers": updated, "pixels": pixels}
