"""Writes schedules_golden.json: torch.optim.lr_scheduler.OneCycleLR and
ReduceLROnPlateau on fixed arguments, and torch.optim.SGD's momentum when the
learning rate changes between two steps.

tests/core/test_schedules.py and tests/core/test_optim.py read only the JSON,
so CI compares core.schedules and core.optim with PyTorch without installing
it. To regenerate (the CPU wheel; plain `pip install torch` pulls a CUDA build
of several GB):

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy    # the CPU wheel
    /tmp/torchvenv/bin/python tests/core/golden/make_schedules_golden.py

Contents:
  one_cycle   OneCycleLR(three_phase=False) with SGD(momentum) so that it
              cycles "momentum": `lrs` and `momentums` are the values in the
              param group at steps 0..T-1 (before each optimizer step);
              `lr_at_total_steps` is what torch gives after T scheduler
              steps, the step after the last (it raises only beyond T): with
              linear annealing that extrapolates below the final value (a
              negative lr), where core.schedules.one_cycle stays at it.
  plateau     ReduceLROnPlateau(threshold_mode="abs") fed a fixed metric
              sequence; `lrs` is the lr after each step(metric).
  sgd_lr_change  torch.optim.SGD(momentum=0.9) on one parameter, two steps,
              lr 0.1 then 0.2; the parameter after each step.
"""
import json
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedules_golden.json")

ONE_CYCLE = [
    dict(total_steps=100, max_lr=1.0, anneal_strategy="cos"),
    dict(total_steps=100, max_lr=1.0, anneal_strategy="linear"),
    dict(total_steps=37, max_lr=0.02, pct_start=0.25, anneal_strategy="linear"),
    dict(total_steps=250, max_lr=3.0, div_factor=10.0, final_div_factor=100.0,
         base_momentum=0.8, max_momentum=0.9, anneal_strategy="cos"),
    dict(total_steps=61, max_lr=0.05, pct_start=0.1, div_factor=5.0,
         final_div_factor=10.0, anneal_strategy="linear"),
]

METRICS = [0.5, 0.6, 0.605, 0.6, 0.59, 0.58, 0.7, 0.69, 0.68, 0.67, 0.66, 0.65,
           0.64, 0.63, 0.62, 0.61]
LOSSES = [1.0, 0.8, 0.79, 0.795, 0.81, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76,
          0.6, 0.61, 0.62, 0.63, 0.64, 0.65]
PLATEAU = [
    dict(mode="max", factor=0.5, patience=2, cooldown=1, min_lr=0.2, threshold=0.01,
         metrics=METRICS),
    dict(mode="max", factor=0.5, patience=0, cooldown=0, min_lr=1e-6, threshold=1e-4,
         metrics=METRICS),
    dict(mode="min", factor=0.1, patience=1, cooldown=2, min_lr=1e-3, threshold=0.005,
         metrics=LOSSES),
]


def one_cycle(case):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, three_phase=False, **case)
    lrs, momentums = [], []
    for _ in range(case["total_steps"]):
        lrs.append(float(opt.param_groups[0]["lr"]))
        momentums.append(float(opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    return dict(args=case, lrs=lrs, momentums=momentums,
                lr_at_total_steps=float(opt.param_groups[0]["lr"]))


def plateau(case):
    case = dict(case)
    metrics = case.pop("metrics")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, threshold_mode="abs", **case)
    lrs = []
    for metric in metrics:
        sched.step(metric)
        lrs.append(float(opt.param_groups[0]["lr"]))
    return dict(args=case, initial_lr=1.0, metrics=metrics, lrs=lrs)


def sgd_lr_change():
    lrs, grads = [0.1, 0.2], [1.0, 0.5]
    param = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=lrs[0], momentum=0.9)
    params = []
    for lr, grad in zip(lrs, grads):
        opt.param_groups[0]["lr"] = lr
        param.grad = torch.tensor([grad], dtype=torch.float64)
        opt.step()
        params.append(float(param.detach()[0]))
    return dict(initial=1.0, momentum=0.9, lrs=lrs, grads=grads, params=params)


def main():
    golden = {
        "made_by": "tests/core/golden/make_schedules_golden.py",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "one_cycle": [one_cycle(c) for c in ONE_CYCLE],
        "plateau": [plateau(c) for c in PLATEAU],
        "sgd_lr_change": sgd_lr_change(),
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
