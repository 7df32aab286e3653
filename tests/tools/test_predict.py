"""tools.predict end to end, in a subprocess (absl flags are per process).

A small U-Net taking R, G, B and nDSM is checkpointed into a workdir written
with train_loop.workdir; inputs are 5-band RGBIR GeoTIFFs plus elevation
rasters (one with NaN: no data in the outputs), a tile smaller than the
window, and a broken file. BitDepthTest: models trained on uint8 and uint16
inputs against inputs of the other dtype, refused or --rescale_input'ed.
"""
import os

import imageio.v3 as iio
import numpy as np
import rasterio
import tensorflow as tf

from core import inference
from core.data import geotiff
from core.data.raster import read_raster
from tests.helpers import B, PALETTE, expected_input, make_inputs, make_workdir, run_tool

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
                       f"--output_dir={out}", "--input_bands=RGBIR",
                       f"--input_elevation={self.elev}",
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
            # Pixels without a height are no data (255) in the outputs.
            want_classes = np.where(np.isnan(height), 255, want.argmax(-1)).astype(np.uint8)
            with rasterio.open(os.path.join(self.tiles, f"{name}.tif")) as src, \
                    rasterio.open(os.path.join(out, f"{name}_classes.tif")) as got:
                self.assertEqual(got.crs, src.crs)
                self.assertEqual(got.crs.to_epsg(), 25832)
                self.assertEqual(got.transform, src.transform)
                self.assertEqual(got.dtypes[0], "uint8")
                self.assertEqual(got.nodata, 255)
                classes = got.read(1)
            self.assertAllEqual(classes, want_classes)
            self.assertEqual(np.sum(classes == 255), 6 if name == "a" else 0)
            colour = iio.imread(os.path.join(out, f"{name}_colour.png"))
            self.assertAllEqual(colour, np.asarray(PALETTE + [(0, 0, 0)] * 253, np.uint8)
                                [want_classes])
            with rasterio.open(os.path.join(out, f"{name}_probabilities.tif")) as got:
                probs = np.moveaxis(got.read(), 0, -1)
            self.assertAllClose(probs, np.round(want * 255), atol=1)
            if name == "a":
                self.assertGreater(len(np.unique(classes)), 1)


    def test_elevation_on_another_grid_is_refused(self):
        rgbir, height = self.arrays["a"]
        root = os.path.join(self.root, "shifted")
        os.makedirs(os.path.join(root, "tiles"))
        os.makedirs(os.path.join(root, "ndsm"))
        geotiff.write_geotiff(os.path.join(root, "tiles", "a.tif"), rgbir,
                              geotiff.make_geoinfo(25832, (366000.0, 5808000.0), 0.05))
        geotiff.write_geotiff(os.path.join(root, "ndsm", "a.tif"), height,   # 20 pixels east
                              geotiff.make_geoinfo(25832, (366001.0, 5808000.0), 0.05))
        for mode in ((), ("--stream",)):
            out = os.path.join(root, "out", *mode)
            run = run_tool("predict", f"--model={self.workdir}",
                           f"--input={os.path.join(root, 'tiles')}", f"--output_dir={out}",
                           "--input_bands=RGBIR", f"--input_elevation={os.path.join(root, 'ndsm')}",
                           "--window=32", *mode)
            self.assertEqual(run.returncode, 1, run.stderr[-3000:])
            self.assertRegex(run.stderr, r"SKIPPED .*ndsm/a\.tif is not on the grid of "
                                         r".*tiles/a\.tif: origin \(366001, 5808000\)")
            self.assertFalse(os.path.exists(os.path.join(out, "a_classes.tif")), mode)


def write_rgb(path, array, nodata=None):
    geotiff.write_geotiff(path, array, geotiff.make_geoinfo(25832, (366000.0, 5808000.0), 0.05),
                          nodata=nodata)


