"""The preparation flags, one home for every binary that prepares a store.

`tools.prepare` prepares; `tools.train`, `tools.lr_find` and
`tools.time_pipeline` import this module through `tools.data_flags`, so one
flag file (`--flagfile=potsdam.flags`) drives preparation and training with
the same names, and `prepare_if_needed(FLAGS)` prepares the store on a first
run. The store folder is `--data_dir` everywhere.
"""
from __future__ import annotations

import json
import os

from absl import flags, logging

from core.data.datasets import DATASET_NAMES

flags.DEFINE_enum("prepare_dataset", "potsdam", list(DATASET_NAMES),
                  "Archive layout of --prepare_src (core/data/datasets.py).")
flags.DEFINE_string("prepare_src", None, "Archive root to prepare into --data_dir (Potsdam: the "
                    "folder holding 4_Ortho_RGBIR, 5_Labels_all, ...; INRIA: the folder holding "
                    "AerialImageDataset; folder: images/ and masks/, optional elevation/, ndsm/).")
flags.DEFINE_string("classes", None, "Class file (JSON or CSV: name, then colour or id; "
                    "ignore entries) for the masks; default: the data set's classes.")
flags.DEFINE_string("src_bands", None, "Band names of the source images, e.g. IRRG "
                    "(default: the data set's; folder: RGB for 3 bands, RGBIR for 4).")
flags.DEFINE_list("val_tiles", [], "Tiles moved from train to val (names or Potsdam ids "
                  "like 2_10), on top of the data set's split.")
flags.DEFINE_float("val_fraction", 0.0, "folder without --val_tiles: share of tiles in val.")
flags.DEFINE_enum("eroded", "false", ["false", "true", "val"],
                  "Potsdam/Vaihingen: eroded (noBoundary) labels for no/all/val tiles.")
flags.DEFINE_float("elevation_nodata", None, "Elevation no-data value (default: the "
                   "file's GDAL tag; NaN always).")
flags.DEFINE_float("max_unknown_label_fraction", 0.01, "Share of a label's pixels with a "
                   "value of no class that is tolerated (-> ignore, warned); above, "
                   "prepare stops and lists the values.")
flags.DEFINE_boolean("make_demo_data", False, "Generate synthetic demo tiles into "
                     "--prepare_src when that folder does not exist.")
flags.DEFINE_integer("demo_tiles", 8, "make_demo_data: number of tiles.")
flags.DEFINE_integer("demo_size", 1024, "make_demo_data: tile side in pixels.")

flags.register_validator("val_fraction", lambda v: 0.0 <= v < 1.0,
                         "--val_fraction must be in [0, 1)")
flags.register_validator("max_unknown_label_fraction", lambda v: 0.0 <= v <= 1.0,
                         "--max_unknown_label_fraction must be in [0, 1]")


def prepare_from_flags(f) -> dict:
    """Prepares (or completes) --data_dir from --prepare_src; returns info."""
    from core.data import classes as classes_lib  # pylint: disable=import-outside-toplevel
    from core.data import prepare, synthetic  # pylint: disable=import-outside-toplevel
    if not f.prepare_src or not f.data_dir:
        raise flags.ValidationError("--prepare_src and --data_dir are required to prepare "
                                    "a store.")
    if f.make_demo_data and not os.path.isdir(f.prepare_src):
        logging.info("making demo tiles in %s", f.prepare_src)
        synthetic.make_demo_dataset(f.prepare_src, dataset=f.prepare_dataset,
                                    tiles=f.demo_tiles, size=f.demo_size, seed=f.seed,
                                    log=None)
    spec = classes_lib.load_class_file(f.classes) if f.classes else None
    logging.info("preparing %s into %s", f.prepare_src, f.data_dir)
    return prepare.prepare(
        f.prepare_dataset, f.prepare_src, f.data_dir, bands=f.bands,
        elevation=f.elevation, val_tiles=f.val_tiles,
        eroded={"false": False, "true": True, "val": "val"}[f.eroded],
        src_bands=f.src_bands, classes=spec, val_fraction=f.val_fraction,
        nodata=f.elevation_nodata, max_unknown_fraction=f.max_unknown_label_fraction,
        seed=f.seed)


def prepare_if_needed(f) -> None:
    """First run of a flag file: prepare --data_dir when it holds no current
    store (or a float store that kept NaN pixel values)."""
    from core.data import prepare  # pylint: disable=import-outside-toplevel
    if not f.prepare_src:
        return
    path = os.path.join(f.data_dir or "", "info.json")
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
        if info.get("format") == prepare.STORE_FORMAT and not prepare.keeps_non_finite(info):
            return
    except (OSError, ValueError):
        pass  # missing or unreadable: (re)prepare, which skips finished tiles
    prepare_from_flags(f)
