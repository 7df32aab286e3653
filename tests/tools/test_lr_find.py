"""tools.lr_find end to end (subprocess) on a tiny prepared folder store."""
import os
import re
import tempfile

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from core.data import geotiff, prepare
from tests.helpers import run_tool
from train_loop import lr_finder
from train_loop.config import LoopConfig, ModelConfig, TrainConfig, experiment_name


def make_store(root):
    """Three 64x64 RGB tiles whose label is learnable (1 where R is bright)."""
    rng = np.random.default_rng(11)
    src = os.path.join(root, "src")
    os.makedirs(os.path.join(src, "images"))
    os.makedirs(os.path.join(src, "masks"))
    for i in range(3):
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        mask = (image[..., 0] > 127).astype(np.uint8)
        geotiff.write_geotiff(os.path.join(src, "images", f"t{i}.tif"), image, None)
        iio.imwrite(os.path.join(src, "masks", f"t{i}.png"), mask)
    store = os.path.join(root, "store")
    prepare.prepare("folder", src, store, val_tiles=["t2"])
    return store


class LRFindToolTest(tf.test.TestCase):

    def test_sweep_writes_csv_png_tensorboard_and_prints_suggestion(self):
        root = tempfile.mkdtemp()
        store = make_store(root)
        flagfile = os.path.join(root, "tiny.flags")
        with open(flagfile, "w", encoding="utf-8") as f:
            f.write("\n".join([
                f"--data_dir={store}", "--patch_size=32", "--batch_size=4",
                "--noaugment", "--shuffle_buffer=8", "--filters=4", "--depth=3",
                "--loss=ce", "--max_lr=0.05", "--train_steps=10",
                "--precision=float32", f"--workdir_root={root}/runs",
                f"--cache={root}/tile_cache"]) + "\n")
        run = run_tool("lr_find", f"--flagfile={flagfile}", "--sweep_steps=8",
                       "--sweep_min_lr=1e-4", "--sweep_max_lr=10", "--sweep_smoothing=0.5")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        # The training's --cache is not filled by a sweep of a few batches
        # (a cache reads the whole split before the first one).
        self.assertEqual([f for f in os.listdir(root) if f.startswith("tile_cache")], [])

        # Default output folder: WORKDIR_ROOT/lr_find-<experiment name>.
        name = experiment_name(
            TrainConfig(model=ModelConfig(filters=4, depth=3), loss="ce",
                        loop=LoopConfig(train_steps=10)),
            patch_size=32, scale=1.0, batch_size=4)
        out = os.path.join(root, "runs", f"lr_find-{name}")
        lrs, losses, smoothed = lr_finder.read_csv(os.path.join(out, "lr_find.csv"))

        # The sweep: exponential from min_lr, at most num_steps points.
        self.assertBetween(len(lrs), 2, 8)
        self.assertAllClose(lrs, 1e-4 * 1e5 ** (np.arange(len(lrs)) / 7), rtol=1e-6)
        self.assertAllClose(smoothed, lr_finder.smooth_losses(losses, 0.5))
        self.assertTrue(np.all(np.isfinite(losses)))
        # A CE loss on 6 classes starts near log(6) for a fresh model.
        self.assertBetween(losses[0], 0.3, 5.0)

        printed = re.search(r"suggested max lr: (\S+)", run.stdout)
        self.assertIsNotNone(printed, run.stdout)
        expected = lr_finder.suggest_lr(lrs, smoothed, skip_start=0)
        self.assertEqual(printed.group(1), f"{expected:.4g}")

        with open(os.path.join(out, "lr_find.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        events = tf.io.gfile.glob(os.path.join(out, "tensorboard", "events.out.tfevents.*"))
        self.assertLen(events, 1)

    def test_non_finite_first_loss_is_one_line(self):
        # A store whose training tiles hold NaN (as stores prepared before
        # NaN pixels were stored as 0 did): the first loss is NaN.
        root = tempfile.mkdtemp()
        store = make_store(root)
        for name in ("t0", "t1"):
            path = os.path.join(store, "tiles", f"{name}.image.npy")
            np.save(path, np.full(np.load(path).shape, np.nan, np.float32))
        import json  # pylint: disable=import-outside-toplevel
        with open(os.path.join(store, "info.json"), encoding="utf-8") as f:
            info = json.load(f)
        info["dtype"] = "float32"
        for name in ("t0", "t1", "t2"):
            info["tiles"][name]["dtype"] = "float32"
        with open(os.path.join(store, "info.json"), "w", encoding="utf-8") as f:
            json.dump(info, f)
        run = run_tool("lr_find", f"--data_dir={store}", "--patch_size=32", "--batch_size=4",
                       "--filters=4", "--depth=3", "--train_steps=10", "--precision=float32",
                       f"--workdir_root={root}/runs", "--sweep_steps=4")
        self.assertEqual(run.returncode, 1, run.stderr[-3000:])
        self.assertNotIn("Traceback", run.stderr)
        self.assertIn("tools.lr_find: lr finder: the first step's loss was not finite",
                      run.stderr)

    def test_bad_sweep_range_is_one_clear_flag_error(self):
        run = run_tool("lr_find", "--data_dir=/nonexistent", "--train_steps=1",
                       "--sweep_min_lr=1", "--sweep_max_lr=0.1")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("0 < --sweep_min_lr < --sweep_max_lr", run.stderr)


if __name__ == "__main__":
    tf.test.main()
