"""Object-level scores: the SpaceNet building metric on class rasters.

Pixel metrics (core.metrics) say how many pixels are right; a map user
counts buildings. Here the objects of a class are the 4-connected
components of its mask (the polygons core.vectorize writes), in the ground
truth and in the prediction. A predicted object is a true positive when it
is matched one-to-one to a true object with IoU >= 0.5 (SpaceNet's
threshold); pairs are matched greedily, highest IoU first. Then

  precision = TP / predicted objects,  recall = TP / true objects,
  F1 = 2 P R / (P + R)   (0 when P + R = 0; None when there is no object).

Pixels the ground truth ignores (255) are removed from both masks first, so
an object split by an ignored boundary is two objects, in both.

Connected components come from GDAL's polygonizer through rasterio (the
`geo` extra), like the polygons.
"""
from __future__ import annotations

import numpy as np

from core.cog import require_rasterio

IOU_THRESHOLD = 0.5


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a [H,W] bool mask -> (ids [H,W] int32, 1..n
    inside the components and 0 outside, n)."""
    require_rasterio("object scores (--objects)")
    from rasterio import features  # pylint: disable=import-outside-toplevel
    mask = np.ascontiguousarray(mask, bool)
    found = [g for g, _ in features.shapes(mask.astype(np.uint8), mask=mask, connectivity=4)]
    if not found:
        return np.zeros(mask.shape, np.int32), 0
    ids = features.rasterize(((g, i + 1) for i, g in enumerate(found)), out_shape=mask.shape,
                             fill=0, dtype="int32")
    return ids, len(found)


def match_objects(true_mask: np.ndarray, pred_mask: np.ndarray,
                  threshold: float = IOU_THRESHOLD) -> dict:
    """Counts of one tile: {"tp", "fp", "fn", "true", "predicted"} (ints) and
    "ious": the IoU of each matched pair."""
    true_ids, num_true = label_components(true_mask)
    pred_ids, num_pred = label_components(pred_mask)
    both = (true_ids > 0) & (pred_ids > 0)
    pairs = pred_ids[both].astype(np.int64) * (num_true + 1) + true_ids[both]
    keys, inter = np.unique(pairs, return_counts=True)
    p, t = keys // (num_true + 1), keys % (num_true + 1)
    area_true = np.bincount(true_ids.ravel(), minlength=num_true + 1)
    area_pred = np.bincount(pred_ids.ravel(), minlength=num_pred + 1)
    iou = inter / (area_pred[p] + area_true[t] - inter)
    used_p, used_t, ious = set(), set(), []
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < threshold:
            break
        if p[k] in used_p or t[k] in used_t:
            continue
        used_p.add(p[k])
        used_t.add(t[k])
        ious.append(float(iou[k]))
    tp = len(ious)
    return {"tp": tp, "fp": num_pred - tp, "fn": num_true - tp, "true": num_true,
            "predicted": num_pred, "ious": ious}


def scores(tp: int, fp: int, fn: int) -> dict:
    """precision, recall, F1 of object counts (None without any object)."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None if precision is None and recall is None else 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


class ObjectScores:
    """Object counts of some classes summed over tiles.

    Args:
      class_ids: {name: class id} of the classes scored (e.g. {"building": 1}).
      ignore_index: label value removed from both masks.
    """

    def __init__(self, class_ids: dict, ignore_index: int = 255):
        self.class_ids, self.ignore_index = dict(class_ids), ignore_index
        self.counts = {name: {"tp": 0, "fp": 0, "fn": 0} for name in self.class_ids}

    def update(self, labels: np.ndarray, predicted: np.ndarray) -> dict:
        """Adds one tile ([H,W] uint8 labels and predicted ids); returns its
        own scores {name: {tp, fp, fn, precision, recall, f1, mean_iou}}."""
        labels, predicted = np.asarray(labels), np.asarray(predicted)
        keep = labels != self.ignore_index
        tile = {}
        for name, k in self.class_ids.items():
            found = match_objects((labels == k) & keep, (predicted == k) & keep)
            for key in ("tp", "fp", "fn"):
                self.counts[name][key] += found[key]
            tile[name] = self._result(found)
        return tile

    @staticmethod
    def _result(counts: dict) -> dict:
        out = {key: int(counts[key]) for key in ("tp", "fp", "fn")}
        out.update(scores(out["tp"], out["fp"], out["fn"]))
        if "ious" in counts:
            out["mean_iou"] = float(np.mean(counts["ious"])) if counts["ious"] else None
        return out

    def result(self) -> dict:
        """{name: {tp, fp, fn, precision, recall, f1}} over all tiles."""
        return {name: self._result(c) for name, c in self.counts.items()}
