"""Step functions, the inner loop and the outer-loop controller.

The parts a research loop imports:

    from train_loop import make_train_step, make_eval_step, run_steps
    from train_loop import recompute_batch_norm   # before evaluating/exporting
"""
from train_loop.bn_recompute import recompute_batch_norm
from train_loop.steps import distribute_step, make_eval_step, make_train_step, run_steps

__all__ = ["distribute_step", "make_eval_step", "make_train_step", "recompute_batch_norm",
           "run_steps"]
