"""Tests for core.export: signatures, standalone loading, atomic writes.

One small U-Net is exported once per class; the standalone check runs Python
in a temporary folder with PYTHONPATH cleared, where `import core` fails.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.isolation import without_project

from core import export, inference
from layers import UNet
from tests.helpers import EXPORT_OVERLAP as OVERLAP
from tests.helpers import EXPORT_TTA as TTA
from tests.helpers import EXPORT_WINDOW as WINDOW
from tests.helpers import info_for, random_conv


def small_unet():
    model = UNet(3, in_channels=3, filters=4, depth=3, mean=[10.0, 20.0, 30.0],
                 std=[5.0, 6.0, 7.0])
    model(tf.zeros([1, 8, 8, 3]), training=False)
    # Make the output depend on the input strongly enough for varied classes.
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(scale=0.4, size=v.shape).astype(np.float32))
    return model


def env_without_project():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


class ExportTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.model = small_unet()
        cls.export_dir = export.export_saved_model(
            cls.model, os.path.join(cls.root, "export"), info_for(cls.model))

    def test_standalone_load_gives_same_classes(self):
        rng = np.random.default_rng(1)
        batch = rng.uniform(0, 60, (2, 13, 21, 3)).astype(np.float32)
        tile = rng.uniform(0, 60, (37, 29, 3)).astype(np.float32)
        work = tempfile.mkdtemp()
        np.save(os.path.join(work, "batch.npy"), batch)
        np.save(os.path.join(work, "tile.npy"), tile)
        script = without_project(textwrap.dedent(f"""
            import json, numpy as np, tensorflow as tf
            try:
                import core
            except ImportError:
                pass
            else:
                raise SystemExit("the project is importable: " + core.__file__)
            loaded = tf.saved_model.load({self.export_dir!r})
            out = loaded.signatures["serving_default"](images=tf.constant(np.load("batch.npy")))
            tile = loaded.signatures["predict_tile"](image=tf.constant(np.load("tile.npy")))
            info = json.load(open(loaded.model_info.asset_path.numpy().decode()))
            np.savez("out.npz", classes=out["classes"].numpy(),
                     probabilities=out["probabilities"].numpy(),
                     tile_classes=tile["classes"].numpy(),
                     tile_probabilities=tile["probabilities"].numpy(),
                     class_names=np.array(info["class_names"]))
        """))
        run = subprocess.run([sys.executable, "-c", script], cwd=work, env=env_without_project(),
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        got = np.load(os.path.join(work, "out.npz"))
        self.assertEqual(got["classes"].dtype, np.uint8)
        self.assertEqual(list(got["class_names"]), ["a", "b", "c"])
        # In process: the model on the reflect-padded batch (16 x 24), cropped.
        padded = np.pad(batch, ((0, 0), (0, 3), (0, 3), (0, 0)), mode="reflect")
        want = tf.nn.softmax(self.model(padded)).numpy()[:, :13, :21]
        self.assertAllClose(got["probabilities"], want, atol=1e-5)
        self.assertAllEqual(got["classes"], want.argmax(-1))
        self.assertGreater(len(np.unique(got["classes"])), 1)
        # predict_tile: same as the NumPy sliding-window predictor.
        want_tile = inference.predict_tile(self.model, tile, window=WINDOW, overlap=OVERLAP,
                                           tta=TTA, batch_size=2)
        self.assertAllClose(got["tile_probabilities"], want_tile, atol=1e-5)
        self.assertAllEqual(got["tile_classes"], want_tile.argmax(-1))

    def test_saved_model_cli_lists_both_signatures(self):
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        run = subprocess.run([cli, "show", "--dir", self.export_dir, "--all"],
                             env=env_without_project(), capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr[-2000:])
        self.assertIn("signature_def['serving_default']", run.stdout)
        self.assertIn("signature_def['predict_tile']", run.stdout)
        for name in ("images", "image", "probabilities", "classes"):
            self.assertIn(f"['{name}']", run.stdout)

    def test_model_info_asset(self):
        info = export.read_model_info(self.export_dir)
        self.assertEqual(info["bands"], ["IR", "R", "G"])
        self.assertAllClose(info["mean"], [10.0, 20.0, 30.0])
        self.assertAllClose(info["std"], [5.0, 6.0, 7.0])
        self.assertEqual(info["tta"], [0])
        self.assertEqual((info["window"], info["num_classes"]), (WINDOW, 3))
        self.assertEqual(info["input_dtype"], "uint16")
        # In band order, floats (JSON numbers).
        self.assertEqual(list(info["band_ranges"].items()),
                         [("IR", [0.0, 4095.5]), ("R", [1.0, 2.0]), ("G", [3.0, 4000.0])])

    def test_loaded_model_logits_equal_model(self):
        loaded = export.LoadedModel(self.export_dir)
        x = np.random.default_rng(2).uniform(0, 60, (1, 16, 32, 3)).astype(np.float32)
        self.assertAllClose(loaded(x), self.model(x), rtol=1e-4, atol=1e-4)
        self.assertEqual((loaded.num_classes, loaded.in_channels, loaded.depth), (3, 3, 3))

    def test_nan_pixels_are_class_255_and_do_not_spread(self):
        loaded = tf.saved_model.load(self.export_dir)
        rng = np.random.default_rng(3)
        batch = rng.uniform(0, 60, (1, 16, 24, 3)).astype(np.float32)
        batch[0, 4:7, 5:9, 1] = np.nan
        batch[0, 12, 20, 0] = -np.inf
        bad = ~np.isfinite(batch).all(-1)
        filled = np.where(np.isfinite(batch), batch, 0).astype(np.float32)
        want = tf.nn.softmax(self.model(filled)).numpy()
        out = loaded.signatures["serving_default"](images=tf.constant(batch))
        self.assertAllClose(out["probabilities"], want, atol=1e-5)
        self.assertAllEqual(out["classes"], np.where(bad, 255, want.argmax(-1)))
        tile = loaded.signatures["predict_tile"](image=tf.constant(batch[0]))
        want_tile = inference.predict_tile(self.model, filled[0], window=WINDOW,
                                           overlap=OVERLAP, tta=TTA, batch_size=2)
        self.assertAllClose(tile["probabilities"], want_tile, atol=1e-5)
        self.assertAllEqual(tile["classes"], np.where(bad[0], 255, want_tile.argmax(-1)))
        self.assertAllClose(export.LoadedModel(self.export_dir)(batch), self.model(filled),
                            rtol=1e-4, atol=1e-4)

    def test_nan_heights_get_the_images_mean_height(self):
        # An R, G, nDSM model: a hole in the heights is filled with the
        # image's mean height (tiles.read_elevation), one in R with 0.
        info = dict(info_for(self.model), bands=["R", "G", "nDSM"])
        path = export.export_saved_model(self.model, os.path.join(self.root, "rg_ndsm"), info)
        loaded = tf.saved_model.load(path)
        rng = np.random.default_rng(4)
        batch = rng.uniform(0, 60, (2, 16, 24, 3)).astype(np.float32)
        batch[0, 2:5, 3:6, 2] = np.nan
        batch[1, 9, 9:12, 2] = np.inf
        batch[1, 0, 0, 0] = np.nan
        filled = batch.copy()
        for i in range(2):
            heights = filled[i, ..., 2]
            heights[~np.isfinite(heights)] = heights[np.isfinite(heights)].mean()
        filled[~np.isfinite(filled)] = 0
        want = tf.nn.softmax(self.model(filled)).numpy()
        out = loaded.signatures["serving_default"](images=tf.constant(batch))
        self.assertAllClose(out["probabilities"], want, atol=1e-5)
        self.assertAllEqual(out["classes"],
                            np.where(~np.isfinite(batch).all(-1), 255, want.argmax(-1)))
        tile = loaded.signatures["predict_tile"](image=tf.constant(batch[0]))
        want_tile = inference.predict_tile(self.model, filled[0], window=WINDOW,
                                           overlap=OVERLAP, tta=TTA, batch_size=2)
        self.assertAllClose(tile["probabilities"], want_tile, atol=1e-5)

    def test_pad_to_multiple_is_reflection(self):
        x = np.arange(2 * 5 * 9 * 1, dtype=np.float32).reshape(2, 5, 9, 1)
        want = np.pad(x, ((0, 0), (0, 3), (0, 7), (0, 0)), mode="reflect")
        self.assertAllEqual(export.pad_to_multiple(tf.constant(x), 8), want)

    def test_bad_model_info(self):
        with self.assertRaisesRegex(export.ExportError, "3 classes but 2 class names"):
            export.make_model_info(self.model, class_names=["a", "b"], palette=[(0, 0, 0)] * 2,
                                   bands=["R", "G", "B"])
        with self.assertRaisesRegex(export.ExportError, "takes 3 bands"):
            export.make_model_info(self.model, class_names="abc", palette=[(0, 0, 0)] * 3,
                                   bands=["R", "G"])
        with self.assertRaisesRegex(export.ExportError, "multiple of 8"):
            export.make_model_info(self.model, class_names="abc", palette=[(0, 0, 0)] * 3,
                                   bands="RGB", window=20)
        with self.assertRaisesRegex(export.ExportError, "input_dtype 'uint12': expected one of "
                                                        "uint8, uint16, int16, float32"):
            export.make_model_info(self.model, class_names="abc", palette=[(0, 0, 0)] * 3,
                                   bands="RGB", input_dtype="uint12")
        with self.assertRaisesRegex(export.ExportError, r"band_ranges names \['IR'\]"):
            export.make_model_info(self.model, class_names="abc", palette=[(0, 0, 0)] * 3,
                                   bands="RGB", band_ranges={"IR": [0, 1]})


class AtomicWriteTest(tf.test.TestCase):

    def test_previous_kept_interrupted_export_harmless_user_folder_refused(self):
        root = self.get_temp_dir()
        target = os.path.join(root, "export")
        model = random_conv(size=3, channels=3, classes=3, depth=3)  # cheap to trace
        info = info_for(model)
        export.export_saved_model(model, target, dict(info, run=1))
        export.export_saved_model(model, target, dict(info, run=2))
        self.assertEqual(export.read_model_info(target)["run"], 2)
        self.assertEqual(export.read_model_info(target + ".previous")["run"], 1)

        # An export that dies while writing leaves the current one whole.
        with mock.patch.object(tf.saved_model, "save", side_effect=KeyboardInterrupt):
            with self.assertRaises(KeyboardInterrupt):
                export.export_saved_model(model, target, dict(info, run=3))
        self.assertEqual(export.read_model_info(target)["run"], 2)
        self.assertEqual(sorted(os.listdir(root)), ["export", "export.previous"])

        # A user's folder that is not an export is never replaced.
        user = os.path.join(root, "notes")
        os.makedirs(user)
        with open(os.path.join(user, "keep.txt"), "w") as f:
            f.write("mine")
        with self.assertRaisesRegex(export.ExportError, "not a SavedModel export"):
            export.export_saved_model(model, user, info)
        self.assertEqual(os.listdir(user), ["keep.txt"])
        with self.assertRaisesRegex(export.ExportError, "no saved_model.pb"):
            export.read_model_info(user)
        json.dumps(info)  # the info is plain JSON


if __name__ == "__main__":
    tf.test.main()
