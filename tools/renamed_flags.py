"""Flag names of earlier releases, per binary, and the flags parser that
turns their use into one error naming the new name (exit 1, no traceback).

One name means one thing in every binary: `--batch_size` is tools.train's
global training batch, `--elevation` the elevation kind a run feeds,
`--min_lr`/`--max_lr` tools.train's plateau floor and peak learning rate,
`--model` the experiment folder or export a binary loads.
"""
from __future__ import annotations

import sys

from absl import flags

# Old name -> new name, per binary. Gone from the binary: an unknown old name
# (command line or flag file) is reported with its new name.
RENAMED = {
    "evaluate": {"batch_size": "windows_per_call"},
    "predict": {"batch_size": "windows_per_call", "bands": "input_bands",
                "elevation": "input_elevation"},
    "export": {"batch_size": "windows_per_call", "workdir": "model"},
    # The range test's flags, shared with tools.train --max_lr=auto (tools/sweep_flags.py).
    "lr_find": {"num_steps": "sweep_steps", "smoothing": "sweep_smoothing",
                "divergence": "sweep_divergence", "suggestion": "sweep_suggestion"},
    "prepare": {"dataset": "prepare_dataset", "src": "prepare_src", "dst": "data_dir",
                "label_spec": "classes", "nodata": "elevation_nodata"},
    "make_demo_data": {"out": "output_dir"},
    "import_encoder": {"out": "output_dir"},
}
# Names a binary still reads with tools.train's meaning (from a training flag
# file) that it once read with another one on its command line.
REMEANT = {
    "lr_find": {"min_lr": "sweep_min_lr", "max_lr": "sweep_max_lr"},
}
WHY = {
    "batch_size": "--batch_size is tools.train's global training batch",
    "bands": "--bands picks the store bands a training run feeds",
    "elevation": "--elevation is the elevation kind a training run feeds",
    "workdir": "--model is the experiment folder in every binary that loads one",
    "out": "--output_dir is the folder every binary writes to",
    "min_lr": "--min_lr is tools.train's plateau floor (the flag file's)",
    "max_lr": "--max_lr is tools.train's peak learning rate (the flag file's)",
    **{old: "the LR range test's flags start with sweep_, shared with tools.train "
            "--max_lr=auto" for old in ("num_steps", "smoothing", "divergence", "suggestion")},
}


def _exit(message: str, hint: bool = False) -> None:
    """absl's own report of a bad flag: one line (and its help hint), exit 1."""
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n"
                     + ("Pass --helpshort or --helpfull to see help on flags.\n" if hint else ""))
    sys.exit(1)


def _fail(binary: str, used: dict) -> None:
    """One line naming every old name used and its new one; exit 1."""
    _exit(f"tools.{binary}: " + "; ".join(
        f"--{old} is now --{new}" + (f" ({WHY[old]})" if old in WHY else "")
        for old, new in used.items()))


def _named(arg: str) -> str:
    """'--name=value', '-name', '--noname' -> 'name' ('' for a positional)."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return ""
    return arg.lstrip("-").split("=", 1)[0]


def check_argv(binary: str, argv) -> None:
    """Exits with the new names when the command line uses old ones."""
    renamed, remeant = RENAMED.get(binary, {}), REMEANT.get(binary, {})
    used = {}
    for arg in argv[1:]:
        if arg == "--":
            break
        name = _named(arg)
        if name in remeant:  # the command line only: a flag file's is tools.train's
            used[name] = remeant[name]
        for old, new in renamed.items():
            if name in (old, "no" + old):
                used[old] = new
    if used:
        _fail(binary, used)


def parse(binary: str, argv, known_only: bool = False):
    """FLAGS(argv) with an old name of `binary`, on the command line or in a
    flag file, reported with its new one instead of absl's 'unknown flag'."""
    check_argv(binary, argv)
    try:
        return flags.FLAGS(argv, known_only=known_only)
    except flags.UnrecognizedFlagError as err:
        if err.flagname in RENAMED.get(binary, {}):
            _fail(binary, {err.flagname: RENAMED[binary][err.flagname]})
        _exit(str(err), hint=True)
    except flags.Error as err:
        _exit(" ".join(str(err).split("\n")), hint=True)
    return None  # not reached


def parser(binary: str, known_only: bool = False):
    """The `flags_parser` for `app.run(main, flags_parser=...)` of `binary`."""
    return lambda argv: parse(binary, argv, known_only)
