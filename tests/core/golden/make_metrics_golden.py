"""Writes metrics_golden.json: torchmetrics' multiclass confusion matrix,
Jaccard index (IoU), F1, precision, recall and accuracy on small fixed label
and prediction maps with the ignore index 255.

tests/core/test_metrics.py feeds the same maps to core.metrics.ConfusionMatrix
and compares; it reads only the JSON, so CI needs neither torch nor
torchmetrics. To regenerate:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy    # the CPU wheel
    /tmp/torchvenv/bin/pip install torchmetrics==1.9.0
    /tmp/torchvenv/bin/python tests/core/golden/make_metrics_golden.py

Conventions compared: rows are true classes (both); pixels labelled 255 are
left out (torchmetrics' ignore_index=255); macro means leave out classes with
TP + FP + FN = 0 (torchmetrics >= 1.0 does, as core.metrics does). Per-class
values of such a class are 0 in torchmetrics (zero_division=0) and NaN in
core.metrics: the test compares per-class values where the union is not
empty and checks NaN where it is. "accuracy" is torchmetrics'
average="micro" MulticlassAccuracy, which is the overall pixel accuracy.

Cases (K = 5, labels [2,6,7] uint8):
  random           every class present, ~15% ignored pixels.
  absent_class     class 3 in neither labels nor predictions (empty union).
  only_predicted   class 2 is predicted but never true (IoU 0, in the means);
                   class 4 is true but never predicted (IoU 0, in the means).
"""
import json
import os

import numpy as np
import torch
import torchmetrics
from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix,
                                         MulticlassF1Score, MulticlassJaccardIndex,
                                         MulticlassPrecision, MulticlassRecall)

K = 5
IGNORE = 255
SHAPE = (2, 6, 7)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics_golden.json")


def _maps(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, size=SHAPE)
    predicted = np.where(rng.random(SHAPE) < 0.6, labels, rng.integers(0, K, size=SHAPE))
    labels[rng.random(SHAPE) < 0.15] = IGNORE
    return labels, predicted


def _cases():
    random = _maps(0)
    labels, predicted = _maps(1)
    labels[labels == 3] = 0
    predicted[predicted == 3] = 1
    absent = labels, predicted
    labels, predicted = _maps(2)
    labels[labels == 2] = 1
    predicted[predicted == 4] = 0
    return {"random": random, "absent_class": absent, "only_predicted": (labels, predicted)}


def _scores(labels, predicted):
    target, preds = torch.tensor(labels), torch.tensor(predicted)
    kw = dict(num_classes=K, ignore_index=IGNORE)

    def run(metric):
        return metric(preds, target).double().numpy().tolist()

    return {
        "confusion_matrix": run(MulticlassConfusionMatrix(**kw)),
        "iou": run(MulticlassJaccardIndex(average="none", **kw)),
        "mean_iou": run(MulticlassJaccardIndex(average="macro", **kw)),
        "f1": run(MulticlassF1Score(average="none", **kw)),
        "mean_f1": run(MulticlassF1Score(average="macro", **kw)),
        "precision": run(MulticlassPrecision(average="none", **kw)),
        "recall": run(MulticlassRecall(average="none", **kw)),
        "overall_accuracy": run(MulticlassAccuracy(average="micro", **kw)),
    }


def main():
    cases = {}
    for name, (labels, predicted) in _cases().items():
        cases[name] = dict(labels=labels.astype(int).tolist(),
                           predicted=predicted.astype(int).tolist(),
                           torchmetrics=_scores(labels, predicted))
    golden = {
        "made_by": "tests/core/golden/make_metrics_golden.py",
        "torch_version": torch.__version__,
        "torchmetrics_version": torchmetrics.__version__,
        "num_classes": K,
        "ignore_index": IGNORE,
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} (torchmetrics {torchmetrics.__version__}, {len(cases)} cases)")


if __name__ == "__main__":
    main()
