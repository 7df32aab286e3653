"""Writes optim_golden.json: torch.optim.AdamW and torch.optim.SGD on fixed
small tensors and fixed gradient sequences, the parameters after each step.

tests/core/test_optim.py replays the same gradients through core.optim and
compares; it reads only the JSON, so CI needs no torch. To regenerate (a CPU
wheel; plain `pip install torch` pulls a CUDA build of several GB):

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy    # the CPU wheel
    /tmp/torchvenv/bin/python tests/core/golden/make_optim_golden.py

The gradients are fixed arrays, not gradients of a loss, so the file does not
depend on autodiff; the 4th and 7th are scaled by 1e-3 and 30 so that Adam's
normalisation and epsilon matter. Every number is a float32 value written
exactly (a float64 repr of it). Cases:
  adamw_constant   torch defaults but lr 0.01; decay on "w" only (the bias
                   "b" is in a param group with weight_decay 0).
  adamw_changing   lr, set before each step, changes every step; beta_2 0.99,
                   eps 1e-3 (large, so its place in the formula shows), decay 0.1.
  adamw_one_cycle  OneCycleLR(max_lr=0.05, total_steps=STEPS) with
                   cycle_momentum=True: lr and beta_1 both change every step;
                   `lrs` and `beta_1s` hold the values each step used.
  sgd_momentum, sgd_nesterov  constant lr 0.1, momentum 0.9, no decay.
  sgd_nesterov_l2  as sgd_nesterov with torch's weight_decay 0.05 on "w",
                   which is L2 added to the gradient (g + wd p), not
                   core.optim.SGD's decoupled decay: the test feeds
                   g + wd p to core.optim.SGD to reproduce it.
"""
import json
import os

import numpy as np
import torch

STEPS = 10
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden.json")


def _inputs(seed: int = 17):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 4)).astype(np.float32),
              "b": rng.standard_normal((4,)).astype(np.float32)}
    grads = []
    for step in range(STEPS):
        scale = {3: 1e-3, 6: 30.0}.get(step, 1.0)
        grads.append({k: (rng.standard_normal(v.shape) * scale).astype(np.float32)
                      for k, v in params.items()})
    return params, grads


def _list(a) -> list:
    return np.asarray(a, np.float32).astype(np.float64).tolist()


def _run(make_opt, params, grads, lrs=None, scheduler=None, l2=None):
    """Steps a torch optimizer; returns the per-step lr/beta_1 used and params."""
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make_opt(tp)
    sched = scheduler(opt) if scheduler else None
    used_lr, used_beta1, history = [], [], []
    for step, g in enumerate(grads):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[step]
        group = opt.param_groups[0]
        used_lr.append(float(group["lr"]))
        if "betas" in group:
            used_beta1.append(float(group["betas"][0]))
        for k, p in tp.items():
            p.grad = torch.tensor(g[k])
        opt.step()
        if sched:
            sched.step()
        history.append({k: _list(p.detach().numpy()) for k, p in tp.items()})
    out = {"lrs": used_lr, "params": history}
    if used_beta1:
        out["beta_1s"] = used_beta1
    return out


def _adamw(lr, betas, eps, wd):
    def make(tp):
        return torch.optim.AdamW([{"params": [tp["w"]]},
                                  {"params": [tp["b"]], "weight_decay": 0.0}],
                                 lr=lr, betas=betas, eps=eps, weight_decay=wd,
                                 amsgrad=False, foreach=False)
    return make


def _sgd(lr, momentum, nesterov, wd):
    def make(tp):
        return torch.optim.SGD([{"params": [tp["w"]]},
                                {"params": [tp["b"]], "weight_decay": 0.0}],
                               lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=wd, foreach=False)
    return make


def main():
    torch.manual_seed(0)
    params, grads = _inputs()
    changing = [0.02 * (1.0 + 0.5 * np.sin(step)) for step in range(STEPS)]
    cases = {
        "adamw_constant": dict(
            hyper=dict(optimizer="adamw", lr=0.01, betas=[0.9, 0.999], eps=1e-8,
                       weight_decay=0.01),
            **_run(_adamw(0.01, (0.9, 0.999), 1e-8, 0.01), params, grads)),
        "adamw_changing": dict(
            hyper=dict(optimizer="adamw", lr=changing[0], betas=[0.9, 0.99], eps=1e-3,
                       weight_decay=0.1),
            **_run(_adamw(changing[0], (0.9, 0.99), 1e-3, 0.1), params, grads, lrs=changing)),
        "adamw_one_cycle": dict(
            hyper=dict(optimizer="adamw", lr=0.05, betas=[0.95, 0.999], eps=1e-8,
                       weight_decay=0.01,
                       one_cycle=dict(max_lr=0.05, total_steps=STEPS, pct_start=0.3,
                                      div_factor=25.0, final_div_factor=1e4,
                                      anneal_strategy="cos", base_momentum=0.85,
                                      max_momentum=0.95)),
            **_run(_adamw(0.05, (0.95, 0.999), 1e-8, 0.01), params, grads,
                   scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(
                       opt, max_lr=0.05, total_steps=STEPS, pct_start=0.3,
                       div_factor=25.0, final_div_factor=1e4, anneal_strategy="cos",
                       cycle_momentum=True, base_momentum=0.85, max_momentum=0.95))),
    }
    for name, nesterov, wd in (("sgd_momentum", False, 0.0), ("sgd_nesterov", True, 0.0),
                               ("sgd_nesterov_l2", True, 0.05)):
        cases[name] = dict(
            hyper=dict(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=nesterov,
                       l2_weight_decay=wd),
            **_run(_sgd(0.1, 0.9, nesterov, wd), params, grads))
    golden = {
        "made_by": "tests/core/golden/make_optim_golden.py",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "steps": STEPS,
        "decayed": ["w"],
        "initial": {k: _list(v) for k, v in params.items()},
        "grads": [{k: _list(v) for k, v in g.items()} for g in grads],
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} (torch {torch.__version__}, {len(cases)} cases, {STEPS} steps)")


if __name__ == "__main__":
    main()
