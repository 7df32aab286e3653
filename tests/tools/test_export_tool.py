"""tools.export on a workdir, then the export used in-process and by tools.predict.

Two subprocesses: the export binary, and the predict binary on the SavedModel
(with one input holding the wrong number of bands, refused by name). The
model was trained on float32 bands: the float32 input passes the dtype check.
"""
import os
import tempfile

import numpy as np
import rasterio
import tensorflow as tf

from core import export, inference
from core.data import geotiff
from tests.helpers import PALETTE, make_workdir, run_tool


class ExportToolTest(tf.test.TestCase):

    def test_export_then_serve_and_predict(self):
        root = tempfile.mkdtemp()
        ranges = {"R": [0.0, 255.0], "G": [1.0, 254.0], "B": [2.0, 253.0], "nDSM": [-0.5, 31.0]}
        workdir, model = make_workdir(root, seed=0, dtype="float32", band_ranges=ranges)
        run = run_tool("export", f"--model={workdir}", "--checkpoint=best", "--window=32",
                       "--windows_per_call=2")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        export_dir = os.path.join(workdir, "export")
        self.assertTrue(export.is_export(export_dir))
        info = export.read_model_info(export_dir)
        self.assertEqual(info["bands"], ["R", "G", "B", "nDSM"])
        self.assertEqual(info["class_names"], ["road", "roof", "tree"])
        self.assertEqual(info["palette"], [list(c) for c in PALETTE])
        self.assertAllClose(info["mean"], [128, 128, 128, 5])
        self.assertAllClose(info["std"], [60, 60, 60, 3])
        self.assertEqual((info["window"], info["tta"], info["batch_size"]), (32, [0], 2))
        self.assertEqual(info["input_dtype"], "float32")
        self.assertEqual(info["band_ranges"], ranges)

        # In process: both signatures agree with the restored model.
        rng = np.random.default_rng(9)
        tile = np.concatenate([rng.uniform(0, 255, (45, 38, 3)),
                               rng.uniform(0, 10, (45, 38, 1))], -1).astype(np.float32)
        want = inference.predict_tile(model, tile, window=32, overlap=0.25)
        loaded = tf.saved_model.load(export_dir)
        got = loaded.signatures["predict_tile"](image=tf.constant(tile))
        self.assertAllClose(got["probabilities"], want, atol=1e-5)
        self.assertAllEqual(got["classes"], want.argmax(-1))
        self.assertGreater(len(np.unique(want.argmax(-1))), 1)
        batch = tile[None, :40, :32]
        served = loaded.signatures["serving_default"](images=tf.constant(batch))
        self.assertAllEqual(served["classes"], tf.argmax(model(batch), -1))

        # tools.predict with the SavedModel: settings from model_info (window 32).
        inputs = os.path.join(root, "inputs")
        os.makedirs(inputs)
        geo = geotiff.make_geoinfo(32631, (690000.0, 4800000.0), 0.2)
        geotiff.write_geotiff(os.path.join(inputs, "d.tif"), tile, geo)
        geotiff.write_geotiff(os.path.join(inputs, "e.tif"), tile[..., :2].astype(np.uint8), geo)
        out = os.path.join(root, "predictions")
        run = run_tool("predict", f"--model={export_dir}", f"--input={inputs}",
                       f"--output_dir={out}")
        self.assertEqual(run.returncode, 1, run.stderr[-3000:])
        self.assertIn("e.tif: has 2 bands but the model takes 4 (R, G, B, nDSM); give "
                      "--input_bands=<this file's bands, e.g. RGBIR> to pick them and "
                      "--input_elevation=FILE|DIR for nDSM", run.stderr)
        self.assertIn("1 of 2 tile(s) failed", run.stderr)
        with rasterio.open(os.path.join(out, "d_classes.tif")) as src:
            self.assertAllEqual(src.read(1), want.argmax(-1))
            self.assertEqual(src.crs.to_epsg(), 32631)
            self.assertAlmostEqual(src.transform.a, 0.2)
        self.assertFalse(os.path.exists(os.path.join(out, "e_classes.tif")))


if __name__ == "__main__":
    tf.test.main()
