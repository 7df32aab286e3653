r"""Predicts whole tiles of any size: class-id GeoTIFF, colour PNG, probabilities.

  python -m tools.predict --model=runs/unet-20260101-10h00mn --input=marseille/ \
      --output_dir=predictions --tta=d4 [--input_bands=RGBIR --input_elevation=ndsm/] \
      [--rescale_input=dtype]

--model: a SavedModel export or an experiment workdir (--checkpoint=best|latest).
Per tile: <stem>_classes.tif (uint8 ids, the input's CRS and geotransform,
GDAL nodata 255), <stem>_colour.png (palette; no data in the ignore colour,
black), with --save_probabilities <stem>_probabilities.tif (uint8,
probability * 255, one band per class). An input holds exactly the model's
bands, or names its own with --input_bands; a non-optical model band (nDSM,
DSM) then comes from --input_elevation (a file, or a folder matched by tile name or
numbers), NaN/nodata heights filled with the mean for the model.

Pixels without data (the file's nodata value on every band, its mask or
alpha == 0, missing heights) are 255 in the class raster. An input whose
dtype is not the model's input_dtype (model_info.json; e.g. an 8-bit file
for a model trained on 16-bit imagery) is refused unless --rescale_input
says how to map its values (core/data/rescale.py). Unreadable or refused
files are reported and skipped (exit 1). Files in --output_dir named like
this binary's outputs are never read as inputs (--output_dir may be the
input folder), and two inputs of one stem (scene.tif, scene.png) are refused
before anything is predicted. One tools.* binary per process.

Maps out (tools/maps_out.py): --stream reads and writes by window (rasters
larger than memory, VRT mosaics) into Cloud-Optimized GeoTIFFs; --vector
writes polygons; --num_shards/--shard_index split the inputs over machines,
outputs are written atomically and skipped on rerun; --merge mosaics them.
"""
import dataclasses
import glob
import os
import re

from absl import app, flags, logging

from tools import inference_flags, outputs, renamed_flags, shards
from tools import maps_out  # --stream, --vector, shards, --merge

flags.adopt_module_key_flags(inference_flags)  # --helpshort lists the shared flags too
flags.DEFINE_string("input", None, "A tile file, a folder of tiles or a glob pattern.")
flags.DEFINE_string("output_dir", None, "Folder for the predictions (created).")
flags.DEFINE_string("input_bands", None, "Band names of the input files (e.g. RGBIR) when "
                    "they are not exactly the model's bands.")
flags.DEFINE_string("input_elevation", None, "Elevation raster, or folder of rasters named "
                    "like the tiles, for a model that takes nDSM/DSM (with --input_bands).")
flags.DEFINE_boolean("save_probabilities", False, "Also write class probabilities.")
flags.DEFINE_enum("rescale_input", None, ["none", "dtype", "range"],
                  "How input band values are mapped onto the model's training values "
                  "(model_info input_dtype / band_ranges); needed when the input's dtype "
                  "differs. none: as they are; dtype: the input dtype's full range onto the "
                  "training dtype's (uint16 -> uint8: x * 255/65535; floats span 0..1); "
                  "range: each band's min..max in the file onto its training [min, max].")
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


# What this binary writes per input `<stem>.<ext>`: never read back as an input.
OUTPUT_SUFFIXES = ("_classes.tif", "_colour.png", "_probabilities.tif")


def inputs_to_predict(paths: list, output_dir: str) -> list:
    """`paths` without this binary's own earlier outputs in `output_dir`.

    Outputs are named by the input's stem, so two inputs of one stem
    (scene.tif and scene.png, or a/scene.tif and b/scene.tif) would overwrite
    each other's: refused, naming both, before anything is predicted. Names
    stay `<stem>_classes.tif` (what scripts and GIS projects expect) rather
    than gaining a suffix that depends on which other files are present.

    Raises:
      ValueError: two inputs of one stem, or nothing but earlier outputs.
    """
    out = os.path.realpath(output_dir)
    own = [p for p in paths if str(p).endswith(OUTPUT_SUFFIXES + maps_out.OWN_SUFFIXES)
           and os.path.dirname(os.path.realpath(p)) == out]
    if own:
        logging.info("not predicting %d earlier output(s) of tools.predict in --output_dir "
                     "(%s)", len(own), ", ".join(os.path.basename(p) for p in own[:4]))
    kept, stems = [p for p in paths if p not in own], {}
    for path in kept:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:
            raise ValueError(f"{stems[stem]} and {path} would both write {stem}_classes.tif "
                             f"in --output_dir; rename one, or give --input a pattern that "
                             f"picks one (e.g. '{os.path.dirname(path) or '.'}/*.tif')")
        stems[stem] = path
    if not kept:
        raise ValueError(f"--input matched only earlier outputs of tools.predict in "
                         f"--output_dir={output_dir}")
    return kept


