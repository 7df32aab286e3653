r"""Predicts whole tiles of any size: class-id GeoTIFF, colour PNG, probabilities.

  python -m tools.predict --model=runs/unet-20260101-10h00mn --input=marseille/ \
      --output_dir=predictions --tta=d4 [--bands=RGBIR --elevation=ndsm/]

--model: a SavedModel export or an experiment workdir (--checkpoint=best|latest).
Per tile: <stem>_classes.tif (uint8 ids, the input's CRS and geotransform),
<stem>_colour.png (palette), with --save_probabilities <stem>_probabilities.tif
(uint8, probability * 255, one band per class). An input holds exactly the
model's bands, or names its own with --bands; a non-optical model band (nDSM,
DSM) then comes from --elevation (a file, or a folder matched by tile name or
numbers), NaN/nodata heights filled with the mean and reported. Unreadable
files are reported and skipped (exit 1). One tools.* binary per process.
"""
import dataclasses
import glob
import os
import re

from absl import app, flags, logging

flags.DEFINE_string("model", None, "SavedModel folder or experiment workdir.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Workdir checkpoint.")
flags.DEFINE_string("input", None, "A tile file, a folder of tiles or a glob pattern.")
flags.DEFINE_string("output_dir", None, "Folder for the predictions (created).")
flags.DEFINE_integer("window", None, "Window side (multiple of 2**depth); default: "
                     "the export's predict_tile window, else 512.")
flags.DEFINE_float("overlap", 0.25, "Fraction of a window shared with its neighbour.")
flags.DEFINE_string("tta", "none", "Test-time augmentation: none, flips, rot90, d4 "
                    "or dihedral indices like 0,4,6.")
flags.DEFINE_integer("batch_size", 4, "Windows per model call.")
flags.DEFINE_string("bands", None, "Band names of the input files (e.g. RGBIR) when "
                    "they are not exactly the model's bands.")
flags.DEFINE_string("elevation", None, "Elevation raster, or folder of rasters named "
                    "like the tiles, for a model that takes nDSM/DSM.")
flags.DEFINE_boolean("save_probabilities", False, "Also write class probabilities.")
FLAGS = flags.FLAGS


def list_inputs(pattern: str) -> list:
    """FILE, DIR (its image files) or GLOB -> sorted paths; ValueError if none."""
    from core.data import tiles
    if os.path.isdir(pattern):
        return [str(p) for p in tiles.list_images(pattern)]
    paths = [pattern] if os.path.isfile(pattern) else sorted(glob.glob(pattern))
    if not paths:
        raise ValueError(f"--input={pattern}: no file or folder matches")
    return paths


def model_input(path: str, info: dict, bands, elevation, num_inputs: int):
    """The tile as the model's bands, [H,W,C] (uint8 or float32)."""
    import numpy as np
    from core.data import tiles
    image, want = tiles.read_image(path), list(info["bands"])
    optical = [b for b in want if b.upper() in tiles.BAND_TOKENS]
    heights = [b for b in want if b.upper() not in tiles.BAND_TOKENS]  # nDSM, DSM
    if bands:
        image = tiles.select_bands(image, bands, optical, path=path)
    elif image.shape[-1] != len(want):
        raise ValueError(
            f"{path}: has {image.shape[-1]} bands but the model takes {len(want)} "
            f"({', '.join(want)}); give --bands=<this file's bands, e.g. RGBIR> to pick "
            f"them" + (f" and --elevation=FILE|DIR for {heights[0]}" if heights else ""))
    if not bands or not heights:
        if elevation:
            raise ValueError(f"--elevation needs --bands and a model with an elevation "
                             f"band (it takes {', '.join(want)})")
        return image
    if not elevation:
        raise ValueError(f"{path}: the model also takes {heights[0]}; give --elevation")
    source, stem = elevation, tiles.tile_stem(path)
    if os.path.isdir(elevation):  # same stem, or the same numbers (Potsdam's 2_13 / 02_13)
        ids = lambda p: [int(n) for n in re.findall(r"\d+", tiles.tile_stem(p))]  # noqa: E731
        found = [p for p in tiles.list_images(elevation) if tiles.tile_stem(p) == stem
                 or ids(p) == ids(path) != []]
        source = str(found[0]) if len(found) == 1 else f"{elevation}/{stem}.tif (" + (
            "not found)" if not found else f"{len(found)} rasters match)")
    elif num_inputs > 1:
        raise ValueError(f"--elevation={elevation} is one file but --input matched "
                         f"{num_inputs} tiles; give a folder")
    height, valid = tiles.read_elevation(source)
    if height.shape != image.shape[:2]:
        raise ValueError(f"{source}: elevation is {height.shape[0]}x{height.shape[1]}, "
                         f"the tile {path} is {image.shape[0]}x{image.shape[1]}")
    if not valid.all():
        logging.warning("%s: %d NaN/nodata heights (%.2f%%) filled with the mean height",
                        source, (~valid).sum(), 100 * (~valid).mean())
    return np.concatenate([image.astype(np.float32), height[..., None]], axis=-1)


def main(argv):
    del argv
    for name in ("model", "input", "output_dir"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
    import imageio.v3 as iio
    import numpy as np
    from core import export, inference
    from core.data import geotiff, labels

    # --- model ---
    try:
        model, info = export.load_model(FLAGS.model, FLAGS.checkpoint)
        predictor = inference.TilePredictor(
            model, window=FLAGS.window or int(info.get("window", 512)),
            overlap=FLAGS.overlap, tta=FLAGS.tta, batch_size=FLAGS.batch_size)
        paths = list_inputs(FLAGS.input)
    except ValueError as err:
        raise SystemExit(f"tools.predict: {err}") from None
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    logging.info("%d tile(s), window %d, overlap %.2f, tta %s", len(paths),
                 predictor.window, predictor.overlap, predictor.tta)

    # --- predict and write, tile by tile ---
    progress, failed = inference.ProgressBar(len(paths)), []
    for index, path in enumerate(paths):
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            image = model_input(path, info, FLAGS.bands, FLAGS.elevation, len(paths))
            geo = geotiff.read_geoinfo(path)  # None for PNG/JPEG; raises if rotated
        except ValueError as err:  # TileError too: unreadable, wrong bands, ...
            logging.error("SKIPPED %s", err)
            failed.append(path)
            continue
        progress.start_tile(index, os.path.basename(path))
        probabilities = predictor(image, progress)
        classes = inference.probabilities_to_classes(probabilities)
        if geo is not None:  # the input's nodata means nothing for class ids
            geo = dataclasses.replace(geo, nodata=None)
        out = os.path.join(FLAGS.output_dir, stem)
        geotiff.write_geotiff(out + "_classes.tif", classes, geo)
        iio.imwrite(out + "_colour.png", labels.index_to_rgb(classes, info["palette"]))
        if FLAGS.save_probabilities:
            geotiff.write_geotiff(out + "_probabilities.tif",
                                  np.round(probabilities * 255).astype(np.uint8), geo)
        shares = np.bincount(classes.ravel(), minlength=len(info["class_names"])) / classes.size
        logging.info("%s -> %s_classes.tif%s; %s", path, out, "" if geo else " (no georeferencing)",
                     ", ".join(f"{n} {s:.1%}" for n, s in zip(info["class_names"], shares)))

    # --- summary ---
    if failed:
        raise SystemExit(f"tools.predict: {len(failed)} of {len(paths)} tile(s) failed: "
                         + ", ".join(failed))


if __name__ == "__main__":
    app.run(main)
