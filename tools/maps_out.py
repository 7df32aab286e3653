"""tools.predict's map outputs: streamed COGs, polygons, shards, merge.

Flags (defined here, imported by tools.predict):
  --stream       read and write by window (core/streaming.py): rasters larger
                 than memory and VRT mosaics, any raster GDAL reads; outputs
                 are Cloud-Optimized GeoTIFFs (core/cog.py): <stem>_classes.tif
                 (uint8, nodata 255, palette colour table, nearest overviews)
                 and with --save_probabilities <stem>_probabilities.tif
                 (uint8 probability * 255, internal no-data mask, average
                 overviews); the palette PNG is not written (the class COG
                 carries the palette).
  --vector       gpkg or geojson: polygons of the classes (core/vectorize.py),
                 <stem>.gpkg with one layer per class, or <stem>_<class>.geojson.
  --num_shards, --shard_index, --merge: tools/shards.py.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os

import numpy as np
from absl import flags, logging

flags.DEFINE_boolean("stream", False, "Read and write by window (rasters larger than "
                     "memory, VRT mosaics); outputs are Cloud-Optimized GeoTIFFs.")
flags.DEFINE_integer("block", 2048, "With --stream: output block side in pixels (memory "
                     "grows as block^2; windows predicted: (block + window) / block times).")
flags.DEFINE_enum("vector", None, ["gpkg", "geojson"], "Also write the classes as polygons: "
                  "a GeoPackage with one layer per class, or one GeoJSON per class.")
flags.DEFINE_list("vector_classes", None, "Classes to polygonise (default: all).")
flags.DEFINE_float("simplify", 0.0, "Polygon simplification tolerance in map units "
                   "(topology-preserving Douglas-Peucker; 0: pixel outlines).")
flags.DEFINE_float("min_area", 0.0, "Drop polygons smaller than this, in squared map units.")
flags.DEFINE_integer("num_shards", None, "Split the sorted inputs into this many shards "
                     "(default: from TF_CONFIG, SLURM_ARRAY_TASK_COUNT; else 1).")
flags.DEFINE_integer("shard_index", None, "This process's shard, 0..num_shards-1 "
                     "(default: from TF_CONFIG, SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX).")
flags.DEFINE_boolean("merge", False, "Write mosaic_classes.vrt of all *_classes.tif in "
                     "--output_dir and mosaic.gpkg (or mosaic_<class>.geojson) of all "
                     "polygons; alone (without --model/--input) it only merges.")
FLAGS = flags.FLAGS

MOSAIC = "mosaic"
# Never inputs (tools.predict.inputs_to_predict): the mosaic and the scratch
# files of a killed job (shards.partial_name, core.cog.CogWriter).
OWN_SUFFIXES = ("_classes.vrt", ".part.tif", ".part.png", ".part.cog.tif")
# GDAL metadata of a class COG: the class names, as JSON (what --merge reads).
CLASS_NAMES_TAG = "CLASS_NAMES"


def check_flags() -> None:
    """Flag combinations that cannot work (ValueError naming the flag)."""
    if FLAGS.stream and FLAGS.rescale_input == "range":
        raise ValueError("--rescale_input=range takes each band's min..max over the whole "
                         "file, which --stream never reads at once; use dtype or none")
    if (FLAGS.vector_classes or FLAGS.simplify or FLAGS.min_area) and not FLAGS.vector:
        raise ValueError("--vector_classes, --simplify and --min_area need --vector")
    if FLAGS.simplify < 0 or FLAGS.min_area < 0:
        raise ValueError("--simplify and --min_area must be >= 0")
    if FLAGS.block < 1:
        raise ValueError(f"--block={FLAGS.block}: expected a positive number of pixels")


def outputs(out: str, class_names: list) -> list[str]:
    """Every file predict writes for one input (its skip-on-rerun check)."""
    from core import vectorize
    paths = [out + "_classes.tif"]
    if not FLAGS.stream:
        paths.append(out + "_colour.png")
    if FLAGS.save_probabilities:
        paths.append(out + "_probabilities.tif")
    if FLAGS.vector:
        paths += vectorize.vector_paths(out, FLAGS.vector, FLAGS.vector_classes or class_names)
    return paths


def write_vector(out: str, classes, probabilities, info: dict, crs, transform) -> None:
    """Polygons of `classes` [H,W] with the mean of `probabilities` ([H,W,K],
    or [H,W] the probability of each pixel's class)."""
    from core import vectorize
    own = probabilities.ndim == 2
    layers = vectorize.polygonize(classes, info["class_names"], transform=transform,
                                  probabilities=None if own else probabilities,
                                  class_probability=probabilities if own else None,
                                  keep=FLAGS.vector_classes, simplify=FLAGS.simplify,
                                  min_area=FLAGS.min_area)
    vectorize.write_layers(out, layers, FLAGS.vector, crs)


def georeference(path: str):
    """(crs, transform) of an input for the vector output of the in-memory path."""
    from core import cog
    return cog.georeference(path)


class ShardProgress:
    """One progress bar with ETA over all windows of a shard."""

    def __init__(self, total: int, desc: str):
        from train_loop.progress import ProgressBar
        self.bar, self.done = ProgressBar(total, desc=desc, unit="window"), 0

    def __call__(self, windows: int) -> None:
        self.done += windows
        self.bar.update(self.done)

    def close(self) -> None:
        self.bar.close()


def count_windows(paths: list, streamer) -> int:
    """Windows the streamed prediction of these inputs runs (sizes from GDAL)."""
    from core import streaming
    total = 0
    for path in paths:
        try:
            with streaming.GdalRaster(path) as raster:
                total += streamer.num_windows(raster.height, raster.width)
        except ValueError:
            pass  # reported when its turn comes
    return total


def predict_streamed(path: str, out: str, streamer, info: dict, progress, training_values,
                     elevation_source) -> str:
    """Predicts one raster window by window into COGs (and polygons).

    Args:
      training_values: tools.predict.training_values (band values -> the
        model's, with the --rescale_input checks).
      elevation_source: tools.predict.elevation_source for this job (tile
        path -> its --input_elevation raster).
    Returns:
      a summary line (class shares).
    Raises:
      ValueError: a raster that cannot be predicted (named).
    """
    from core import cog, streaming
    from core.data import labels, tiles
    from core.data.datasets import ELEVATION_BANDS
    want = list(info["bands"])
    optical = [b for b in want if b not in ELEVATION_BANDS.values()]
    heights = [b for b in want if b in ELEVATION_BANDS.values()]
    num_classes = len(info["class_names"])
    with contextlib.ExitStack() as stack:
        raster = stack.enter_context(streaming.GdalRaster(path))
        if not FLAGS.input_bands and raster.count != len(want):
            raise ValueError(f"{path}: has {raster.count} bands but the model takes "
                             f"{len(want)} ({', '.join(want)}); give --input_bands=<this file's "
                             "bands, e.g. RGBIR> to pick them"
                             + (f" and --input_elevation=FILE|DIR for {heights[0]}" if heights
                                else ""))
        given = FLAGS.input_bands
        if given and raster.count != len(tiles.parse_bands(given)):
            raise ValueError(f"{path}: expected {len(tiles.parse_bands(given))} bands "
                             f"({given}), the file has {raster.count}")
        index = list(range(len(optical))) if given else [want.index(b) for b in optical]
        height = fill = None
        if FLAGS.input_bands and heights:
            if not FLAGS.input_elevation:
                raise ValueError(f"{path}: the model also takes {heights[0]}; "
                                 "give --input_elevation")
            height = stack.enter_context(streaming.GdalRaster(elevation_source(path)))
            if height.count != 1 or (height.height, height.width) != (raster.height,
                                                                        raster.width):
                raise ValueError(f"{height.path}: expected 1 band of heights of "
                                 f"{raster.height}x{raster.width} (the tile {path}), got "
                                 f"{height.count} band(s) of {height.height}x{height.width}")
            tiles.check_same_grid([path, height.path])
            fill = streaming.valid_mean(height)  # as tiles.read_elevation fills holes
        elif FLAGS.input_elevation:
            raise ValueError(f"--input_elevation needs --input_bands and a model with an "
                             f"elevation band (it takes {', '.join(want)})")

        def read(r0, r1, c0, c1):
            array, valid = raster.read(r0, r1, c0, c1)
            if FLAGS.input_bands:
                array = tiles.select_bands(array, FLAGS.input_bands, optical, path=path)
            image = training_values(array, index, optical, info, FLAGS.rescale_input,
                                    path=path, valid=valid)
            if height is None:
                return image, valid
            values, known = height.read(r0, r1, c0, c1)
            values = values[..., 0].astype(np.float32)
            known = np.isfinite(values) & (True if known is None else known)
            values[~known] = fill
            valid = known if valid is None else valid & known
            return np.concatenate([image, values[..., None]], axis=-1), valid

        read(0, 1, 0, 1)  # the band and dtype checks before any file is opened
        shape = dict(height=raster.height, width=raster.width, crs=raster.crs,
                     transform=raster.transform)
        writers = [cog.CogWriter(out + "_classes.tif", count=1, nodata=labels.IGNORE_INDEX,
                                 colormap=cog.palette_colormap(info["palette"]),
                                 tags={CLASS_NAMES_TAG: json.dumps(info["class_names"])},
                                 **shape)]
        if FLAGS.save_probabilities:
            writers.append(cog.CogWriter(out + "_probabilities.tif", count=num_classes,
                                         resampling="average", masked=True, **shape))
        keep = None
        if FLAGS.vector:  # what polygonize needs: classes and their probability
            keep = (np.empty((raster.height, raster.width), np.uint8),
                    np.empty((raster.height, raster.width), np.uint8))
        counts = np.zeros(256, np.int64)

        def write(r0, c0, probabilities, valid):
            classes = np.argmax(probabilities, axis=-1).astype(np.uint8)
            if valid is not None:
                classes[~valid] = labels.IGNORE_INDEX
            counts[:] += np.bincount(classes.ravel(), minlength=256)
            writers[0].write(classes, r0, c0)
            scaled = np.round(probabilities * 255).astype(np.uint8)
            if len(writers) > 1:
                writers[1].write(scaled, r0, c0, valid)
            if keep is not None:
                h, w = classes.shape
                keep[0][r0:r0 + h, c0:c0 + w] = classes
                keep[1][r0:r0 + h, c0:c0 + w] = np.take_along_axis(
                    scaled, np.minimum(classes, num_classes - 1)[..., None], -1)[..., 0]

        try:
            streamer(read, raster.height, raster.width, write, progress)
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        for writer in writers:
            writer.close()
    if keep is not None:
        write_vector(out, keep[0], keep[1], info, shape["crs"], shape["transform"])
    shares = counts / max(counts.sum(), 1)
    names = list(info["class_names"]) + (["no data"] if shares[255] else [])
    return ", ".join(f"{n} {s:.1%}" for n, s in zip(
        names, list(shares[:num_classes]) + [shares[255]]))


def merge(output_dir: str) -> list[str]:
    """Writes the mosaics of an output folder (see --merge); returns them."""
    import rasterio
    from rasterio.crs import CRS
    from core import vectorize
    from tools import shards
    rasters = sorted(p for p in glob.glob(os.path.join(glob.escape(output_dir),
                                                       "*_classes.tif"))
                     if not os.path.basename(p).startswith(MOSAIC + "_"))
    if not rasters:
        raise ValueError(f"--merge: no *_classes.tif in {output_dir}")
    written = [os.path.join(output_dir, MOSAIC + "_classes.vrt")]
    shards.write_vrt(rasters, written[0])
    if not FLAGS.vector:
        return written
    merged, crs = {}, None
    for raster in rasters:
        with rasterio.open(raster) as ds:  # the class names predict wrote there
            names = json.loads(ds.tags().get(CLASS_NAMES_TAG, "null"))
        stem = raster[:-len("_classes.tif")]
        if names is None and FLAGS.vector == "geojson":
            raise ValueError(f"--merge: {raster} does not name its classes "
                             f"({CLASS_NAMES_TAG}), so which GeoJSON files are its is "
                             "unknown; predict it with --stream")
        for path in ([stem + ".gpkg"] if names is None else vectorize.vector_paths(
                stem, FLAGS.vector, FLAGS.vector_classes or names)):
            if not os.path.isfile(path):
                raise ValueError(f"--merge: {path} is missing (predict with "
                                 f"--vector={FLAGS.vector} first)")
            for name, layer in vectorize.read_layers(path).items():
                target = merged.setdefault(name, vectorize.Layer(name, [], [], []))
                target.geometries += layer["geometry"]
                target.pixels += [int(v) for v in layer["pixels"]]
                target.mean_probability += [float("nan") if v is None else float(v)
                                            for v in layer["mean_probability"]]
                crs = crs or layer["crs"]
    written += vectorize.write_layers(os.path.join(output_dir, MOSAIC), merged, FLAGS.vector,
                                      CRS.from_user_input(crs) if crs else None)
    return written


# What made the outputs of --output_dir (written before the first output):
# a rerun skips complete outputs only when this matches, so outputs of
# another model or other settings are never taken for this run's.
RUN_RECORD = ".ortholoop-predict.json"
# Flags that change what is predicted for an input (--stream and --block
# change how: the streamed classes equal the in-memory ones, so shards of one
# job may use either).
RECORDED_FLAGS = ("model", "checkpoint", "window", "overlap", "tta", "input_bands",
                  "input_elevation", "rescale_input", "save_probabilities",
                  "vector", "vector_classes", "simplify", "min_area")


def model_fingerprint(model: str) -> list:
    """(relative path, size, mtime) of the files of a SavedModel or workdir
    that predictions depend on: retraining or re-exporting into the same
    folder changes it."""
    found = []
    saved_model = os.path.isfile(os.path.join(model, "saved_model.pb"))
    for root, dirs, files in os.walk(model):
        top = root == model
        # A workdir: its config and checkpoints only (evaluations, logs and
        # exports written into it later change nothing predicted).
        dirs[:] = sorted(d for d in dirs if saved_model or not top or d == "checkpoints")
        for name in sorted(files):
            if not saved_model and top and name != "config.json":
                continue
            path = os.path.join(root, name)
            stat = os.stat(path)
            found.append([os.path.relpath(path, model), stat.st_size, stat.st_mtime_ns])
    return found


def run_record() -> dict:
    record = {name: FLAGS[name].value for name in RECORDED_FLAGS}
    record["model"] = os.path.abspath(record["model"])
    record["model_files"] = model_fingerprint(record["model"])
    return json.loads(json.dumps(record))  # tuples as lists, as read back


def output_prefix(output_dir: str, path: str) -> str:
    """`<output_dir>/<stem of path>`: what every output of `path` starts with."""
    return os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])