def training_values(image, index: list, optical: list, info: dict, rescale, *,
                    path: str, valid=None):
    """[H,W,C] band values (source dtype) -> float32, the optical channels
    `index` (named `optical`) checked against and mapped onto the model's
    input_dtype as --rescale_input says (core/data/rescale.py); NaN/inf
    (no data in `valid`) become 0, as prepare stores them."""
    import numpy as np
    from core.data import rescale as rescale_lib
    from core.data.raster import finite_values
    have, want = np.dtype(image.dtype).name, info.get("input_dtype")
    if want is None and rescale in ("dtype", "range"):
        raise ValueError(f"--rescale_input={rescale}: the model does not record the dtype it "
                         "was trained on (input_dtype); use none or re-export it")
    if want is not None and have != want and rescale is None:
        raise ValueError(f"{path}: {have} pixels but the model was trained on {want}; pass "
                         f"--rescale_input=dtype (the full {have} range onto {want}'s), range "
                         f"(each band's min..max onto the training band_ranges) or none "
                         f"(values as they are)")
    out = image.astype(np.float32)
    if rescale in ("dtype", "range"):
        out[..., index] = rescale_lib.rescale(
            image[..., index], rescale, want, bands=optical,
            band_ranges=info.get("band_ranges"), valid=valid, path=path)
    return finite_values(out, in_place=True)  # out is this function's own copy


def elevation_source(path: str, elevation: str, num_inputs: int) -> str:
    """The --input_elevation raster of a tile: the file, or the one in the folder
    with the tile's stem or numbers (a path naming the problem when none or
    several match, so that reading it fails with that message)."""
    from core.data import tiles
    source, stem = elevation, tiles.tile_stem(path)
    if os.path.isdir(elevation):  # same stem, or the same numbers (Potsdam's 2_13 / 02_13)
        ids = lambda p: [int(n) for n in re.findall(r"\d+", tiles.tile_stem(p))]  # noqa: E731
        found = [p for p in tiles.list_images(elevation) if tiles.tile_stem(p) == stem
                 or ids(p) == ids(path) != []]
        source = str(found[0]) if len(found) == 1 else f"{elevation}/{stem}.tif (" + (
            "not found)" if not found else f"{len(found)} rasters match)")
    elif num_inputs > 1:
        raise ValueError(f"--input_elevation={elevation} is one file but --input matched "
                         f"{num_inputs} tiles; give a folder")
    return source


def model_input(path: str, info: dict, bands, elevation, num_inputs: int, rescale=None):
    """The tile as the model's bands: (image [H,W,C] float32, valid [H,W] bool
    or None: False where the file or the elevation has no data)."""
    import numpy as np
    from core.data import tiles
    from core.data.datasets import ELEVATION_BANDS
    from core.data.raster import read_raster
    raster, want = read_raster(path), list(info["bands"])
    # A palette-indexed file holds colour indices: its pixels are the colours.
    image = raster.array if raster.palette is None else raster.palette[raster.array[..., 0]]
    optical = [b for b in want if b not in ELEVATION_BANDS.values()]
    heights = [b for b in want if b in ELEVATION_BANDS.values()]
    if bands:
        image = tiles.select_bands(image, bands, optical, path=path)
    elif image.shape[-1] != len(want):
        raise ValueError(
            f"{path}: has {image.shape[-1]} bands but the model takes {len(want)} "
            f"({', '.join(want)}); give --input_bands=<this file's bands, e.g. RGBIR> to "
            f"pick them" + (f" and --input_elevation=FILE|DIR for {heights[0]}"
                            if heights else ""))
    index = list(range(len(optical))) if bands else [want.index(b) for b in optical]
    image = training_values(image, index, optical, info, rescale, path=path,
                            valid=raster.valid)
    if not bands or not heights:
        if elevation:
            raise ValueError(f"--input_elevation needs --input_bands and a model with an "
                             f"elevation band (it takes {', '.join(want)})")
        return image, raster.valid
    if not elevation:
        raise ValueError(f"{path}: the model also takes {heights[0]}; give --input_elevation")
    source = elevation_source(path, elevation, num_inputs)
    height, valid = tiles.read_elevation(source)
    if height.shape != image.shape[:2]:
        raise ValueError(f"{source}: elevation is {height.shape[0]}x{height.shape[1]}, "
                         f"the tile {path} is {image.shape[0]}x{image.shape[1]}")
    tiles.check_same_grid([path, source])
    if not valid.all():
        logging.warning("%s: %d NaN/nodata heights (%.2f%%) filled with the mean height for "
                        "the model, written as no data (255)",
                        source, (~valid).sum(), 100 * (~valid).mean())
    if raster.valid is not None:
        valid = valid & raster.valid
    return np.concatenate([image, height[..., None]], axis=-1), valid


