"""Validation between inner loops: exact batch-norm statistics for the
current weights, then the loss and confusion matrix over the whole
validation set, written to TensorBoard with a few images.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from core import metrics as metrics_lib
from core.data import labels as labels_lib
from train_loop import bn_recompute, distribute
from train_loop import steps as steps_lib

# The recompute batches are kept in memory up to this size (20 batches of
# 8 x 256 x 256 x 5 float32 are 210 MB).
RECOMPUTE_CACHE_BYTES = 512 * 2**20


def display_rgb(images: tf.Tensor, rgb_channels: Sequence[int]) -> tf.Tensor:
    """[B,H,W,C] raw bands -> [B,H,W,3] float in [0,1], stretched per image
    between the 2nd and 98th percentile like a GIS viewer's default."""
    rgb = tf.gather(tf.cast(images, tf.float32), list(rgb_channels), axis=-1).numpy()
    lo = np.percentile(rgb, 2, axis=(1, 2, 3), keepdims=True)
    hi = np.percentile(rgb, 98, axis=(1, 2, 3), keepdims=True)
    return tf.constant(np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0))


def write_scalars(writer, step: int, values: dict) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)


class Evaluator:
    """`evaluator(step) -> dict` of validation scalars (loss, overall_accuracy,
    mean_iou, mean_f1, iou/<class>, mean_iou_excluding), after re-estimating
    the batch-norm statistics on `bn_batches` batches of `bn_dataset_fn`
    (0: not at all); `bn_seconds` adds up the time that took.

    Across several workers each one evaluates the whole validation set
    itself: sharded tiles give workers unequal batch counts, which
    collectives cannot take, and identical scores keep the plateau and
    early-stopping decisions identical on every worker.
    """

    def __init__(self, model, loss_fn: Callable, strategy: tf.distribute.Strategy, *,
                 eval_dataset_fn: Callable, bn_dataset_fn: Callable, bn_batches: int,
                 class_names: Sequence[str], palette, rgb_channels: Sequence[int],
                 exclude_from_means: Sequence[int], summary_batch: dict,
                 summary_images: int, writer, log: Callable[[str], None] = print):
        self.model, self.strategy, self.writer, self.log = model, strategy, writer, log
        self.class_names, self.palette = list(class_names), palette
        self.rgb_channels, self.exclude = list(rgb_channels), tuple(exclude_from_means)
        self.summary_batch, self.summary_images = summary_batch, summary_images
        self.bn_dataset_fn, self.bn_batches, self.bn_seconds = bn_dataset_fn, bn_batches, 0.0
        self._bn_cache, self._bn_cacheable = None, True
        multi_worker = distribute.num_workers(strategy) > 1
        with (tf.init_scope() if multi_worker else strategy.scope()):
            self.confusion = metrics_lib.ConfusionMatrix(len(self.class_names))
        eval_step = steps_lib.make_eval_step(model, loss_fn, self.confusion)
        run_step = eval_step if multi_worker else steps_lib.distribute_step(strategy, eval_step)
        dataset = (eval_dataset_fn(None) if multi_worker
                   else strategy.distribute_datasets_from_function(eval_dataset_fn))

        @tf.function
        def mean_loss():
            total, count = tf.constant(0.0), tf.constant(0.0)
            for batch in dataset:
                total += run_step(batch)["loss"]
                count += 1.0
            return tf.math.divide_no_nan(total, count)

        self._mean_loss = mean_loss

    def recompute_statistics(self, step: int) -> None:
        """Exact batch-norm statistics for the current weights."""
        tic = time.perf_counter()
        done = bn_recompute.recompute_batch_norm(self.model, self._recompute_batches(),
                                                 self.bn_batches, self.strategy)
        seconds = time.perf_counter() - tic
        self.bn_seconds += seconds
        self.log(f"step {step}: batch-norm statistics re-estimated on {done['batches']} "
                 f"batches ({done['layers']} layers, {seconds:.1f} s)")

    def _recompute_batches(self):
        """The same `bn_batches` batches at every recompute: kept in memory
        after the first when they fit in `RECOMPUTE_CACHE_BYTES`, else drawn
        again from a fresh dataset.

        A fresh dataset, not a new iterator of one: a seeded shuffle
        reshuffles for each new iterator of one dataset object, so the batches
        would depend on how many recomputes this process has run, and a
        resumed run would see other batches than an uninterrupted one. Kept
        in memory because refilling the pipeline's shuffle buffer cost about
        as much as the forward passes; `take` ends the stream after the
        batches it needs so that no input work outlives it.
        """
        if self._bn_cache is not None:
            return self._bn_cache
        batches = iter(self.strategy.distribute_datasets_from_function(
            lambda ctx: self.bn_dataset_fn(ctx).take(self.bn_batches)))
        if not self._bn_cacheable:
            return batches
        kept, size = [], 0
        for batch in batches:
            kept.append(batch)
            size += sum(int(t.shape.num_elements()) * t.dtype.size
                        for t in tf.nest.flatten(batch, expand_composites=True))
            if size > RECOMPUTE_CACHE_BYTES:
                # Too big to keep: this recompute uses what was drawn plus the
                # rest of the stream, later ones draw afresh.
                self._bn_cacheable = False
                return itertools.chain(kept, batches)
        self._bn_cache = kept
        return kept

    def __call__(self, step: int) -> dict:
        if self.bn_batches > 0:
            self.recompute_statistics(step)
        self.confusion.reset()
        loss = float(self._mean_loss())
        result = self.confusion.result()
        values = {"loss": loss, "overall_accuracy": float(result["overall_accuracy"]),
                  "mean_iou": float(result["mean_iou"]), "mean_f1": float(result["mean_f1"])}
        values.update({f"iou/{name}": float(v)
                       for name, v in zip(self.class_names, result["iou"])})
        if self.exclude:
            values["mean_iou_excluding"] = float(
                self.confusion.result(exclude=self.exclude)["mean_iou"])
        write_scalars(self.writer, step, values)
        self._write_images(step)
        return values

    def _write_images(self, step: int) -> None:
        batch, n = self.summary_batch, self.summary_images
        predicted = tf.argmax(self.model(batch["image"], training=False), axis=-1)
        with self.writer.as_default(step=step):
            tf.summary.image("input", display_rgb(batch["image"][:n], self.rgb_channels),
                             max_outputs=n)
            tf.summary.image("label", labels_lib.colorize_tf(batch["label"][:n], self.palette),
                             max_outputs=n)
            tf.summary.image("prediction", labels_lib.colorize_tf(predicted[:n], self.palette),
                             max_outputs=n)
