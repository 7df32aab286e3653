"""tools.predict's maps out (tools/maps_out.py, tools/shards.py) end to end.

Three adjacent georeferenced RGB tiles: a | b over c (c larger, with a
no-data block). Shard 0 of 2 (a, c) runs with --stream and is killed with
SIGKILL while it predicts c, then rerun; shard 1 (b), chosen by SLURM's
variables, runs in memory (GeoTIFF + PNG) with --merge. The reference is
the in-process prediction (core.inference) of the same model: classes,
probabilities and polygons (core.vectorize) must equal it.
"""
import os
import signal
import subprocess
import tempfile
import time

import numpy as np
import rasterio
import tensorflow as tf
from rasterio import features
from rasterio.transform import from_origin

from core import inference, vectorize
from train_loop.workdir import load_model
from tests.helpers import B, REPO, expected_input, make_inputs, make_workdir, run, tool
from tests.helpers import env as helpers_env
from tools import shards

PIXEL = 0.5
SHAPES = {"a": ((40, 56), (1000.0, 2000.0)), "b": ((40, 56), (1028.0, 2000.0)),
          "c": ((320, 560), (1000.0, 1980.0))}
NAMES = ["road", "roof", "tree"]
COMMON = ["--window=32", "--vector=gpkg", "--save_probabilities"]


