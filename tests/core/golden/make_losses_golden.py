"""Writes losses_golden.json: segmentation_models_pytorch's (smp) losses and
torch's cross-entropy on small fixed logits and labels with the ignore index
255.

tests/core/test_losses.py evaluates core.losses on the same inputs and
compares; it reads only the JSON, so CI needs neither torch nor smp. To
regenerate:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy    # the CPU wheel
    /tmp/torchvenv/bin/pip install --no-deps segmentation-models-pytorch==0.6.0
    /tmp/torchvenv/bin/python tests/core/golden/make_losses_golden.py

Only smp's `losses` subpackage is loaded (its package __init__ imports the
model zoo: timm, torchvision, Pillow, none of which the losses use), hence
--no-deps.

Where the definitions match, and where they do not:
  ce       torch.nn.functional.cross_entropy(ignore_index=255), with class
           weights (weighted mean sum(w_y l) / sum(w_y), as ours) and with
           label smoothing (without weights: torch applies the weights to
           the smoothing term per class, which core.losses does not).
  dice, jaccard  smp DiceLoss / JaccardLoss("multiclass", smooth=1,
           ignore_index=255): per class over the batch, like ours. smp's Dice
           score is (I + s) / ((P + T) / 2 + s), ours (2 I + s) / (P + T + s):
           smp's smooth s is ours 2s (its Jaccard smoothing is ours). smp
           zeroes the term of a class absent from the labels and still
           divides by K, where ours keeps its smoothed term (which tends to 0
           only as the class's probabilities do). So the two are equal when
           every class is present (cases "all_present", "uneven"); with a
           class absent (case "absent") smp's value is ours with class
           weights 1 on the present classes and 0 on the absent ones, times
           |present| / K: the test checks that. smp's class_weights are a
           weighted mean over classes, as ours.
  focal    smp's FocalLoss("multiclass") is a different loss: a sigmoid
           (one-vs-rest binary) focal loss per class, averaged over classes,
           with RetinaNet's alpha. Its softmax form,
           `softmax_focal_loss_with_logits` (no alpha), is ours with
           alpha=None; it is fed the valid pixels only (it has no ignore
           index). A scalar alpha multiplies ours; the test checks that.
  lovasz   smp LovaszLoss("multiclass", ignore_index=255) is Berman's
           reference code (lovasz_softmax, classes="present"): per batch
           and per_image=True. Every image of these inputs has a valid pixel
           (for an all-ignored image Berman's softmax code returns an empty
           tensor; ours counts it as 0).
"""
import importlib.util
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

K = 4
IGNORE = 255
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "losses_golden.json")


def _smp_losses():
    """segmentation_models_pytorch.losses without the package __init__."""
    root = os.path.dirname(importlib.util.find_spec("segmentation_models_pytorch").origin)
    package = types.ModuleType("segmentation_models_pytorch")
    package.__path__ = [root]
    sys.modules["segmentation_models_pytorch"] = package
    import segmentation_models_pytorch.losses as losses  # pylint: disable=import-outside-toplevel
    from segmentation_models_pytorch.losses import _functional  # pylint: disable=import-outside-toplevel
    return losses, _functional


def _inputs(seed, shape=(2, 5, 6), absent=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, size=shape)
    if absent is not None:
        labels[labels == absent] = (absent + 1) % K
    labels[rng.random(shape) < 0.2] = IGNORE
    logits = (2.0 * rng.standard_normal(shape + (K,))).astype(np.float32)
    return labels, logits


def _f(x) -> float:
    return float(x.detach().double())


def _values(smp, functional, labels, logits):
    target = torch.tensor(labels, dtype=torch.long)
    scores = torch.tensor(logits).permute(0, 3, 1, 2)  # NHWC -> NCHW
    weights = [0.5, 2.0, 1.0, 3.0]
    keep = target != IGNORE
    valid_logits = torch.tensor(logits)[keep]  # [N, K]
    out = {
        "ce": _f(F.cross_entropy(scores, target, ignore_index=IGNORE)),
        "ce_class_weights": _f(F.cross_entropy(scores, target, ignore_index=IGNORE,
                                               weight=torch.tensor(weights))),
        "ce_label_smoothing_0.1": _f(F.cross_entropy(scores, target, ignore_index=IGNORE,
                                                     label_smoothing=0.1)),
        "dice": _f(smp.DiceLoss("multiclass", smooth=1.0, ignore_index=IGNORE)(scores, target)),
        "dice_class_weights": _f(smp.DiceLoss("multiclass", smooth=1.0, ignore_index=IGNORE,
                                              class_weights=weights)(scores, target)),
        "jaccard": _f(smp.JaccardLoss("multiclass", smooth=1.0,
                                      ignore_index=IGNORE)(scores, target)),
        "jaccard_class_weights": _f(smp.JaccardLoss("multiclass", smooth=1.0,
                                                    ignore_index=IGNORE,
                                                    class_weights=weights)(scores, target)),
        "lovasz": _f(smp.LovaszLoss("multiclass", ignore_index=IGNORE)(scores, target)),
        "lovasz_per_image": _f(smp.LovaszLoss("multiclass", per_image=True,
                                              ignore_index=IGNORE)(scores, target)),
    }
    for gamma in (2.0, 0.5):
        out[f"focal_gamma_{gamma}"] = _f(functional.softmax_focal_loss_with_logits(
            valid_logits, target[keep], gamma=gamma))
    return dict(class_weights=weights, values=out)


def main():
    smp, functional = _smp_losses()
    cases = {}
    # "all_present": every class in each image; "absent": class 3 in no
    # image; "uneven": class 2 only in the second image, so per-image
    # "present" classes differ from the batch's.
    labels_uneven, logits_uneven = _inputs(2, shape=(2, 4, 5))
    first = labels_uneven[0]
    first[first == 2] = 0
    for name, (labels, logits) in {"all_present": _inputs(0), "absent": _inputs(1, absent=3),
                                   "uneven": (labels_uneven, logits_uneven)}.items():
        present = sorted(set(labels[labels != IGNORE].tolist()))
        per_image = [sorted(set(x[x != IGNORE].tolist())) for x in labels]
        cases[name] = dict(labels=labels.astype(int).tolist(),
                           logits=logits.astype(np.float64).tolist(),
                           present=present, present_per_image=per_image,
                           **_values(smp, functional, labels, logits))
    golden = {
        "made_by": "tests/core/golden/make_losses_golden.py",
        "torch_version": torch.__version__,
        "smp_version": _version("segmentation_models_pytorch"),
        "num_classes": K,
        "ignore_index": IGNORE,
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} (torch {torch.__version__}, smp {golden['smp_version']})")


def _version(dist: str) -> str:
    from importlib.metadata import version  # pylint: disable=import-outside-toplevel
    return version(dist.replace("_", "-"))


if __name__ == "__main__":
    main()
