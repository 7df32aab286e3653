"""Streaming confusion matrix and the segmentation scores derived from it.

The matrix is one int64 tf.Variable [K,K] (rows true class, columns predicted
class, scikit-learn's convention) with `synchronization=ON_READ` and
`aggregation=SUM`: under a tf.distribute strategy each replica adds to its own
copy inside `strategy.run`, and reading it in cross-replica context sums the
copies. int64 counts stay exact over a whole Potsdam evaluation (about 1e9
pixels), where float32 counts would lose pixels above 2**24.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from core.data.labels import IGNORE_INDEX


class ConfusionMatrix(tf.Module):
    """Confusion matrix accumulated over batches.

    Use:
      cm = ConfusionMatrix(6)            # under strategy.scope() if distributed
      cm.update(labels, predicted_ids)   # eager, tf.function or strategy.run
      scores = cm.result(exclude=(5,))   # means without class 5
      cm.reset()

    Args:
      num_classes: K.
      ignore_index: label value of pixels left out of the counts.
      exclude: default classes left out of the means of `result`.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 exclude: Sequence[int] = (), name: str = "confusion_matrix"):
        super().__init__(name=name)
        if int(num_classes) < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.exclude = self._check_exclude(exclude)
        with self.name_scope:
            self.matrix = tf.Variable(
                tf.zeros([self.num_classes, self.num_classes], tf.int64),
                trainable=False, name="matrix",
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM)

    def _check_exclude(self, exclude: Sequence[int]) -> tuple[int, ...]:
        exclude = tuple(int(c) for c in exclude)
        bad = [c for c in exclude if not 0 <= c < self.num_classes]
        if bad:
            raise ValueError(f"ConfusionMatrix: classes to exclude {bad} are not in "
                             f"[0, {self.num_classes})")
        return exclude

    def update(self, labels, predicted_ids) -> tf.Operation:
        """Adds a batch.

        Args:
          labels: [...] integer true ids in [0, K), or `ignore_index` for
            pixels to skip.
          predicted_ids: [...] integer predicted ids in [0, K), same shape
            (not checked where the label is ignored).
        Returns:
          the assign_add op.
        Raises:
          tf.errors.InvalidArgumentError: when the op runs (eagerly, in a
            tf.function or under strategy.run), for a label that is neither
            in [0, K) nor `ignore_index` (a negative "void" label -1 too), or
            a predicted id outside [0, K); the message gives the range of the
            values seen. Under XLA (jit_compile) TensorFlow drops assertions.
        """
        k = self.num_classes
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
        predicted = tf.reshape(tf.cast(predicted_ids, tf.int64), [-1])
        keep = tf.not_equal(labels, self.ignore_index)
        # An id outside [0, K) would land outside the K*K bins (dropped) or
        # in another class's bin: a label bug must fail loudly instead. The
        # min and max over the kept pixels are both the check (one pass each,
        # as cheap as a reduce_all) and what the message shows.
        label_range = _range(tf.where(keep, labels, 0))
        predicted_range = _range(tf.where(keep, predicted, 0))
        # The data are tensors and constant strings only: a string op would
        # not compile under XLA (where TensorFlow drops the Assert itself).
        check = tf.debugging.Assert(
            tf.logical_and(_inside(label_range, k), _inside(predicted_range, k)),
            [f"ConfusionMatrix.update: labels must be in [0, {k}) or the ignore index "
             f"{self.ignore_index}, predicted ids in [0, {k}); ignored pixels left out, "
             "the labels span", label_range, "and the predicted ids", predicted_range])
        # Ignored pixels go to an extra bin k*k, sliced off: no dynamic shapes.
        with tf.control_dependencies([check]):
            flat = tf.cast(tf.where(keep, labels * k + predicted, k * k), tf.int32)
        # A segment sum with a static segment count compiles under XLA
        # (jit_compile train steps); bincount's output size does not.
        counts = tf.math.unsorted_segment_sum(
            tf.ones_like(flat, dtype=tf.int64), flat, k * k + 1)[:k * k]
        return self.matrix.assign_add(tf.reshape(counts, [k, k]))

    def reset(self) -> None:
        """Sets every count to zero (call in cross-replica context)."""
        self.matrix.assign(tf.zeros_like(self.matrix))

    def result(self, exclude: Sequence[int] | None = None) -> dict[str, tf.Tensor]:
        """Scores from the counts so far.

        Per class (float64 [K]; NaN where the denominator is 0):
          iou = TP / (TP + FP + FN), f1 = 2 TP / (2 TP + FP + FN),
          precision = TP / (TP + FP), recall = TP / (TP + FN).
        mean_iou and mean_f1 average the classes with a non-empty union
        (TP + FP + FN > 0) that are not in `exclude`; 0 if there is none.
        overall_accuracy = trace / sum over all classes (0 for no pixel).

        Args:
          exclude: classes left out of the means; None uses the
            constructor's `exclude`.
        Returns:
          dict of float64 tensors, plus "confusion_matrix" (int64 [K,K]).
        """
        exclude = self.exclude if exclude is None else self._check_exclude(exclude)
        return scores_from_matrix(tf.convert_to_tensor(self.matrix), exclude)

    def table(self, class_names: Sequence[str] | None = None,
              exclude: Sequence[int] | None = None) -> str:
        """A readable per-class table with the means (eager only)."""
        report = self.to_dict(class_names, exclude)
        width = max(len(n) for n in report["class_names"] + ["class"])
        lines = [f"{'class':<{width}}  {'IoU':>7}  {'F1':>7}  {'prec':>7}  "
                 f"{'recall':>7}  {'pixels':>12}"]
        for name in report["class_names"]:
            c = report["classes"][name]
            cells = [_fmt(c[key]) for key in ("iou", "f1", "precision", "recall")]
            lines.append(f"{name:<{width}}  " + "  ".join(f"{s:>7}" for s in cells)
                         + f"  {c['support']:>12d}")
        lines.append(f"overall accuracy {_fmt(report['overall_accuracy'])}  "
                     f"mean IoU {_fmt(report['mean_iou'])}  mean F1 {_fmt(report['mean_f1'])}")
        if "without" in report:
            w = report["without"]
            lines.append(f"without {', '.join(w['excluded'])}: mean IoU "
                         f"{_fmt(w['mean_iou'])}  mean F1 {_fmt(w['mean_f1'])}")
        return "\n".join(lines)

    def to_dict(self, class_names: Sequence[str] | None = None,
                exclude: Sequence[int] | None = None) -> dict:
        """JSON-ready scores (eager only); NaN becomes None, and so do the
        overall accuracy and the means when no labelled pixel was counted
        (or, for "without", none of a class left in the means).

        Returns:
          {"class_names", "labelled_pixels", "overall_accuracy", "mean_iou", "mean_f1",
           "classes": {name: {iou, f1, precision, recall, support}},
           "confusion_matrix": [[int]], and, when classes are excluded,
           "without": {"excluded": [names], "mean_iou", "mean_f1"}}.
          The top-level means use every class; "without" leaves out `exclude`.
        """
        if class_names is None:
            class_names = [str(i) for i in range(self.num_classes)]
        class_names = [str(n) for n in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError(f"ConfusionMatrix: {len(class_names)} class names given "
                             f"for {self.num_classes} classes")
        exclude = self.exclude if exclude is None else self._check_exclude(exclude)
        full = {k: np.asarray(v) for k, v in self.result(exclude=()).items()}
        counts = full["confusion_matrix"]
        union = counts.sum(0) + counts.sum(1) - np.diag(counts)

        def mean(value, left_out):
            # A mean over no class (no labelled pixel) is unknown, not 0.
            keep = union > 0
            keep[list(left_out)] = False
            return _json(value) if keep.any() else None

        report = {
            "class_names": class_names,
            "labelled_pixels": int(counts.sum()),
            "overall_accuracy": _json(full["overall_accuracy"]) if counts.sum() else None,
            "mean_iou": mean(full["mean_iou"], ()),
            "mean_f1": mean(full["mean_f1"], ()),
            "classes": {
                name: {"iou": _json(full["iou"][i]), "f1": _json(full["f1"][i]),
                       "precision": _json(full["precision"][i]),
                       "recall": _json(full["recall"][i]),
                       "support": int(full["confusion_matrix"][i].sum())}
                for i, name in enumerate(class_names)},
            "confusion_matrix": full["confusion_matrix"].astype(int).tolist(),
        }
        if exclude:
            part = self.result(exclude=exclude)
            report["without"] = {"excluded": [class_names[i] for i in exclude],
                                 "mean_iou": mean(part["mean_iou"], exclude),
                                 "mean_f1": mean(part["mean_f1"], exclude)}
        return report


def scores_from_matrix(matrix, exclude: Sequence[int] = ()) -> dict[str, tf.Tensor]:
    """The scores of ConfusionMatrix.result from a [K,K] count matrix."""
    counts = tf.cast(matrix, tf.float64)
    num_classes = counts.shape[0]
    tp = tf.linalg.diag_part(counts)
    predicted = tf.reduce_sum(counts, axis=0)  # TP + FP
    actual = tf.reduce_sum(counts, axis=1)  # TP + FN
    union = predicted + actual - tp

    def ratio(num, den):
        return tf.where(den > 0, num / tf.where(den > 0, den, 1.0),
                        tf.constant(math.nan, tf.float64))

    iou = ratio(tp, union)
    f1 = ratio(2.0 * tp, predicted + actual)
    keep = np.ones([num_classes], bool)
    keep[list(exclude)] = False
    in_mean = tf.logical_and(union > 0, tf.constant(keep))

    def mean(values):
        return tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(in_mean, values, 0.0)),
            tf.reduce_sum(tf.cast(in_mean, tf.float64)))

    return {
        "overall_accuracy": tf.math.divide_no_nan(tf.reduce_sum(tp), tf.reduce_sum(counts)),
        "iou": iou,
        "mean_iou": mean(iou),
        "f1": f1,
        "mean_f1": mean(f1),
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, actual),
        "confusion_matrix": tf.cast(matrix, tf.int64),
    }


def _range(values: tf.Tensor) -> tf.Tensor:
    """[min, max] of int64 values, both 0 for an empty tensor (whose min
    would otherwise be the largest int64)."""
    return tf.stack([tf.minimum(tf.reduce_min(values), 0),
                     tf.maximum(tf.reduce_max(values), 0)])


def _inside(value_range: tf.Tensor, k: int) -> tf.Tensor:
    return tf.logical_and(value_range[0] >= 0, value_range[1] < k)


def _json(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
