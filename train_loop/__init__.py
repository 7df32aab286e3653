"""Step functions, the inner loop and the outer-loop controller.

The parts a research loop imports:

    from train_loop import make_train_step, make_eval_step, run_steps
    from train_loop import recompute_batch_norm   # before evaluating/exporting

They are imported on first use, so that `train_loop.config` (which the
binaries' flag modules read their defaults from) loads without TensorFlow.
"""
import importlib

_HOMES = {"distribute_step": "steps", "make_eval_step": "steps", "make_train_step": "steps",
          "run_steps": "steps", "recompute_batch_norm": "bn_recompute"}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'train_loop' has no attribute {name!r}")
    return getattr(importlib.import_module(f"train_loop.{_HOMES[name]}"), name)
