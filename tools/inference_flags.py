"""The flags of the binaries that run a trained model (tools.evaluate,
tools.predict, tools.export), declared once: which model, which checkpoint,
and how whole tiles are cut into windows.

`--windows_per_call` is the number of windows in one model call (memory
against speed); `--batch_size` is only ever tools.train's global training
batch. `--model` is the experiment folder (tools.train's `--workdir`) or,
for evaluate and predict, a SavedModel folder written by tools.export.
"""
from __future__ import annotations

from absl import flags

DEFAULT_WINDOW = 512  # when neither --window nor the export's predict_tile sets one

flags.DEFINE_string("model", None, "The model: an experiment folder written by tools.train "
                    "(its --workdir, with config.json) or, except for tools.export, a "
                    "SavedModel folder written by tools.export.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Checkpoint of an experiment "
                  "folder: best (by validation mean IoU) or latest.")
flags.DEFINE_integer("window", None, "Window side in pixels, a multiple of 2**depth "
                     f"(tools.export fixes it into predict_tile); default: the export's "
                     f"predict_tile window, else {DEFAULT_WINDOW}.")
flags.DEFINE_float("overlap", 0.25, "Fraction of a window shared with its neighbour, "
                   "in [0, 1).")
flags.DEFINE_string("tta", "none", "Test-time augmentation: none, flips, rot90, d4 or "
                    "dihedral indices like 0,4,6 (tools.evaluate scores with and without "
                    "it; tools.export fixes it into predict_tile).")
flags.DEFINE_integer("windows_per_call", 4, "Windows per model call (more: faster, more "
                     "memory).")

flags.register_validator("window", lambda v: v is None or v >= 1, "--window must be >= 1")
flags.register_validator("overlap", lambda v: 0.0 <= v < 1.0, "--overlap must be in [0, 1)")
flags.register_validator("windows_per_call", lambda v: v >= 1,
                         "--windows_per_call must be >= 1")


def _tta_spec(spec: str) -> bool:
    """--tta parses (core.inference.parse_tta's rule); "none" needs no
    check, which keeps TensorFlow out of parsing the usual command."""
    if spec == "none":
        return True
    from core.inference import parse_tta  # pylint: disable=import-outside-toplevel
    try:
        parse_tta(spec)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from None
    return True


flags.register_validator("tta", _tta_spec)
FLAGS = flags.FLAGS


def require(*names: str) -> None:
    """app.UsageError naming the first of `names` that was not given."""
    from absl import app  # pylint: disable=import-outside-toplevel
    for name in names:
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")


def load_model():
    """(model, info) for --model and --checkpoint (see train_loop.workdir.load_model)."""
    from train_loop.workdir import load_model as load  # pylint: disable=import-outside-toplevel
    return load(FLAGS.model, FLAGS.checkpoint)


def window(info: dict) -> int:
    """--window, else the export's predict_tile window, else DEFAULT_WINDOW."""
    return FLAGS.window or int(info.get("window", DEFAULT_WINDOW))


def tile_predictor(model, info: dict, tta=None):
    """A core.inference.TilePredictor with these flags (`tta` overrides --tta)."""
    from core import inference  # pylint: disable=import-outside-toplevel
    return inference.TilePredictor(model, window=window(info), overlap=FLAGS.overlap,
                                   tta=FLAGS.tta if tta is None else tta,
                                   batch_size=FLAGS.windows_per_call)
