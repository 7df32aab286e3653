r"""Prepares a tile archive into the store the training pipeline reads.

  python -m tools.prepare --dataset=potsdam --src=/data/potsdam --dst=data/potsdam \
      --bands=IRRGB --elevation=ndsm --val_tiles=2_10
  python -m tools.prepare --dataset=inria --src=/data/inria --dst=data/inria
  python -m tools.prepare --dataset=folder --src=my_tiles --dst=data/mine --val_fraction=0.2

Safe to rerun: finished tiles are skipped, the source is never modified and
nothing outside --dst is written. Prints the splits and the per-band mean/std
written to DST/info.json.
"""
import json
import logging as std_logging

from absl import app, flags, logging

from tools import data_flags  # noqa: F401  (--bands, --elevation, --seed)

flags.DEFINE_enum("dataset", None, ["potsdam", "inria", "folder"], "Archive layout of --src.")
flags.DEFINE_string("src", None, "Archive root (Potsdam: the folder holding 4_Ortho_RGBIR, "
                    "5_Labels_all, ...; INRIA: the folder holding AerialImageDataset; "
                    "folder: images/ and masks/ (and elevation/)).")
flags.DEFINE_string("dst", None, "Store folder to write (created).")
flags.DEFINE_list("val_tiles", [], "Tiles moved from train to val (names or Potsdam "
                  "ids like 2_10), on top of the standard split.")
flags.DEFINE_enum("eroded", "false", ["false", "true", "val"],
                  "Potsdam: labels from 5_Labels_all_noBoundary for no/all/val tiles.")
flags.DEFINE_string("src_bands", None, "folder: band names of the source images "
                    "(default RGB for 3 bands, RGBIR for 4).")
flags.DEFINE_enum("label_spec", None, ["potsdam", "inria"], "folder: class names and "
                  "palette of the masks (default potsdam).")
flags.DEFINE_float("val_fraction", 0.0, "folder without --val_tiles: share of tiles in val.")
flags.DEFINE_float("nodata", None, "Elevation nodata value (default: the file's GDAL tag).")
flags.mark_flags_as_required(["dataset", "src", "dst"])

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from core.data import prepare  # pylint: disable=import-outside-toplevel
    from core.data.tiles import TileError  # pylint: disable=import-outside-toplevel

    # The library logs with the standard logging module; show it through absl.
    std_logging.getLogger("core").setLevel(std_logging.INFO)
    eroded = {"false": False, "true": True, "val": "val"}[FLAGS.eroded]
    try:
        info = prepare.prepare(
            FLAGS.dataset, FLAGS.src, FLAGS.dst, bands=FLAGS.bands,
            elevation=FLAGS.elevation, val_tiles=FLAGS.val_tiles, eroded=eroded,
            src_bands=FLAGS.src_bands, label_spec=FLAGS.label_spec,
            val_fraction=FLAGS.val_fraction, nodata=FLAGS.nodata, seed=FLAGS.seed)
    except (TileError, ValueError, FileNotFoundError) as err:
        logging.error("%s", err)
        raise SystemExit(1) from None
    summary = {k: info[k] for k in ("dataset", "bands", "in_channels", "mean", "std")}
    summary["splits"] = {k: len(v) for k, v in info["splits"].items()}
    print(json.dumps(summary, indent=1))
    print(f"wrote {FLAGS.dst}/info.json")


if __name__ == "__main__":
    app.run(main)