class BitDepthTest(tf.test.TestCase):
    """One 8-bit scene, a uint8 model and a uint16 model that predicts on
    x * 257 what the uint8 one predicts on x (same weights, mean/std * 257)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        cls.root = tempfile.mkdtemp()
        bands, full = ("R", "G", "B"), {b: [0.0, 255.0] for b in ("R", "G", "B")}
        cls.model8_dir, cls.model8 = make_workdir(cls.root, bands=bands, dtype="uint8",
                                                  band_ranges=full, name="run8")
        cls.model16_dir, _ = make_workdir(
            cls.root, bands=bands, dtype="uint16", name="run16",
            band_ranges={b: [0.0, 65535.0] for b in bands})
        rng = np.random.default_rng(8)
        cls.u8 = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        cls.u8[0, 0], cls.u8[0, 1] = 0, 255          # every band spans 0..255
        cls.want = inference.predict_tile(cls.model8, cls.u8, window=32).argmax(-1)
        cls.inputs = {}
        for name, array in (("eight", cls.u8),
                            ("sixteen", cls.u8.astype(np.uint16) * 257),
                            # 12-bit-like values with an offset: only "range" undoes it.
                            ("offset", cls.u8.astype(np.uint16) * 16 + 100)):
            folder = os.path.join(cls.root, name)
            os.makedirs(folder)
            write_rgb(os.path.join(folder, f"{name}.tif"), array)
            cls.inputs[name] = folder

    def predict(self, model, name, *flags):
        out = os.path.join(self.root, "out", os.path.basename(model), name, *flags)
        run = run_tool("predict", f"--model={model}", f"--input={self.inputs[name]}",
                       f"--output_dir={out}", "--window=32", *flags)
        path = os.path.join(out, f"{name}_classes.tif")
        if not os.path.exists(path):
            return run, None
        with rasterio.open(path) as got:
            return run, got.read(1)

    def test_input_of_another_dtype_is_refused_in_one_line(self):
        run, classes = self.predict(self.model16_dir, "eight")
        self.assertEqual(run.returncode, 1, run.stderr[-3000:])
        self.assertIsNone(classes)
        self.assertNotIn("Traceback", run.stderr)
        refusal = [ln for ln in run.stderr.splitlines() if "eight.tif: uint8 pixels" in ln]
        self.assertLen(refusal, 1)
        self.assertRegex(refusal[0], r"SKIPPED .*eight\.tif: uint8 pixels but the model was "
                                     r"trained on uint16; pass --rescale_input=dtype \(the "
                                     r"full uint8 range onto uint16's\), range .* or none")

    def test_rescale_dtype_gives_the_matching_input_classes(self):
        self.assertGreater(len(np.unique(self.want)), 1)
        # uint8 file -> uint16 model: x * 65535/255 = x * 257.
        run, classes = self.predict(self.model16_dir, "eight", "--rescale_input=dtype")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertAllEqual(classes, self.want)
        # uint16 file -> uint8 model: x * 255/65535, the uint8 values again.
        run, classes = self.predict(self.model8_dir, "sixteen", "--rescale_input=dtype")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertAllEqual(classes, self.want)

    def test_rescale_range_maps_each_band_min_max(self):
        # 16 x + 100 spans 100..4180 per band: range maps it onto 0..255, x again;
        # as it is (none) it is another picture.
        run, classes = self.predict(self.model8_dir, "offset", "--rescale_input=range")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertAllEqual(classes, self.want)
        run, classes = self.predict(self.model8_dir, "offset", "--rescale_input=none")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertNotAllEqual(classes, self.want)

    def test_nodata_pixels_are_255(self):
        image = self.u8.copy()
        image[5:9, 10:20] = 0                    # the file's nodata value on every band
        folder = os.path.join(self.root, "holes")
        os.makedirs(folder)
        write_rgb(os.path.join(folder, "holes.tif"), image, nodata=0)
        self.assertIsNotNone(read_raster(os.path.join(folder, "holes.tif")).valid)
        self.inputs["holes"] = folder
        run, classes = self.predict(self.model8_dir, "holes")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        want = inference.predict_tile(self.model8, image, window=32).argmax(-1)
        want[(image == 0).all(-1)] = 255         # the hole, and pixel (0, 0)
        self.assertEqual(np.sum(want == 255), 41)
        self.assertAllEqual(classes, want)

    def test_nan_holes_are_255_and_do_not_spread(self):
        # A float raster, written by GDAL, whose holes are NaN without a nodata
        # tag (and one +inf). A NaN fed to the model would spread through the
        # convolutions to every valid pixel near the hole.
        image = self.u8.astype(np.float32)
        image[5:9, 10:20] = np.nan
        image[20, 30, 1] = np.inf
        folder = os.path.join(self.root, "nan_holes")
        os.makedirs(folder)
        with rasterio.open(os.path.join(folder, "nan_holes.tif"), "w", driver="GTiff",
                           width=48, height=40, count=3, dtype="float32",
                           compress="deflate", predictor=3) as dst:
            dst.write(np.moveaxis(image, -1, 0))
        self.inputs["nan_holes"] = folder
        filled = np.where(np.isfinite(image), image, 0).astype(np.float32)  # prepare's 0
        want = inference.predict_tile(self.model8, filled, window=32).argmax(-1)
        want[~np.isfinite(image).all(-1)] = 255
        self.assertEqual(np.sum(want == 255), 41)
        for mode in ((), ("--stream",)):
            run, classes = self.predict(self.model8_dir, "nan_holes", "--rescale_input=none",
                                        *mode)
            self.assertEqual(run.returncode, 0, run.stderr[-3000:])
            self.assertAllEqual(classes, want, msg=str(mode))


if __name__ == "__main__":
    tf.test.main()
