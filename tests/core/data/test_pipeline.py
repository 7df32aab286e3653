"""Tests for core.data.pipeline on small hand-written v2 stores (tests/store_v2.py):
uint8 with a DSM (the fast uint8 path), uint16 / int16 / float32 optical bands."""
import collections
import dataclasses
import os
import tempfile

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.data import pipeline
from core.data.patches import grid_windows
from core.data.augment import AugmentConfig
from core.data.pipeline import PipelineConfig
from tests.distribute import two_replica_strategy
from tests.store_v2 import random_tiles, write_store

P = 16
SIZES = [(37, 50), (30, 41), (45, 45), (20, 33), (17, 16)]   # last two: val
BANDS = ["R", "G", "B", "IR"]
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
        root = tempfile.mkdtemp(prefix="pipeline_store_")
        cls.root, cls.store = root, os.path.join(root, "store")
        cls.info = write_store(cls.store, random_tiles(SIZES, val=("tile3", "tile4"), seed=1),
                               bands=BANDS)
        cls.tiles = {}
        for name, t in cls.info["tiles"].items():
            image = np.load(os.path.join(cls.store, t["files"]["image"])).astype(np.float32)
            elev = np.load(os.path.join(cls.store, t["files"]["dsm"]))
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
        cfg = self.cfg(sampling="random", patches_per_epoch=10, shuffle_buffer=1, batch_size=2,
                       cycle_length=1)
        self.assertEqual(pipeline.num_patches(cfg, "train"), 10)
        index = self.window_index(every_offset=True)
        keys = [index[i.tobytes()][:3] for i, _ in self.patches(pipeline.train_dataset(cfg), 30)]
        self.assertGreater(len(set(keys)), 10)
        # Each tile's share of the 10 follows its pixels: 37x50, 30x41 and
        # 45x45 have shares 3.62, 2.41 and 3.97 (patches.random_counts), so
        # every epoch gives each tile the floor or the ceiling of its share.
        sizes = {name: self.tiles[name][1].size for name in self.info["splits"]["train"]}
        self.assertEqual(sorted(sizes.values()), [1230, 1850, 2025])
        allowed = {name: {1230: {2, 3}, 1850: {3, 4}, 2025: {3, 4}}[n] for name, n in sizes.items()}
        for epoch in range(3):
            per_tile = collections.Counter(k[0] for k in keys[10 * epoch:10 * (epoch + 1)])
            for name in sizes:
                self.assertIn(per_tile[name], allowed[name], (epoch, name))
        # Fewer windows than tiles: no tile is left out for good.
        cfg = dataclasses.replace(cfg, patches_per_epoch=1)
        keys = [index[i.tobytes()][0] for i, _ in self.patches(pipeline.train_dataset(cfg), 30)]
        self.assertEqual(set(keys), set(sizes))
        # Without patches_per_epoch an epoch is as long as the grid's.
        grid = pipeline.num_patches(self.cfg(), "train")
        self.assertEqual(pipeline.num_patches(self.cfg(sampling="random"), "train"), grid)

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
        stats = self.info["band_stats"]
        self.assertEqual(info["mean"], [stats[b]["mean"] for b in ("IR", "R", "G")])
        self.assertEqual(info["std"], [stats[b]["std"] for b in ("IR", "R", "G")])
        self.assertEqual(info["dtype"], "uint8")
        self.assertEqual(info["band_ranges"]["IR"], [stats["IR"]["min"], stats["IR"]["max"]])
        index = {k: v for k, v in self.window_index().items()}
        sub = {np.frombuffer(k, np.float32).reshape(P, P, 5)[..., [3, 0, 1]]
               .astype(np.uint8).tobytes(): v for k, v in index.items()}
        ds = pipeline.train_dataset(cfg)
        # Optical bands only: the batches keep the store's uint8.
        self.assertEqual(ds.element_spec["image"], tf.TensorSpec([4, P, P, 3], tf.uint8))
        for image, label in self.patches(ds, 8):
            self.assertEqual(image.shape, (P, P, 3))
            self.assertAllEqual(label, sub[image.tobytes()][3])
        # Augmented, too (rounded back to uint8 in the augmentation).
        aug = pipeline.train_dataset(dataclasses.replace(cfg, augment=FULL_AUG))
        self.assertEqual(aug.element_spec["image"], tf.TensorSpec([4, P, P, 3], tf.uint8))
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
        write_store(rgb_store, random_tiles(SIZES[:2], val=("tile1",), bands=3, kinds=()),
                    bands=["R", "G", "B"])
        with self.assertRaisesRegex(ValueError, r"^bands IRRG: \['IR'\] not in the store "
                                                r"\(R,G,B\); choose among those\.$"):
            pipeline.train_dataset(self.cfg(data_dir=rgb_store, bands="IRRG"))
        with self.assertRaisesRegex(ValueError, "store has none"):
            pipeline.train_dataset(self.cfg(data_dir=rgb_store, elevation=True))
        with self.assertRaisesRegex(ValueError, r"elevation 'ndsm' requested but the store "
                                                r"holds \['dsm'\]"):
            pipeline.train_dataset(self.cfg(elevation="ndsm"))
        for kwargs in [dict(sampling="sliding"), dict(patch_size=0), dict(scale=0.0),
                       dict(batch_size=0), dict(stride=0)]:
            with self.assertRaisesRegex(ValueError, "PipelineConfig"):
                self.cfg(**kwargs)


