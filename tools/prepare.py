r"""Prepares a tile archive into the store the training pipeline reads.

  python -m tools.prepare --flagfile=potsdam.flags      # the same flags train reads
  python -m tools.prepare --prepare_dataset=inria --prepare_src=/data/inria \
      --data_dir=data/inria/prepared
  python -m tools.prepare --prepare_dataset=folder --prepare_src=my_tiles \
      --data_dir=data/mine --classes=my_classes.json --val_fraction=0.2

The store keeps every band and elevation kind of the archive in its source
dtype; each training run picks its --bands and --elevation from it. Safe to
rerun: finished tiles are skipped, the source is never modified and nothing
outside --data_dir is written. Prints the splits, bands and per-band
statistics written to DATA_DIR/info.json.
"""
import json
import logging as std_logging

from absl import app, flags, logging

from tools import data_flags  # noqa: F401  (--data_dir, --bands, --elevation, --seed, --prepare_*)
from tools import outputs, prepare_flags, renamed_flags

FLAGS = flags.FLAGS


def parse_flags(argv):
    """Flags of this binary; a flag file that also holds training flags
    (`--flagfile=potsdam.flags`) is parsed with the trainer's flags too, so
    one flag file drives prepare and train alike (and a misspelt flag is
    still an error, and a name of an earlier release names its new one)."""
    rest = renamed_flags.parse("prepare", argv, known_only=True)
    if len(rest) > 1 and any(a.startswith("-") for a in rest[1:]):
        from tools import train_flags  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        rest = renamed_flags.parse("prepare", argv)
    return rest


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.prepare_src or not FLAGS.data_dir:
        raise app.UsageError("--prepare_src (the archive) and --data_dir (the store to "
                             "write) are required.")
    try:
        outputs.check_output_dir(FLAGS.data_dir, "--data_dir")
    except outputs.OutputError as err:
        logging.error("%s", err)
        raise SystemExit(1) from None
    from core.data.tiles import TileError  # pylint: disable=import-outside-toplevel

    # The library logs with the standard logging module; show it through absl.
    std_logging.getLogger("core").setLevel(std_logging.INFO)
    try:
        info = prepare_flags.prepare_from_flags(FLAGS)
    except (TileError, ValueError, FileNotFoundError, flags.ValidationError) as err:
        logging.error("%s", err)
        raise SystemExit(1) from None
    summary = {k: info[k] for k in ("dataset", "class_names", "bands", "dtype", "elevations")}
    summary["splits"] = {k: len(v) for k, v in info["splits"].items()}
    summary["band_stats"] = {b: {k: round(v, 4) for k, v in s.items() if k != "count"}
                             for b, s in info["band_stats"].items()}
    print(json.dumps(summary, indent=1))
    print(f"wrote {FLAGS.data_dir}/info.json")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
