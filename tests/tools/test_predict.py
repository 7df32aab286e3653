"""tools.predict end to end, in a subprocess (absl flags are per process).

A small U-Net taking R, G, B and nDSM is checkpointed into a workdir written
with train_loop.workdir; inputs are 5-band RGBIR GeoTIFFs plus elevation
rasters (one with NaN), a tile smaller than the window, and a broken file.
"""
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import rasterio
import tensorflow as tf

from core import inference
from core.data import geotiff
from layers import UNet
from train_loop import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PALETTE = [(255, 255, 255), (0, 0, 255), (0, 255, 0)]
B = "top_potsdam_2_11_RGBIR"  # the second tile, smaller than a window


def make_workdir(root, bands=("R", "G", "B", "nDSM"), class_names=("road", "roof", "tree"),
                 palette=PALETTE, seed=0):
    """A workdir with config.json and a `best` checkpoint of a random U-Net."""
    kwargs = {"num_classes": len(class_names), "in_channels": len(bands),
              "filters": 4, "depth": 3}
    data = {"dataset": "test", "class_names": list(class_names),
            "palette": [list(c) for c in palette], "bands": list(bands),
            "mean": [5.0 if b.endswith("DSM") else 128.0 for b in bands],
            "std": [3.0 if b.endswith("DSM") else 60.0 for b in bands]}
    model = UNet(**kwargs, mean=data["mean"], std=data["std"])
    model(tf.zeros([1, 8, 8, len(bands)]), training=False)
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.normal(scale=0.4, size=v.shape).astype(np.float32))
    workdir = os.path.join(root, "run")
    workdir_lib.write_config(workdir, {"model": kwargs, "data": data})
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         workdir_lib.checkpoint_dir(workdir, "best"), 1)
    manager.save()
    return workdir, model


def run_tool(name, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", f"tools.{name}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def make_inputs(root):
    """Two georeferenced RGBIR tiles (one smaller than a window) with nDSM, a
    broken file and a 2-band file."""
    rng = np.random.default_rng(5)
    tiles_dir, elev_dir = os.path.join(root, "tiles"), os.path.join(root, "ndsm")
    os.makedirs(tiles_dir)
    os.makedirs(elev_dir)
    arrays = {}
    for name, (h, w), origin in (("a", (50, 70), (366000.0, 5808000.0)),
                                 (B, (20, 13), (366100.0, 5808100.0))):
        rgbir = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)  # R, G, B, IR
        height = rng.uniform(0, 10, (h, w)).astype(np.float32)
        if name == "a":
            height[3:5, 7:10] = np.nan
        geo = geotiff.make_geoinfo(25832, origin, 0.05)
        geotiff.write_geotiff(os.path.join(tiles_dir, f"{name}.tif"), rgbir, geo)
        # "a" is matched by name; "b" like Potsdam's archive, by its tile numbers.
        elev_name = "a" if name == "a" else "dsm_potsdam_02_11_normalized_lastools"
        geotiff.write_geotiff(os.path.join(elev_dir, f"{elev_name}.tif"), height, geo)
        arrays[name] = (rgbir, height)
    with open(os.path.join(tiles_dir, "broken.tif"), "wb") as f:
        f.write(b"II*\x00 this is not a TIFF")
    geotiff.write_geotiff(os.path.join(tiles_dir, "c.tif"), np.zeros((40, 40, 2), np.uint8), None)
    return tiles_dir, elev_dir, arrays


def expected_input(rgbir, height):
    """The model's bands R, G, B, nDSM with NaN replaced by the mean height."""
    filled = np.where(np.isnan(height), np.nanmean(height), height)
    return np.concatenate([rgbir[..., :3].astype(np.float32), filled[..., None]], axis=-1)


class PredictToolTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        cls.root = tempfile.mkdtemp()
        cls.workdir, cls.model = make_workdir(cls.root)
        cls.tiles, cls.elev, cls.arrays = make_inputs(cls.root)

    def test_predicts_georeferenced_tiles_and_reports_bad_ones(self):
        out = os.path.join(self.root, "out")
        run = run_tool("predict", f"--model={self.workdir}", f"--input={self.tiles}",
                       f"--output_dir={out}", "--bands=RGBIR", f"--elevation={self.elev}",
                       "--window=32", "--overlap=0.25", "--tta=flips", "--save_probabilities")
        # The broken and the 2-band files are skipped and named; the others written.
        self.assertEqual(run.returncode, 1, run.stderr[-3000:])
        self.assertRegex(run.stderr, r"SKIPPED .*broken\.tif: TIFF without an image")
        self.assertRegex(run.stderr, r"SKIPPED .*c\.tif: expected 4 bands \(RGBIR\), got "
                                     r"shape \(40, 40, 2\)")
        self.assertIn("2 of 4 tile(s) failed", run.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "c_classes.tif")))
        self.assertRegex(run.stderr, r"a\.tif: 6 NaN/nodata heights")
        for name in ("a", B):
            rgbir, height = self.arrays[name]
            want = inference.predict_tile(self.model, expected_input(rgbir, height), window=32,
                                          overlap=0.25, tta="flips")
            want_classes = want.argmax(-1)
            with rasterio.open(os.path.join(self.tiles, f"{name}.tif")) as src, \
                    rasterio.open(os.path.join(out, f"{name}_classes.tif")) as got:
                self.assertEqual(got.crs, src.crs)
                self.assertEqual(got.crs.to_epsg(), 25832)
                self.assertEqual(got.transform, src.transform)
                self.assertEqual(got.dtypes[0], "uint8")
                classes = got.read(1)
            self.assertAllEqual(classes, want_classes)
            colour = iio.imread(os.path.join(out, f"{name}_colour.png"))
            self.assertAllEqual(colour, np.asarray(PALETTE, np.uint8)[want_classes])
            with rasterio.open(os.path.join(out, f"{name}_probabilities.tif")) as got:
                probs = np.moveaxis(got.read(), 0, -1)
            self.assertAllClose(probs, np.round(want * 255), atol=1)
            if name == "a":
                self.assertGreater(len(np.unique(classes)), 1)


if __name__ == "__main__":
    tf.test.main()
