"""tools.predict's maps out (tools/maps_out.py, tools/shards.py) end to end.

Three adjacent georeferenced RGB tiles (a | b over c, c with a no-data block
and larger, so a job can be killed while it predicts it). One in-memory
run is the reference; two --stream shards (one by flags, one by SLURM's
variables, that one also --merge) must give the same classes as COGs, the
same polygons, and a mosaic; a job killed with SIGKILL and rerun must give
the same files as the shards.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import rasterio
import tensorflow as tf
from rasterio import features
from rasterio.transform import from_origin

from core import vectorize
from tests.tools.test_predict import REPO, make_workdir, run_tool
from tools import shards

PIXEL = 0.5
SHAPES = {"a": ((40, 56), (1000.0, 2000.0)), "b": ((40, 56), (1028.0, 2000.0)),
          "c": ((320, 560), (1000.0, 1980.0))}
STREAM = ["--stream", "--window=32", "--block=96", "--vector=gpkg", "--save_probabilities"]


def write_inputs(folder):
    os.makedirs(folder)
    rng = np.random.default_rng(7)
    for name, ((h, w), (x, y)) in SHAPES.items():
        # 8x8-pixel blocks of one colour: classes in blobs, few polygons.
        coarse = rng.integers(1, 256, (3, h // 8 + 1, w // 8 + 1)).astype(np.uint8)
        pixels = np.kron(coarse, np.ones((1, 8, 8), np.uint8))[:, :h, :w]
        if name == "c":
            pixels[:, 5:15, 20:30] = 0
        with rasterio.open(os.path.join(folder, f"{name}.tif"), "w", driver="GTiff",
                           height=h, width=w, count=3, dtype="uint8", crs="EPSG:25832",
                           transform=from_origin(x, y, PIXEL, PIXEL),
                           nodata=0 if name == "c" else None) as ds:
            ds.write(pixels)


def read(path, band=None):
    with rasterio.open(path) as ds:
        return ds.read(band) if band else ds.read()


class MapsOutTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.workdir, _ = make_workdir(cls.root, bands=("R", "G", "B"))
        cls.inputs = os.path.join(cls.root, "tiles")
        write_inputs(cls.inputs)
        common = [f"--model={cls.workdir}", f"--input={cls.inputs}"]
        cls.ref = os.path.join(cls.root, "ref")
        cls.runs = [run_tool("predict", *common, f"--output_dir={cls.ref}", "--window=32",
                             "--vector=gpkg", "--save_probabilities")]
        cls.out = os.path.join(cls.root, "shards")
        cls.runs.append(run_tool("predict", *common, f"--output_dir={cls.out}", *STREAM,
                                 "--num_shards=2", "--shard_index=0"))
        env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
        cls.runs.append(run_tool_env(env, "predict", *common, f"--output_dir={cls.out}",
                                     *STREAM, "--merge"))

    def test_runs_succeed_and_shards_split_the_inputs(self):
        for run in self.runs:
            self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        first, second = self.runs[1].stderr, self.runs[2].stderr
        self.assertIn("a.tif ->", first)
        self.assertIn("c.tif ->", first)
        self.assertNotIn("b.tif ->", first)
        self.assertIn("b.tif ->", second)
        self.assertNotIn("a.tif ->", second)

    def test_streamed_cogs_equal_the_in_memory_prediction(self):
        for name in SHAPES:
            stream_path = os.path.join(self.out, f"{name}_classes.tif")
            with rasterio.open(stream_path) as ds:
                self.assertEqual(ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"], "COG")
                self.assertEqual(ds.crs.to_epsg(), 25832)
                self.assertEqual(ds.transform, from_origin(*SHAPES[name][1], PIXEL, PIXEL))
                self.assertEqual(ds.nodata, 255)
                self.assertEqual(ds.colormap(1)[1][:3], (0, 0, 255))
                if name == "c":
                    self.assertEqual(ds.overviews(1), [2])
            ref = read(os.path.join(self.ref, f"{name}_classes.tif"), 1)
            self.assertAllEqual(read(stream_path, 1), ref)
            probs = read(os.path.join(self.out, f"{name}_probabilities.tif")).astype(int)
            ref_probs = read(os.path.join(self.ref, f"{name}_probabilities.tif")).astype(int)
            self.assertLessEqual(np.abs(probs - ref_probs).max(), 1)  # float round-off
        self.assertTrue((read(os.path.join(self.out, "c_classes.tif"), 1)[5:15, 20:30]
                         == 255).all())
        self.assertFalse(os.path.exists(os.path.join(self.out, "a_colour.png")))

    def test_polygons_rasterise_back_to_the_classes(self):
        for name in ("a", "c"):
            classes = read(os.path.join(self.out, f"{name}_classes.tif"), 1)
            for out in (self.out, self.ref):  # streamed and in-memory
                layers = vectorize.read_layers(os.path.join(out, f"{name}.gpkg"))
                self.assertEqual(list(layers), ["road", "roof", "tree"])
                for k, layer in enumerate(layers.values()):
                    self.assertEqual(layer["crs"], "EPSG:25832")
                    back = features.rasterize(
                        [(g, 1) for g in layer["geometry"]], out_shape=classes.shape,
                        transform=from_origin(*SHAPES[name][1], PIXEL, PIXEL), fill=0,
                        dtype="uint8") if layer["geometry"] else np.zeros_like(classes)
                    self.assertAllEqual(back == 1, classes == k)
                    self.assertTrue(np.all((layer["mean_probability"] > 0.3)
                                           & (layer["mean_probability"] <= 1.0)))

    def test_merge_writes_a_mosaic(self):
        mosaic = read(os.path.join(self.out, "mosaic_classes.vrt"), 1)
        self.assertEqual(mosaic.shape, (40 + 320, 112 + 448))
        with rasterio.open(os.path.join(self.out, "mosaic_classes.vrt")) as ds:
            self.assertEqual(ds.crs.to_epsg(), 25832)
            self.assertEqual(ds.transform, from_origin(1000.0, 2000.0, PIXEL, PIXEL))
        for name, (row, col) in (("a", (0, 0)), ("b", (0, 56)), ("c", (40, 0))):
            part = read(os.path.join(self.out, f"{name}_classes.tif"), 1)
            self.assertAllEqual(mosaic[row:row + part.shape[0], col:col + part.shape[1]], part)
        self.assertTrue((mosaic[:40, 112:] == 255).all())  # nothing there: no data
        merged = vectorize.read_layers(os.path.join(self.out, "mosaic.gpkg"))
        for layer_name in ("road", "roof", "tree"):
            count = sum(len(vectorize.read_layers(os.path.join(self.out, f"{n}.gpkg"))[
                layer_name]["geometry"]) for n in SHAPES)
            self.assertLen(merged[layer_name]["geometry"], count)

    def test_killed_job_resumes_to_the_same_outputs(self):
        out = os.path.join(self.root, "killed")
        args = [sys.executable, "-m", "tools.predict", f"--model={self.workdir}",
                f"--input={self.inputs}", f"--output_dir={out}", *STREAM]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
        job = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        # c's scratch COG appears when its prediction starts (a, b are done).
        scratch = os.path.join(out, "c_classes.tif.part.tif")
        while not os.path.exists(scratch) and job.poll() is None:
            self.assertLess(time.time(), deadline)
            time.sleep(0.01)
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
        self.assertFalse(shards.complete([os.path.join(out, "c_classes.tif"),
                                          os.path.join(out, "c.gpkg")]),
                         "the job finished before it was killed")
        rerun = run_tool("predict", *args[3:])
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertRegex(rerun.stderr, r"a\.tif: outputs in .* exist, skipped")
        self.assertEqual(sorted(os.listdir(out)), sorted(
            f for f in os.listdir(self.out) if not f.startswith("mosaic")))
        for name in SHAPES:
            for suffix in ("_classes.tif", "_probabilities.tif"):
                with open(os.path.join(out, name + suffix), "rb") as f, \
                        open(os.path.join(self.out, name + suffix), "rb") as g:
                    self.assertEqual(f.read(), g.read(), name + suffix)
            got = vectorize.read_layers(os.path.join(out, f"{name}.gpkg"))
            want = vectorize.read_layers(os.path.join(self.out, f"{name}.gpkg"))
            for layer in want:
                self.assertEqual([g.wkb for g in got[layer]["geometry"]],
                                 [g.wkb for g in want[layer]["geometry"]])
                self.assertAllEqual(got[layer]["mean_probability"],
                                    want[layer]["mean_probability"])


def run_tool_env(env, name, *args):
    full = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO, **env)
    return subprocess.run([sys.executable, "-m", f"tools.{name}", *args], cwd=REPO,
                          env=full, capture_output=True, text=True, timeout=300)


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
