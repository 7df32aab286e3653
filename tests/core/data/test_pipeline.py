"""Tests for core.data.pipeline on a small prepared store."""
import collections
import dataclasses
import os
import shutil

import numpy as np
import tensorflow as tf

from core.data import pipeline
from core.data.augment import AugmentConfig
from core.data.pipeline import PipelineConfig
from core.data.prepare import prepare
from tests.distribute import two_replica_strategy
from tests.core.data.test_prepare import make_folder_dataset

P = 16
SIZES = [(37, 50), (30, 41), (45, 45), (20, 33), (17, 16)]   # last two: val
FULL_AUG = AugmentConfig(xla=False, rotate_deg=20, scale_range=(0.9, 1.1), crop=0.8, brightness=0.1,
                         contrast=0.1, saturation=0.1, hue=0.05, gamma=0.1, noise_std=0.01)


def padded(array, fill):
    h, w = array.shape[:2]
    out = np.full((max(h, P), max(w, P)) + array.shape[2:], fill, array.dtype)
    out[:h, :w] = array
    return out


class PipelineTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "pipeline_store")
        shutil.rmtree(root, ignore_errors=True)
        src, cls.store = os.path.join(root, "src"), os.path.join(root, "store")
        make_folder_dataset(src, SIZES, seed=1)
        cls.info = prepare("folder", src, cls.store, elevation="dsm", val_tiles=["tile3", "tile4"])
        cls.tiles = {}
        for name, t in cls.info["tiles"].items():
            image = np.load(os.path.join(cls.store, t["files"]["image"])).astype(np.float32)
            elev = np.load(os.path.join(cls.store, t["files"]["elevation"]))
            label = np.load(os.path.join(cls.store, t["files"]["label"]))
            cls.tiles[name] = (np.concatenate([image, elev[..., None]], -1), label)

    def cfg(self, **kwargs):
        base = dict(data_dir=self.store, patch_size=P, batch_size=4, augment=None,
                    shuffle_buffer=32, deterministic=True, seed=3)
        return PipelineConfig(**{**base, **kwargs})

    def window_index(self, split="train", every_offset=False):
        """{image bytes: (tile, y, x, label window)} of the split's windows."""
        index = {}
        for name in self.info["splits"][split]:
            image, label = self.tiles[name]
            image, label = padded(image, 0), padded(label, 255)
            h, w = label.shape
            if every_offset:
                corners = [(y, x) for y in range(h - P + 1) for x in range(w - P + 1)]
            else:
                from core.data.patches import grid_windows
                corners = grid_windows(h, w, P)
            for y, x in corners:
                index[image[y:y + P, x:x + P].tobytes()] = (name, y, x, label[y:y + P, x:x + P])
        return index

    def patches(self, ds, count):
        out = []
        for batch in ds:
            out += list(zip(batch["image"].numpy(), batch["label"].numpy()))
            if len(out) >= count:
                return out[:count]
        return out

    def test_train_batches_are_raw_aligned_windows(self):
        ds = pipeline.train_dataset(self.cfg())
        self.assertEqual(ds.element_spec["image"], tf.TensorSpec([4, P, P, 5], tf.float32))
        self.assertEqual(ds.element_spec["label"], tf.TensorSpec([4, P, P], tf.uint8))
        index = self.window_index()
        for image, label in self.patches(ds, 40):
            name, y, x, expected_label = index[image.tobytes()]
            self.assertAllEqual(label, expected_label)

    def test_grid_epochs_visit_every_window(self):
        cfg = self.cfg(shuffle_buffer=1, batch_size=1, cycle_length=1)
        n = pipeline.num_patches(cfg, "train")
        index = self.window_index()
        self.assertEqual(n, len(index))
        # One tile at a time: an epoch is exactly every window once.
        keys = [index[i.tobytes()][:3] for i, _ in self.patches(pipeline.train_dataset(cfg), n)]
        self.assertCountEqual(keys, [v[:3] for v in index.values()])
        # Interleaved tiles: epochs overlap at their ends, but over 3 epochs
        # every window comes 3 times, give or take one.
        cfg = dataclasses.replace(cfg, cycle_length=3, batch_size=n)
        keys = [index[i.tobytes()][:3] for i, _ in self.patches(pipeline.train_dataset(cfg), 3 * n)]
        counts = collections.Counter(keys)
        self.assertEqual(set(counts), {v[:3] for v in index.values()})
        self.assertTrue(set(counts.values()) <= {2, 3, 4}, collections.Counter(counts.values()))

    def test_eval_covers_every_pixel_in_order(self):
        cfg = self.cfg(batch_size=3)
        ds = pipeline.eval_dataset(cfg, "val")
        sizes = [int(b["label"].shape[0]) for b in ds]
        n = pipeline.num_patches(cfg, "val")
        self.assertEqual(sum(sizes), n)
        self.assertEqual(sizes[-1], n % 3 or 3)
        index = self.window_index("val")
        seen = collections.defaultdict(lambda: None)
        for image, label in self.patches(ds, n):
            name, y, x, expected = index[image.tobytes()]
            self.assertAllEqual(label, expected)
            image_full, _ = self.tiles[name]
            cover = seen[name] if seen[name] is not None else np.zeros(
                padded(image_full, 0).shape[:2], bool)
            cover[y:y + P, x:x + P] = True
            seen[name] = cover
        for name in self.info["splits"]["val"]:
            h, w = self.tiles[name][1].shape
            self.assertTrue(seen[name][:h, :w].all(), name)

    def test_seed_determinism_and_iterator_checkpoint(self):
        cfg = self.cfg(augment=FULL_AUG, sampling="random", patches_per_epoch=30)
        a = [(b["image"].numpy(), b["label"].numpy()) for b in pipeline.train_dataset(cfg).take(4)]
        b = [b["image"].numpy() for b in pipeline.train_dataset(cfg).take(4)]
        c = [b["image"].numpy() for b in pipeline.train_dataset(
            dataclasses.replace(cfg, seed=4)).take(4)]
        for (x, _), y, z in zip(a, b, c):
            self.assertAllEqual(x, y)
            self.assertNotAllClose(x, z)
        # The XLA-compiled augmentation: same stream, checkpointable iterator.
        xla = dataclasses.replace(cfg, augment=dataclasses.replace(FULL_AUG, xla=True))
        it = iter(pipeline.train_dataset(xla))
        next(it)
        ckpt = tf.train.Checkpoint(iterator=it)
        path = ckpt.write(os.path.join(self.get_temp_dir(), "it"))
        after = [next(it) for _ in range(3)]
        ckpt.read(path).assert_consumed()
        for expected in after:
            got = next(it)
            self.assertAllEqual(got["image"], expected["image"])
            self.assertAllEqual(got["label"], expected["label"])
        for (image, label), got in zip(a[1:], after):
            self.assertAllClose(got["image"], image, atol=0.05)
            self.assertAllEqual(got["label"], label)

    def test_caches_do_not_change_the_stream(self):
        base = self.cfg(augment=AugmentConfig(xla=False, rotate_deg=10), sampling="random",
                        patches_per_epoch=12)
        ref = [b["label"].numpy() for b in pipeline.train_dataset(base).take(6)]
        for cache in ("memory", os.path.join(self.get_temp_dir(), "tiles.cache")):
            got = [b["label"].numpy() for b in pipeline.train_dataset(
                dataclasses.replace(base, cache=cache)).take(6)]
            self.assertAllEqual(np.stack(got), np.stack(ref))

    def test_random_windows_lie_in_tiles(self):
        cfg = self.cfg(sampling="random", patches_per_epoch=10, shuffle_buffer=1, batch_size=2)
        self.assertEqual(pipeline.num_patches(cfg, "train"), 12)   # 3 tiles x ceil(10 / 3)
        index = self.window_index(every_offset=True)
        keys = [index[i.tobytes()][:3] for i, _ in self.patches(pipeline.train_dataset(cfg), 24)]
        self.assertGreater(len(set(keys)), 12)
        per_tile = collections.Counter(k[0] for k in keys[:12])
        self.assertEqual(set(per_tile.values()), {4})

    def test_per_replica_batches_and_sharding(self):
        cfg = self.cfg(batch_size=8)
        ctx = tf.distribute.InputContext(1, 0, 2)
        self.assertEqual(pipeline.train_dataset(cfg, ctx).element_spec["image"].shape[0], 4)
        index = self.window_index()
        tiles = []
        for pid in range(2):
            ctx = tf.distribute.InputContext(2, pid, 2)
            ds = pipeline.train_dataset(cfg, ctx)
            tiles.append({index[i.tobytes()][0] for i, _ in self.patches(ds, 40)})
        self.assertFalse(tiles[0] & tiles[1])
        self.assertEqual(tiles[0] | tiles[1], set(self.info["splits"]["train"]))
        strategy = two_replica_strategy()
        dist = strategy.distribute_datasets_from_function(
            lambda c: pipeline.train_dataset(cfg, c))
        batch = next(iter(dist))
        self.assertEqual([t.shape[0] for t in strategy.experimental_local_results(
            batch["image"])], [4, 4])

    def test_band_selection_scale_and_info(self):
        cfg = self.cfg(bands="IRRG", elevation=False)
        info = pipeline.dataset_info(cfg)
        self.assertEqual(info["bands"], ["IR", "R", "G"])
        self.assertEqual(info["in_channels"], 3)
        self.assertEqual(info["mean"], [self.info["mean"][i] for i in (3, 0, 1)])
        index = {k: v for k, v in self.window_index().items()}
        sub = {np.frombuffer(k, np.float32).reshape(P, P, 5)[..., [3, 0, 1]]
               .astype(np.uint8).tobytes(): v for k, v in index.items()}
        ds = pipeline.train_dataset(cfg)
        # Optical bands only: the batches keep the store's uint8.
        self.assertEqual(ds.element_spec["image"], tf.TensorSpec([4, P, P, 3], tf.uint8))
        for image, label in self.patches(ds, 8):
            self.assertEqual(image.shape, (P, P, 3))
            self.assertAllEqual(label, sub[image.tobytes()][3])
        half = self.cfg(scale=0.5)
        n = sum(int(b["label"].shape[0]) for b in pipeline.eval_dataset(half, "train"))
        self.assertEqual(n, pipeline.num_patches(half, "train"))
        self.assertLess(n, pipeline.num_patches(self.cfg(), "train"))

    def test_iter_tiles(self):
        got = list(pipeline.iter_tiles(self.store, "val"))
        self.assertEqual([g[0] for g in got], self.info["splits"]["val"])
        for name, image, label in got:
            self.assertEqual(image.dtype, np.float32)
            self.assertAllEqual(image, self.tiles[name][0])
            self.assertAllEqual(label, self.tiles[name][1])
        name, image, _ = next(pipeline.iter_tiles(self.store, "val", bands="B", elevation=False))
        self.assertAllEqual(image, self.tiles[name][0][..., 2:3])

    def test_errors(self):
        with self.assertRaisesRegex(FileNotFoundError, "nowhere/info.json: not found"):
            pipeline.load_info("/nowhere")
        with self.assertRaisesRegex(ValueError, "split 'test' not in"):
            pipeline.eval_dataset(self.cfg(), "test")
        rgb_store = os.path.join(self.get_temp_dir(), "rgb_store")
        prepare("folder", self.info["source"], rgb_store, bands="RGB", val_tiles=["tile4"])
        with self.assertRaisesRegex(ValueError, r"bands IRRG: \['IR'\] not in the store \(RGB\)"):
            pipeline.train_dataset(self.cfg(data_dir=rgb_store, bands="IRRG"))
        with self.assertRaisesRegex(ValueError, "store has none"):
            pipeline.train_dataset(self.cfg(data_dir=rgb_store, elevation=True))
        with self.assertRaisesRegex(ValueError, "store holds 'dsm'"):
            pipeline.train_dataset(self.cfg(elevation="ndsm"))
        for kwargs in [dict(sampling="sliding"), dict(patch_size=0), dict(scale=0.0),
                       dict(batch_size=0), dict(stride=0)]:
            with self.assertRaisesRegex(ValueError, "PipelineConfig"):
                self.cfg(**kwargs)


if __name__ == "__main__":
    tf.test.main()