class BitDepthTest(tf.test.TestCase, parameterized.TestCase):
    """uint16 / int16 / float32 optical bands: float32 batches holding the
    stored values, augmentation relative to each band's train max."""

    def store(self, dtype, kinds=(), **kwargs):
        root = os.path.join(self.get_temp_dir(), f"store_{np.dtype(dtype).name}_{len(kinds)}")
        tiles = random_tiles(SIZES, val=("tile3", "tile4"), dtype=dtype, kinds=kinds, seed=2,
                             **kwargs)
        if np.dtype(dtype) == np.int16:   # negative values too
            for t in tiles.values():
                t["image"] = (t["image"].astype(np.int32) - 20000).astype(np.int16)
        write_store(root, tiles, bands=BANDS)
        return root, tiles

    def cfg(self, data_dir, **kwargs):
        return PipelineConfig(**{**dict(data_dir=data_dir, patch_size=P, batch_size=4,
                                        augment=None, shuffle_buffer=8, deterministic=True,
                                        seed=3), **kwargs})

    @parameterized.parameters(np.uint16, np.int16, np.float32)
    def test_batches_hold_the_stored_values_as_float32(self, dtype):
        root, tiles = self.store(dtype, kinds=("ndsm",))
        want = {}
        for split in ("train", "val"):
            for name, t in tiles.items():
                if t["split"] != split:
                    continue
                full = np.concatenate([t["image"].astype(np.float32), t["ndsm"][..., None]], -1)
                full = padded(full, 0)
                for y, x in grid_windows(*t["label"].shape, P):
                    want[full[y:y + P, x:x + P].tobytes()] = split
        for ds, split in ((pipeline.train_dataset(self.cfg(root)), "train"),
                          (pipeline.eval_dataset(self.cfg(root), "val"), "val")):
            self.assertEqual(ds.element_spec["image"].dtype, tf.float32)
            self.assertEqual(ds.element_spec["image"].shape[-1], 5)
            for batch in ds.take(3):
                for image in batch["image"].numpy():
                    self.assertEqual(want.get(image.tobytes()), split)
        # Optical only, a band subset: float32 too, values exact; a memory
        # cache (tiles kept in the source dtype) gives the same stream.
        cfg = self.cfg(root, bands="IRB", elevation="none", sampling="random",
                       patches_per_epoch=8)
        ds = pipeline.train_dataset(cfg)
        self.assertEqual(ds.element_spec["image"], tf.TensorSpec([4, P, P, 2], tf.float32))
        plain = [b["image"].numpy() for b in ds.take(3)]
        cached = [b["image"].numpy() for b in pipeline.train_dataset(
            dataclasses.replace(cfg, cache="memory")).take(3)]
        self.assertAllEqual(np.stack(cached), np.stack(plain))
        windows = set()
        for t in tiles.values():
            image = padded(t["image"][..., [3, 2]].astype(np.float32), 0)
            h, w = image.shape[:2]
            windows |= {image[y:y + P, x:x + P].tobytes()
                        for y in range(h - P + 1) for x in range(w - P + 1)}
        for patch in np.concatenate(plain):
            self.assertIn(patch.tobytes(), windows)

    def test_scaled_uint16_tiles_are_area_averages_not_truncated(self):
        root, tiles = self.store(np.uint16)
        half = next(iter(pipeline.eval_dataset(self.cfg(root, scale=0.5, batch_size=1,
                                                        elevation="none"), "val")))
        t = tiles["tile3"]["image"]   # 20x33 -> 10x16 (rounded), first window
        want = tf.image.resize(t.astype(np.float32), (10, 16), method="area").numpy()
        self.assertAllClose(half["image"][0, :10, :16], want, rtol=1e-6)
        self.assertTrue((half["image"].numpy() % 1 != 0).any())

    def test_uint16_brightness_is_a_fraction_of_the_band_max(self):
        # A 12-bit band in uint16: train max 4095; every pixel 2000 but one.
        image = np.full((32, 32, 4), 2000, np.uint16)
        image[0, 0] = 4095
        tiles = {"t0": {"image": image, "label": np.zeros((32, 32), np.uint8), "split": "train"},
                 "t1": {"image": image, "label": np.zeros((32, 32), np.uint8), "split": "val"}}
        root = os.path.join(self.get_temp_dir(), "twelve_bit")
        write_store(root, tiles, bands=BANDS)
        aug = AugmentConfig(flips=False, rot90=False, brightness=0.1, xla=False)
        deltas = []
        for batch in pipeline.train_dataset(self.cfg(root, augment=aug)).take(4):
            self.assertEqual(batch["image"].dtype, tf.float32)
            for patch in batch["image"].numpy():
                d = np.median(patch.reshape(-1, 4), axis=0) - 2000
                self.assertAllClose(d, np.full(4, d[0]), atol=1e-2)   # all optical bands
                # One offset for the whole patch (but the 4095 pixel, clipped).
                self.assertLessEqual(np.sum(np.abs(patch - (2000 + d[0])) > 1e-2), 4)
                deltas.append(d[0])
        deltas = np.abs(deltas)
        self.assertLessEqual(deltas.max(), 0.1 * 4095 + 1e-2)
        self.assertGreater(deltas.max(), 0.05 * 4095)   # 255-based deltas stay below 25.5


if __name__ == "__main__":
    tf.test.main()