def main(argv):
    del argv
    if FLAGS.merge and FLAGS.output_dir and not (FLAGS.model or FLAGS.input):
        return maps_out.merge_main()  # only merge what the shards wrote
    inference_flags.require("model", "input", "output_dir")
    # --- inputs and outputs: checked before TensorFlow is even imported ---
    try:
        outputs.check_output_dir(FLAGS.output_dir, "--output_dir")
        paths = inputs_to_predict(list_inputs(FLAGS.input), FLAGS.output_dir)
        maps_out.check_flags()
        num_shards, shard = shards.resolve(FLAGS.num_shards, FLAGS.shard_index)
        paths = shards.select(paths, num_shards, shard)
    except ValueError as err:  # OutputError, TileError too
        raise SystemExit(f"tools.predict: {err}") from None
    import imageio.v3 as iio
    import numpy as np
    from core import inference, streaming
    from core.data import geotiff, labels
    from train_loop.progress import TileProgress

    # --- model ---
    try:
        model, info = inference_flags.load_model()
        predictor = inference_flags.tile_predictor(model, info)
        if FLAGS.rescale_input in ("dtype", "range") and not info.get("input_dtype"):
            raise ValueError(f"--rescale_input={FLAGS.rescale_input}: {FLAGS.model} does not "
                             "record the dtype it was trained on (input_dtype); use none")
        if FLAGS.rescale_input == "range" and not info.get("band_ranges"):
            raise ValueError(f"--rescale_input=range: {FLAGS.model} does not record its "
                             "training band_ranges; use dtype or none")
    except ValueError as err:
        raise SystemExit(f"tools.predict: {err}") from None
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    try:
        paths = maps_out.pending(paths, FLAGS.output_dir, info["class_names"])
    except ValueError as err:
        raise SystemExit(f"tools.predict: {err}") from None
    logging.info("%d tile(s), window %d, overlap %.2f, tta %s", len(paths),
                 predictor.window, predictor.overlap, predictor.tta)

    # --- predict and write, tile by tile ---
    progress, failed = TileProgress(len(paths)), []
    if FLAGS.stream:  # one bar over the shard's windows
        streamer = streaming.StreamPredictor(predictor, FLAGS.block)
        progress = maps_out.ShardProgress(maps_out.count_windows(paths, streamer),
                                          f"shard {shard + 1}/{num_shards}")
    for index, path in enumerate(paths):
        out = maps_out.output_prefix(FLAGS.output_dir, path)
        if FLAGS.stream:
            try:
                summary = maps_out.predict_streamed(
                    path, out, streamer, info, progress,
                    training_values,
                    lambda p: elevation_source(p, FLAGS.input_elevation, len(paths)))
                logging.info("%s -> %s_classes.tif; %s", path, out, summary)
            except ValueError as err:  # unreadable, wrong bands, ...
                logging.error("SKIPPED %s", err)
                failed.append(path)
            continue
        try:
            image, valid = model_input(path, info, FLAGS.input_bands, FLAGS.input_elevation,
                                       len(paths), FLAGS.rescale_input)
            geo = geotiff.read_geoinfo(path)  # None for PNG/JPEG; raises if rotated
        except ValueError as err:  # TileError too: unreadable, wrong bands, ...
            logging.error("SKIPPED %s", err)
            failed.append(path)
            continue
        progress.start_tile(index, os.path.basename(path))
        probabilities = predictor(image, progress)
        classes = inference.probabilities_to_classes(probabilities)
        if valid is not None:  # no data in, no class out
            classes[~valid] = labels.IGNORE_INDEX
        if geo is not None:  # the input's nodata means nothing for class ids
            geo = dataclasses.replace(geo, nodata=None)
        # Each output under a temporary name, then moved: existing = complete.
        classes_suffix, colour_suffix, probabilities_suffix = OUTPUT_SUFFIXES
        with shards.atomic(out + classes_suffix) as part:
            geotiff.write_geotiff(part, classes, geo, nodata=labels.IGNORE_INDEX)
        with shards.atomic(out + colour_suffix) as part:
            iio.imwrite(part, labels.index_to_rgb(classes, info["palette"]))
        if FLAGS.save_probabilities:
            with shards.atomic(out + probabilities_suffix) as part:
                geotiff.write_geotiff(part, np.round(probabilities * 255).astype(np.uint8), geo)
        if FLAGS.vector:
            maps_out.write_vector(out, classes, probabilities, info,
                                  *maps_out.georeference(path))
        shares = np.bincount(classes.ravel(), minlength=256) / classes.size
        names = list(info["class_names"]) + (["no data"] if shares[255] else [])
        logging.info("%s -> %s_classes.tif%s; %s", path, out, "" if geo else " (no georeferencing)",
                     ", ".join(f"{n} {s:.1%}" for n, s in zip(names, list(shares[:len(
                         info["class_names"])]) + [shares[255]])))

    # --- summary ---
    if FLAGS.stream:
        progress.close()
    if FLAGS.merge and not failed:
        maps_out.merge_main()
    if failed:
        raise SystemExit(f"tools.predict: {len(failed)} of {len(paths)} tile(s) failed: "
                         + ", ".join(failed))


if __name__ == "__main__":
    app.run(main, flags_parser=renamed_flags.parser("predict"))
