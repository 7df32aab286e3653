"""Tests for core/data/synthetic.py: the demo files read back from disk.

References: rasterio (GDAL) for georeferencing, scipy.ndimage min/max
filters for the eroded boundaries, the ISPRS palette written out here.
"""
import hashlib
import os
import shutil
import tempfile

import numpy as np
import rasterio
import scipy.ndimage
import tensorflow as tf
import tifffile
from absl.testing import parameterized

from core.data import synthetic

PALETTE = np.array([(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0),
                    (255, 255, 0), (255, 0, 0)], np.uint8)


def _decode(rgb):
    """Reference decoder: class id per pixel, -1 for black, -2 otherwise."""
    ids = np.full(rgb.shape[:2], -2, np.int32)
    ids[(rgb == 0).all(-1)] = -1
    for k, colour in enumerate(PALETTE):
        ids[(rgb == colour).all(-1)] = k
    return ids


def _digest(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


class PotsdamDemoTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.out = os.path.join(cls.tmp, "potsdam")
        cls.written = synthetic.make_demo_dataset(cls.out, "potsdam", tiles=2,
                                                  size=512, seed=0, log=None)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)
        super().tearDownClass()

    def read(self, rel):
        return tifffile.imread(os.path.join(self.out, rel))

    def test_archive_layout(self):
        expected = []
        for a, b in ((2, 10), (2, 13)):   # one train, one official test tile
            expected += [f"4_Ortho_RGBIR/top_potsdam_{a}_{b}_RGBIR.tif",
                         f"1_DSM_normalisation/dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.tif",
                         f"1_DSM/dsm_potsdam_{a:02d}_{b:02d}.tif",
                         f"5_Labels_all/top_potsdam_{a}_{b}_label.tif",
                         f"5_Labels_all_noBoundary/top_potsdam_{a}_{b}_label_noBoundary.tif"]
        self.assertCountEqual([os.path.relpath(p, self.out) for p in self.written],
                              expected)
        self.assertCountEqual(_digest(self.out), expected + [synthetic.MANIFEST])

    def test_bands_dtypes_and_georeferencing(self):
        origins = []
        for tile in ("2_10", "2_13"):
            a, b = tile.split("_")
            files = {"4_Ortho_RGBIR/top_potsdam_%s_RGBIR.tif" % tile: (4, "uint8"),
                     f"1_DSM_normalisation/dsm_potsdam_{int(a):02d}_{int(b):02d}"
                     "_normalized_lastools.tif": (1, "float32"),
                     f"1_DSM/dsm_potsdam_{int(a):02d}_{int(b):02d}.tif": (1, "float32"),
                     f"5_Labels_all/top_potsdam_{tile}_label.tif": (3, "uint8"),
                     f"5_Labels_all_noBoundary/top_potsdam_{tile}_label_noBoundary.tif":
                         (3, "uint8")}
            transforms = set()
            for rel, (count, dtype) in files.items():
                with rasterio.open(os.path.join(self.out, rel)) as src:
                    self.assertEqual((src.count, src.dtypes[0]), (count, dtype), rel)
                    self.assertEqual((src.width, src.height), (512, 512))
                    self.assertEqual(src.crs.to_epsg(), 25833)
                    self.assertAlmostEqual(src.transform.a, 0.05)
                    self.assertAlmostEqual(src.transform.e, -0.05)
                    transforms.add(tuple(src.transform))
            self.assertLen(transforms, 1)   # all files of a tile align
            t = transforms.pop()
            origins.append((t[2], t[5]))
            # Near Potsdam in ETRS89 / UTM 33N.
            self.assertBetween(t[2], 360000, 375000)
            self.assertBetween(t[5], 5800000, 5815000)
        self.assertNotEqual(origins[0], origins[1])

    def test_labels_use_palette_and_eroded_variant_only_blacks_boundaries(self):
        for tile in ("2_10", "2_13"):
            full = _decode(self.read(f"5_Labels_all/top_potsdam_{tile}_label.tif"))
            thin = _decode(self.read(
                f"5_Labels_all_noBoundary/top_potsdam_{tile}_label_noBoundary.tif"))
            self.assertGreaterEqual(full.min(), 0)          # palette colours only
            self.assertGreaterEqual(thin.min(), -1)         # palette or black
            disc = np.hypot(*np.mgrid[-3:4, -3:4]) <= 3
            boundary = (scipy.ndimage.maximum_filter(full, footprint=disc, mode="nearest") !=
                        scipy.ndimage.minimum_filter(full, footprint=disc, mode="nearest"))
            self.assertAllEqual(thin == -1, boundary)
            self.assertAllEqual(thin[~boundary], full[~boundary])
            self.assertBetween(boundary.mean(), 0.02, 0.4)

    def test_class_proportions_like_potsdam(self):
        ids = np.concatenate([_decode(self.read(f"5_Labels_all/top_potsdam_{t}_label.tif"))
                              for t in ("2_10", "2_13")])
        share = np.bincount(ids.ravel(), minlength=6) / ids.size
        ranges = [(0.18, 0.38), (0.15, 0.35), (0.15, 0.35), (0.09, 0.21),
                  (0.008, 0.025), (0.02, 0.07)]
        for k, (lo, hi) in enumerate(ranges):
            self.assertBetween(share[k], lo, hi, msg=f"class {k}: {share}")

    def test_heights_and_infrared_follow_the_classes(self):
        ids = _decode(self.read("5_Labels_all/top_potsdam_2_10_label.tif"))
        ndsm = self.read("1_DSM_normalisation/dsm_potsdam_02_10_normalized_lastools.tif")
        dsm = self.read("1_DSM/dsm_potsdam_02_10.tif")
        image = self.read("4_Ortho_RGBIR/top_potsdam_2_10_RGBIR.tif").astype(np.float64)
        self.assertGreaterEqual(ndsm.min(), 0.0)
        terrain = dsm - ndsm
        self.assertBetween(float(terrain.min()), 25.0, 45.0)
        self.assertBetween(float(terrain.max()), 25.0, 45.0)
        median = {k: float(np.median(ndsm[ids == k])) for k in range(6)}
        self.assertBetween(median[1], 5.0, 20.5)     # building
        self.assertBetween(median[3], 2.0, 15.0)     # tree
        self.assertLess(median[2], 0.6)              # low vegetation
        self.assertBetween(median[4], 1.2, 1.8)      # car
        self.assertLess(median[0], 0.2)              # impervious
        self.assertLessEqual(float(ndsm[ids == 1].max()), 21.6)
        ratio = {k: image[ids == k, 3].mean() / image[ids == k, 0].mean() for k in range(6)}
        self.assertGreater(ratio[2], 1.6)   # vegetation bright in IR
        self.assertGreater(ratio[3], 2.0)
        self.assertBetween(ratio[0], 0.7, 1.2)

    def test_rerun_skips_identical_and_refuses_different(self):
        out = os.path.join(self.tmp, "rerun")
        shutil.copytree(self.out, out)
        with open(os.path.join(out, "notes.txt"), "w") as f:
            f.write("mine")
        before = _digest(out)
        self.assertEqual(synthetic.make_demo_dataset(out, "potsdam", 2, 512, 0, log=None), [])
        with self.assertRaisesRegex(ValueError, r"differ from what .*seed=1.*nothing was "
                                                r"overwritten"):
            synthetic.make_demo_dataset(out, "potsdam", 2, 512, seed=1, log=None)
        # Without the manifest the files are compared byte for byte.
        os.remove(os.path.join(out, synthetic.MANIFEST))
        self.assertEqual(synthetic.make_demo_dataset(out, "potsdam", 2, 512, 0, log=None), [])
        os.remove(os.path.join(out, synthetic.MANIFEST))
        label = os.path.join(out, "5_Labels_all/top_potsdam_2_13_label.tif")
        with open(label, "ab") as f:
            f.write(b"edited")
        with self.assertRaisesRegex(ValueError, "top_potsdam_2_13_label.tif"):
            synthetic.make_demo_dataset(out, "potsdam", 2, 512, 0, log=None)
        after = _digest(out)
        rel = "5_Labels_all/top_potsdam_2_13_label.tif"
        self.assertNotEqual(after.pop(rel), before[rel])   # the user's edit stays
        for rel, digest in after.items():
            self.assertEqual(digest, before[rel], rel)   # nothing else touched


class DeterminismAndArgsTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def test_same_seed_same_bytes_other_seed_differs(self):
        a = os.path.join(self.dir, "a")
        b = os.path.join(self.dir, "b")
        c = os.path.join(self.dir, "c")
        synthetic.make_demo_dataset(a, "potsdam", 2, 256, seed=3, log=None)
        synthetic.make_demo_dataset(b, "potsdam", 2, 256, seed=3, log=None)
        synthetic.make_demo_dataset(c, "potsdam", 1, 256, seed=4, log=None)
        da, db, dc = _digest(a), _digest(b), _digest(c)
        self.assertEqual(da, db)
        rel = "4_Ortho_RGBIR/top_potsdam_2_10_RGBIR.tif"
        self.assertNotEqual(da[rel], dc[rel])
        # A tile does not depend on how many tiles were asked for.
        d = os.path.join(self.dir, "d")
        synthetic.make_demo_dataset(d, "potsdam", 1, 256, seed=3, log=None)
        self.assertEqual(_digest(d)[rel], da[rel])

    def test_inria_layout_masks_and_crs(self):
        out = os.path.join(self.dir, "inria")
        written = synthetic.make_demo_dataset(out, "inria", 2, 256, seed=0, log=None)
        self.assertCountEqual(
            [os.path.relpath(p, out) for p in written],
            ["AerialImageDataset/train/images/austin6.tif",
             "AerialImageDataset/train/gt/austin6.tif",
             "AerialImageDataset/train/images/austin1.tif",
             "AerialImageDataset/train/gt/austin1.tif"])
        with rasterio.open(os.path.join(out, "AerialImageDataset/train/images/austin1.tif")) as s:
            self.assertEqual((s.count, s.dtypes[0], s.crs.to_epsg()), (3, "uint8", 26914))
            self.assertAlmostEqual(s.transform.a, 0.3)
        gt = tifffile.imread(os.path.join(out, "AerialImageDataset/train/gt/austin6.tif"))
        self.assertEqual(gt.dtype, np.uint8)
        self.assertCountEqual(np.unique(gt), [0, 255])
        self.assertBetween((gt == 255).mean(), 0.08, 0.45)

    @parameterized.parameters(
        ("potsdam", 1, ["2_10"]),
        ("potsdam", 2, ["2_10", "2_13"]),
        ("potsdam", 3, ["2_10", "2_11", "2_13"]),
        ("potsdam", 8, ["2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "2_13", "2_14"]),
        ("inria", 2, ["austin6", "austin1"]),
        ("inria", 8, ["austin6", "chicago6", "kitsap6", "tyrol-w6", "vienna6",
                      "austin7", "austin1", "chicago1"]))
    def test_tile_names(self, dataset, tiles, expected):
        self.assertEqual(synthetic.demo_tiles(dataset, tiles), expected)

    def test_all_potsdam_tiles_and_too_many(self):
        names = synthetic.demo_tiles("potsdam", 38)
        self.assertCountEqual(names, synthetic.POTSDAM_TRAIN_TILES +
                              synthetic.POTSDAM_TEST_TILES)
        with self.assertRaisesRegex(ValueError, "tiles=39: at most 38"):
            synthetic.demo_tiles("potsdam", 39)
        names = synthetic.demo_tiles("inria", 180)   # 5 cities x 36 tiles
        self.assertLen(set(names), 180)
        self.assertEqual(sum(int(n.lstrip("abcdefghijklmnopqrstuvwxyz-")) <= 5
                             for n in names), 25)

    @parameterized.parameters(
        (dict(tiles=0), "tiles=0: expected an integer >= 1"),
        (dict(size=100), "size=100: expected an integer >= 256"),
        (dict(size=512.0), "size=512.0"),
        (dict(seed=-1), "seed=-1: expected an integer >= 0"),
        (dict(dataset="vaihingen"), "dataset='vaihingen'"))
    def test_bad_arguments(self, kwargs, message):
        args = dict(dataset="potsdam", tiles=1, size=256, seed=0, log=None)
        args.update(kwargs)
        with self.assertRaisesRegex(ValueError, message):
            synthetic.make_demo_dataset(os.path.join(self.dir, "x"), **args)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "x")))

    def test_out_dir_is_a_file(self):
        path = os.path.join(self.dir, "file")
        open(path, "w").close()
        with self.assertRaisesRegex(ValueError, "not a folder"):
            synthetic.make_demo_dataset(path, tiles=1, size=256, log=None)

    def test_boundary_mask_against_scipy(self):
        rng = np.random.default_rng(0)
        ids = rng.integers(0, 3, (9, 12)).repeat(4, 0).repeat(3, 1).astype(np.uint8)
        for radius in (1, 3):
            yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
            disc = yy ** 2 + xx ** 2 <= radius ** 2
            ref = (scipy.ndimage.maximum_filter(ids, footprint=disc, mode="nearest") !=
                   scipy.ndimage.minimum_filter(ids, footprint=disc, mode="nearest"))
            self.assertAllEqual(synthetic.boundary_mask(ids, radius), ref)


if __name__ == "__main__":
    tf.test.main()