def write_inputs(folder):
    os.makedirs(folder)
    rng = np.random.default_rng(7)
    arrays = {}
    for name, ((h, w), (x, y)) in SHAPES.items():
        # 8x8-pixel blocks of one colour: classes in blobs, fewer polygons.
        coarse = rng.integers(1, 256, (3, h // 8 + 1, w // 8 + 1)).astype(np.uint8)
        pixels = np.kron(coarse, np.ones((1, 8, 8), np.uint8))[:, :h, :w]
        if name == "c":
            pixels[:, 5:15, 20:30] = 0
        with rasterio.open(os.path.join(folder, f"{name}.tif"), "w", driver="GTiff",
                           height=h, width=w, count=3, dtype="uint8", crs="EPSG:25832",
                           transform=from_origin(x, y, PIXEL, PIXEL),
                           nodata=0 if name == "c" else None) as ds:
            ds.write(pixels)
        arrays[name] = np.moveaxis(pixels, 0, -1)
    return arrays


def read(path, band=None):
    with rasterio.open(path) as ds:
        return ds.read(band) if band else ds.read()


def run_predict(*args, env=None):
    return run(tool("predict", *args), env=helpers_env(**(env or {})), timeout=600)


class MapsOutTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.workdir, _ = make_workdir(cls.root, bands=("R", "G", "B"))
        cls.inputs = os.path.join(cls.root, "tiles")
        arrays = write_inputs(cls.inputs)
        cls.out = os.path.join(cls.root, "out")
        shard0 = [f"--model={cls.workdir}", f"--input={cls.inputs}", f"--output_dir={cls.out}",
                  *COMMON, "--stream", "--block=96", "--num_shards=2", "--shard_index=0"]
        # Shard 0, killed once c's scratch COG appears (a is done, c under way).
        job = subprocess.Popen(tool("predict", *shard0), cwd=REPO, env=helpers_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        scratch, deadline = os.path.join(cls.out, "c_classes.tif.part.tif"), time.time() + 600
        while not os.path.exists(scratch) and job.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
        cls.killed_listing = sorted(os.listdir(cls.out))
        cls.rerun = run_predict(*shard0)
        cls.shard1 = run_predict(f"--model={cls.workdir}", f"--input={cls.inputs}",
                                 f"--output_dir={cls.out}", *COMMON, "--merge",
                                 env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"})
        # The reference: the same model in this process, in memory.
        model, _ = load_model(cls.workdir)
        predictor = inference.TilePredictor(model, window=32)
        cls.want = {}
        for name, image in arrays.items():
            probs = predictor(image.astype(np.float32))
            classes = inference.probabilities_to_classes(probs)
            if name == "c":
                classes[5:15, 20:30] = 255
            cls.want[name] = (classes, probs)

    def test_killed_shard_resumes_and_the_other_shard_merges(self):
        self.assertIn("a.gpkg", self.killed_listing)      # a finished before the kill,
        self.assertNotIn("c_classes.tif", self.killed_listing)  # c did not
        self.assertIn("c_classes.tif.part.tif", self.killed_listing)
        self.assertEqual(self.rerun.returncode, 0, self.rerun.stderr[-3000:])
        self.assertRegex(self.rerun.stderr, r"a\.tif: outputs in .* exist, skipped")
        self.assertIn("c.tif ->", self.rerun.stderr)
        self.assertNotIn("b.tif", self.rerun.stderr)      # shard 1's
        self.assertEqual(self.shard1.returncode, 0, self.shard1.stderr[-3000:])
        self.assertIn("b.tif ->", self.shard1.stderr)
        self.assertNotRegex(self.shard1.stderr, r"[ac]\.tif ->")
        self.assertEqual(sorted(os.listdir(self.out)), sorted(
            ["a_classes.tif", "a_probabilities.tif", "a.gpkg", "c_classes.tif",
             "c_probabilities.tif", "c.gpkg", "b_classes.tif", "b_colour.png",
             "b_probabilities.tif", "b.gpkg", "mosaic_classes.vrt", "mosaic.gpkg",
             ".ortholoop-predict.json"]))

    def test_outputs_of_other_settings_are_neither_skipped_nor_overwritten(self):
        before = {name: os.path.getmtime(os.path.join(self.out, name))
                  for name in os.listdir(self.out)}
        other = run_predict(f"--model={self.workdir}", f"--input={self.inputs}",
                            f"--output_dir={self.out}", *COMMON, "--overlap=0.5")
        self.assertEqual(other.returncode, 1, other.stderr[-3000:])
        self.assertRegex(other.stderr.strip().splitlines()[-1],
                         r"^tools\.predict: --output_dir=.* holds outputs of another run "
                         r"\(differs in: --overlap; see .*\.ortholoop-predict\.json\)")
        self.assertNotIn("Traceback", other.stderr)
        self.assertEqual(before, {name: os.path.getmtime(os.path.join(self.out, name))
                                  for name in os.listdir(self.out)})

    def test_outputs_equal_the_in_process_prediction(self):
        for name, (classes, probs) in self.want.items():
            path = os.path.join(self.out, f"{name}_classes.tif")
            with rasterio.open(path) as ds:
                self.assertEqual(ds.crs.to_epsg(), 25832)
                self.assertEqual(ds.transform, from_origin(*SHAPES[name][1], PIXEL, PIXEL))
                self.assertEqual(ds.nodata, 255)
                if name != "b":  # streamed: a COG with the palette
                    self.assertEqual(ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"], "COG")
                    self.assertEqual(ds.colormap(1)[1][:3], (0, 0, 255))
                    self.assertEqual(ds.overviews(1), [2] if name == "c" else [])
            self.assertAllEqual(read(path, 1), classes)
            got = np.moveaxis(read(os.path.join(self.out, f"{name}_probabilities.tif")), 0, -1)
            self.assertLessEqual(np.abs(got.astype(int) - np.round(probs * 255)).max(), 1)
            layers = vectorize.read_layers(os.path.join(self.out, f"{name}.gpkg"))
            want = vectorize.polygonize(classes, NAMES, probabilities=probs, transform=(
                from_origin(*SHAPES[name][1], PIXEL, PIXEL)))
            self.assertEqual(list(layers), NAMES)
            for layer_name, layer in layers.items():
                self.assertEqual(layer["crs"], "EPSG:25832")
                self.assertEqual([g.wkb for g in layer["geometry"]],
                                 [g.wkb for g in want[layer_name].geometries])
                self.assertAllClose(layer["mean_probability"],
                                    want[layer_name].mean_probability, atol=1 / 255)
                back = features.rasterize(
                    [(g, 1) for g in layer["geometry"]], out_shape=classes.shape,
                    transform=from_origin(*SHAPES[name][1], PIXEL, PIXEL), fill=0,
                    dtype="uint8") if layer["geometry"] else np.zeros_like(classes)
                self.assertAllEqual(back == 1, classes == NAMES.index(layer_name))

    def test_merge_writes_a_mosaic(self):
        mosaic = read(os.path.join(self.out, "mosaic_classes.vrt"), 1)
        self.assertEqual(mosaic.shape, (40 + 320, 112 + 448))
        with rasterio.open(os.path.join(self.out, "mosaic_classes.vrt")) as ds:
            self.assertEqual(ds.crs.to_epsg(), 25832)
            self.assertEqual(ds.transform, from_origin(1000.0, 2000.0, PIXEL, PIXEL))
        for name, (row, col) in (("a", (0, 0)), ("b", (0, 56)), ("c", (40, 0))):
            part = self.want[name][0]
            self.assertAllEqual(mosaic[row:row + part.shape[0], col:col + part.shape[1]], part)
        self.assertTrue((mosaic[:40, 112:] == 255).all())  # nothing there: no data
        merged = vectorize.read_layers(os.path.join(self.out, "mosaic.gpkg"))
        for layer_name in NAMES:
            parts = [vectorize.read_layers(os.path.join(self.out, f"{n}.gpkg"))[layer_name]
                     for n in ("a", "b", "c")]
            self.assertEqual([g.wkb for g in merged[layer_name]["geometry"]],
                             [g.wkb for p in parts for g in p["geometry"]])


class StreamElevationTest(tf.test.TestCase):
    """--stream with --input_bands and an --input_elevation folder (the inputs
    of tests/helpers.make_inputs: RGBIR tiles, nDSM with NaN, a tile smaller than a window, a broken file,
    a 2-band file) gives the in-memory prediction's classes."""

    def test_streamed_rgbir_and_ndsm(self):
        root = tempfile.mkdtemp()
        workdir, model = make_workdir(root)  # R, G, B, nDSM
        tiles_dir, elev_dir, arrays = make_inputs(root)
        out = os.path.join(root, "out")
        run = run_predict(f"--model={workdir}", f"--input={tiles_dir}", f"--output_dir={out}",
                          "--stream", "--block=40", "--input_bands=RGBIR",
                          f"--input_elevation={elev_dir}", "--window=32", "--tta=flips")
        self.assertEqual(run.returncode, 1, run.stderr[-3000:])
        self.assertRegex(run.stderr, r"SKIPPED .*broken\.tif: GDAL cannot open it")
        self.assertRegex(run.stderr, r"SKIPPED .*c\.tif: expected 4 bands \(RGBIR\), the "
                                     r"file has 2")
        self.assertIn("2 of 4 tile(s) failed", run.stderr)
        self.assertFalse([f for f in os.listdir(out) if f.startswith(("c_", "broken"))])
        for name in ("a", B):
            rgbir, height = arrays[name]
            want = inference.predict_tile(model, expected_input(rgbir, height), window=32,
                                          overlap=0.25, tta="flips")
            want_classes = np.where(np.isnan(height), 255, want.argmax(-1))
            self.assertAllEqual(read(os.path.join(out, f"{name}_classes.tif"), 1),
                                want_classes)


class ShardsTest(tf.test.TestCase):

    def test_shards_cover_every_input_once(self):
        paths = [f"tile_{i:03d}.tif" for i in range(23)][::-1]
        chosen = [shards.select(paths, 4, i) for i in range(4)]
        self.assertEqual(sorted(p for c in chosen for p in c), sorted(paths))
        self.assertEqual([len(c) for c in chosen], [6, 6, 6, 5])
        self.assertEqual(chosen[1][:2], ["tile_001.tif", "tile_005.tif"])

    def test_scheduler_variables(self):
        tf_config = ('{"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]}, '
                     '"task": {"type": "worker", "index": 1}}')
        self.assertEqual(shards.resolve(None, None, {"TF_CONFIG": tf_config}), (3, 2))
        self.assertEqual(shards.resolve(None, None, {
            "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4",
            "SLURM_ARRAY_TASK_MIN": "5"}), (4, 2))
        self.assertEqual(shards.resolve(3, None, {"JOB_COMPLETION_INDEX": "2"}), (3, 2))
        self.assertEqual(shards.resolve(5, 1, {"JOB_COMPLETION_INDEX": "2"}), (5, 1))
        self.assertEqual(shards.resolve(None, None, {}), (1, 0))
        with self.assertRaisesRegex(ValueError, "give --num_shards"):
            shards.resolve(None, None, {"JOB_COMPLETION_INDEX": "2"})
        with self.assertRaisesRegex(ValueError, r"--shard_index: shard 4 of 4"):
            shards.resolve(4, 4, {})


if __name__ == "__main__":
    tf.test.main()