def claim_output_dir(output_dir: str, made: list) -> None:
    """Records this run's settings in --output_dir, or refuses (ValueError)
    when the outputs there were made with others (another model, a
    retrained one, other flags; `made`, the inputs with outputs there, under
    no record: an earlier ortholoop's): skipping them would pass them off as
    this run's, and overwriting them would lose them."""
    from tools import shards
    path = os.path.join(output_dir, RUN_RECORD)
    record = run_record()
    if not os.path.isfile(path) and made:
        raise ValueError(f"--output_dir={output_dir} already holds outputs for "
                         f"{os.path.basename(made[0])} (and {len(made) - 1} more) of an "
                         "unrecorded run; use another --output_dir, or delete them")
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                earlier = json.load(f)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} is damaged ({err}); delete it and the outputs it "
                             "describes, or use another --output_dir") from None
        changed = sorted(k for k in set(record) | set(earlier) if record.get(k) != earlier.get(k))
        if changed:
            raise ValueError(
                f"--output_dir={output_dir} holds outputs of another run (differs in: "
                f"{', '.join('--' + k if k in RECORDED_FLAGS else k for k in changed)}; "
                f"see {path}); use another --output_dir, or delete those outputs and {RUN_RECORD}")
        return
    with shards.atomic(path) as part, open(part, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)


def pending(paths: list, output_dir: str, class_names: list) -> list:
    """The inputs whose outputs are not all there (the others are logged as
    skipped: a rerun resumes a killed job). Complete outputs are only
    skipped when the run record says this run's settings made them."""
    from tools import shards
    expected = {path: outputs(output_prefix(output_dir, path), class_names) for path in paths}
    claim_output_dir(output_dir, [path for path in paths
                                  if any(os.path.isfile(p) for p in expected[path])])
    todo = []
    for path in paths:
        if shards.complete(expected[path]):
            logging.info("%s: outputs in %s exist, skipped", path, output_dir)
        else:
            todo.append(path)
    return todo


def merge_main() -> None:
    """--merge: the mosaics of --output_dir, or exit with one line."""
    try:
        for path in merge(FLAGS.output_dir):
            logging.info("merged -> %s", path)
    except ValueError as err:
        raise SystemExit(f"tools.predict: {err}") from None
