"""The LR range test's flags, declared once: tools.lr_find sweeps with them
and tools.train --max_lr=auto runs the same sweep before training (one name,
one meaning in every binary; all start with `sweep_` so that none reads as a
training setting in tools.train, e.g. --sweep_smoothing is not label
smoothing). Defaults are `train_loop.config.LRSweepConfig`'s.
"""
from absl import flags

from train_loop.config import LRSweepConfig

_S = LRSweepConfig

flags.DEFINE_float("sweep_min_lr", _S.min_lr, "LR range test (tools.lr_find, --max_lr=auto): "
                   "learning rate of the sweep's first step.")
flags.DEFINE_float("sweep_max_lr", _S.max_lr, "LR range test: learning rate of the sweep's "
                   "last step.")
flags.DEFINE_integer("sweep_steps", _S.num_steps, "LR range test: steps of the sweep (>= 2).")
flags.DEFINE_float("sweep_smoothing", _S.smoothing, "LR range test: beta of the smoothed loss "
                   "(EMA).")
flags.DEFINE_float("sweep_divergence", _S.divergence, "LR range test: stop when the smoothed "
                   "loss exceeds this times its best (<= 1: never stop early).")
flags.DEFINE_enum("sweep_suggestion", _S.suggestion, ["steepest", "min_div10"],
                  "LR range test: suggest the lr of the steepest descent of the smoothed "
                  "loss, or the best lr / 10.")

flags.register_validator("sweep_steps", lambda v: v >= 2, "--sweep_steps must be >= 2")
flags.register_validator("sweep_smoothing", lambda v: 0.0 <= v < 1.0,
                         "--sweep_smoothing must be in [0, 1)")


@flags.multi_flags_validator(["sweep_min_lr", "sweep_max_lr"],
                             message="need 0 < --sweep_min_lr < --sweep_max_lr, e.g. "
                             "--sweep_min_lr=1e-6 --sweep_max_lr=1")
def _sweep_range(values):
    return 0.0 < values["sweep_min_lr"] < values["sweep_max_lr"]


def sweep_config_from_flags(f) -> LRSweepConfig:
    """The sweep of the flags (library code never sees FLAGS)."""
    return LRSweepConfig(min_lr=f.sweep_min_lr, max_lr=f.sweep_max_lr, num_steps=f.sweep_steps,
                         smoothing=f.sweep_smoothing, divergence=f.sweep_divergence,
                         suggestion=f.sweep_suggestion)
