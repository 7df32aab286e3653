"""Tests for core.data.prepare on demo archives and hand-made folders."""
import hashlib
import json
import os
import shutil

import numpy as np
import tensorflow as tf
import tifffile

from core.data import synthetic
from core.data.labels import POTSDAM
from core.data.prepare import prepare
from core.data.tiles import TileError


def decode_reference(rgb, palette):
    """Palette decode written plainly: one comparison per class."""
    ids = np.full(rgb.shape[:2], 255, np.uint8)
    for k, colour in enumerate(palette):
        ids[(rgb == np.array(colour, np.uint8)).all(-1)] = k
    return ids


def make_folder_dataset(root, sizes, *, seed=0, elevation=True, bands=4):
    """images/<stem>_RGBIR.tif, masks/<stem>_label.tif (Potsdam colours),
    elevation/<stem>.tif. Returns {stem: (image, ids, elevation)}."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "elevation"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    out = {}
    palette = np.array(POTSDAM.palette, np.uint8)
    for i, (h, w) in enumerate(sizes):
        stem = f"tile{i}"
        image = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        ids = rng.integers(0, 6, (h, w)).astype(np.uint8)
        elev = rng.normal(5.0, 2.0, (h, w)).astype(np.float32)
        tifffile.imwrite(os.path.join(root, "images", f"{stem}_RGBIR.tif"), image)
        tifffile.imwrite(os.path.join(root, "masks", f"{stem}_label.tif"), palette[ids])
        if elevation:
            tifffile.imwrite(os.path.join(root, "elevation", f"{stem}.tif"), elev)
        out[stem] = (image, ids, elev)
    return out


def tree_state(root):
    """{relative path: (mtime_ns, sha1)} of every file under root."""
    state = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            state[os.path.relpath(p, root)] = (os.stat(p).st_mtime_ns,
                                               hashlib.sha1(open(p, "rb").read()).hexdigest())
    return state


class PotsdamInriaTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "prep_demo")
        shutil.rmtree(cls.root, ignore_errors=True)
        cls.potsdam = os.path.join(cls.root, "potsdam_src")
        cls.inria = os.path.join(cls.root, "inria_src")
        synthetic.make_demo_dataset(cls.potsdam, "potsdam", tiles=4, size=256, log=None)
        synthetic.make_demo_dataset(cls.inria, "inria", tiles=4, size=256, log=None)

    def test_potsdam_store_matches_sources(self):
        dst = os.path.join(self.root, "potsdam_store")
        info = prepare("potsdam", self.potsdam, dst, bands="IRRGB", elevation="ndsm",
                       eroded="val")
        self.assertEqual(info["splits"], {
            "train": ["top_potsdam_2_10", "top_potsdam_2_11", "top_potsdam_2_12"],
            "val": ["top_potsdam_2_13"]})
        self.assertEqual(info["bands"], ["IR", "R", "G", "B", "nDSM"])
        self.assertEqual(info["in_channels"], 5)
        self.assertEqual(info["class_names"], list(POTSDAM.class_names))
        self.assertEqual(info["palette"], [list(c) for c in POTSDAM.palette])
        self.assertEqual(json.load(open(os.path.join(dst, "info.json"))), info)
        pixels = []
        for name, tile in info["tiles"].items():
            a, b = name.split("_")[-2:]
            src = tifffile.imread(f"{self.potsdam}/4_Ortho_RGBIR/{name}_RGBIR.tif")
            ndsm = tifffile.imread(f"{self.potsdam}/1_DSM_normalisation/"
                                   f"dsm_potsdam_{int(a):02d}_{int(b):02d}_normalized_lastools.tif")
            folder, suffix = (("5_Labels_all_noBoundary", "_label_noBoundary")
                              if tile["split"] == "val" else ("5_Labels_all", "_label"))
            ids = decode_reference(tifffile.imread(f"{self.potsdam}/{folder}/{name}{suffix}.tif"),
                                   POTSDAM.palette)
            image = np.load(os.path.join(dst, tile["files"]["image"]))
            self.assertAllEqual(image, src[..., [3, 0, 1, 2]])
            self.assertAllEqual(np.load(os.path.join(dst, tile["files"]["elevation"])), ndsm)
            self.assertAllEqual(np.load(os.path.join(dst, tile["files"]["label"])), ids)
            if tile["split"] == "val":
                self.assertGreater((ids == 255).sum(), 0)   # eroded boundaries
            else:
                self.assertEqual((ids == 255).sum(), 0)
                pixels.append(np.concatenate([image, ndsm[..., None]], -1).reshape(-1, 5))
        pixels = np.concatenate(pixels).astype(np.float64)
        self.assertAllClose(info["mean"], pixels.mean(0), rtol=1e-10)
        self.assertAllClose(info["std"], pixels.std(0), rtol=1e-8)

    def test_hold_out_and_unknown_tile(self):
        dst = os.path.join(self.root, "potsdam_holdout")
        info = prepare("potsdam", self.potsdam, dst, val_tiles=["2_10"])
        self.assertEqual(info["splits"]["val"], ["top_potsdam_2_10", "top_potsdam_2_13"])
        self.assertEqual(info["bands"], ["R", "G", "B", "IR"])
        with self.assertRaisesRegex(ValueError, "val_tiles: no tile '9_9'"):
            prepare("potsdam", self.potsdam, dst, val_tiles=["9_9"])
        with self.assertRaisesRegex(TileError, r"No dsm for .*top_potsdam_2_10_RGBIR.tif: "
                                    r"expected dsm_potsdam_02_10.tif"):
            _raise_missing_dsm(self.potsdam, self.root)

    def test_idempotent_rerun(self):
        dst = os.path.join(self.root, "potsdam_rerun")
        src_before = tree_state(self.potsdam)
        first = prepare("potsdam", self.potsdam, dst, elevation="ndsm")
        with open(os.path.join(dst, "NOTES.txt"), "w") as f:
            f.write("mine")
        state = tree_state(dst)
        second = prepare("potsdam", self.potsdam, dst, elevation="ndsm")
        self.assertEqual(first, second)
        self.assertEqual(tree_state(dst), state)          # nothing rewritten
        self.assertEqual(tree_state(self.potsdam), src_before)
        # An interrupted run (record missing) redoes that tile only.
        os.remove(os.path.join(dst, "tiles", "top_potsdam_2_11.json"))
        prepare("potsdam", self.potsdam, dst, elevation="ndsm")
        after = tree_state(dst)
        changed = {k for k in state if after.get(k, (None,))[0] != state[k][0]}
        self.assertTrue(all("2_11" in k for k in changed - {"info.json"}), changed)
        self.assertIn("tiles/top_potsdam_2_11.image.npy", changed)
        # A truncated output file is detected and rewritten.
        npy = os.path.join(dst, "tiles", "top_potsdam_2_12.label.npy")
        data = open(npy, "rb").read()
        open(npy, "wb").write(data[:100])
        prepare("potsdam", self.potsdam, dst, elevation="ndsm")
        self.assertEqual(open(npy, "rb").read(), data)
        # Other options: tiles are rebuilt; the user's file stays.
        third = prepare("potsdam", self.potsdam, dst, bands="RGB")
        self.assertEqual(third["bands"], ["R", "G", "B"])
        self.assertEqual(np.load(os.path.join(dst, "tiles/top_potsdam_2_10.image.npy")).shape[-1], 3)
        self.assertEqual(open(os.path.join(dst, "NOTES.txt")).read(), "mine")
        self.assertEqual(tree_state(self.potsdam), src_before)

    def test_inria_split_and_labels(self):
        dst = os.path.join(self.root, "inria_store")
        info = prepare("inria", self.inria, dst)
        self.assertEqual(info["splits"], {"train": ["austin6", "chicago6", "kitsap6"],
                                          "val": ["austin1"]})
        self.assertEqual(info["class_names"], ["background", "building"])
        self.assertEqual(info["bands"], ["R", "G", "B"])
        gt = tifffile.imread(f"{self.inria}/AerialImageDataset/train/gt/austin1.tif")
        self.assertAllEqual(np.load(os.path.join(dst, "tiles/austin1.label.npy")),
                            (gt // 255).astype(np.uint8))
        with self.assertRaisesRegex(ValueError, "INRIA has no elevation"):
            prepare("inria", self.inria, dst, elevation="dsm")


def _raise_missing_dsm(potsdam, root):
    """Potsdam archive without 1_DSM: asking for dsm names the expected file."""
    src = os.path.join(root, "no_dsm")
    shutil.copytree(potsdam, src, ignore=shutil.ignore_patterns("1_DSM"), dirs_exist_ok=True)
    prepare("potsdam", src, os.path.join(root, "no_dsm_store"), elevation="dsm")


class FolderTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.get_temp_dir(), "src")
        self.dst = os.path.join(self.get_temp_dir(), "dst")
        shutil.rmtree(self.src, ignore_errors=True)
        shutil.rmtree(self.dst, ignore_errors=True)
        self.arrays = make_folder_dataset(self.src, [(30, 40), (25, 20), (32, 32)])

    def test_nodata_and_unknown_colours_become_ignore(self):
        elev = self.arrays["tile0"][2].copy()
        elev[0:3, 0:4] = np.nan
        tifffile.imwrite(os.path.join(self.src, "elevation", "tile0.tif"), elev)
        ids = self.arrays["tile1"][1]
        rgb = np.array(POTSDAM.palette, np.uint8)[ids]
        rgb[5, 5:8] = (12, 34, 56)
        tifffile.imwrite(os.path.join(self.src, "masks", "tile1_label.tif"), rgb)
        with self.assertLogs("core.data.prepare", "WARNING") as logs:
            info = prepare("folder", self.src, self.dst, elevation="dsm", val_tiles=["tile2"])
        self.assertEqual(info["tiles"]["tile0"]["nodata_pixels"], 12)
        self.assertEqual(info["tiles"]["tile1"]["unknown_label_pixels"], 3)
        self.assertEqual(info["bands"], ["R", "G", "B", "IR", "DSM"])
        label0 = np.load(os.path.join(self.dst, "tiles/tile0.label.npy"))
        self.assertTrue((label0[0:3, 0:4] == 255).all())
        self.assertAllEqual(label0[3:], self.arrays["tile0"][1][3:])
        label1 = np.load(os.path.join(self.dst, "tiles/tile1.label.npy"))
        self.assertAllEqual(label1[5, 5:8], [255] * 3)
        self.assertEqual((label1 == 255).sum(), 3)
        self.assertLen(logs.output, 2)
        self.assertTrue(any("tile1_label.tif: 3 label pixels" in m for m in logs.output))
        # Elevation mean/std use the valid heights only.
        valid = np.concatenate([elev[np.isfinite(elev)],
                                self.arrays["tile1"][2].ravel()]).astype(np.float64)
        self.assertAllClose(info["mean"][-1], valid.mean(), rtol=1e-10)
        self.assertAllClose(info["std"][-1], valid.std(), rtol=1e-8)

    def test_val_fraction_is_seeded(self):
        a = prepare("folder", self.src, self.dst, val_fraction=0.34, seed=3)
        self.assertLen(a["splits"]["val"], 1)
        b = prepare("folder", self.src, self.dst + "2", val_fraction=0.34, seed=3)
        self.assertEqual(a["splits"], b["splits"])

    def test_errors_name_the_problem(self):
        mask = os.path.join(self.src, "masks", "tile1_label.tif")
        tifffile.imwrite(mask, np.zeros((25, 21, 3), np.uint8))
        with self.assertRaisesRegex(TileError, r"tile1_RGBIR.tif is 25x20 but .*tile1_label.tif is 25x21"):
            prepare("folder", self.src, self.dst)
        os.remove(mask)
        with self.assertRaisesRegex(TileError, r"No mask for image\(s\) .*tile1_RGBIR.tif"):
            prepare("folder", self.src, self.dst)
        make_folder_dataset(self.src, [(30, 40), (25, 20), (32, 32)])
        with self.assertRaisesRegex(TileError, r"tile0_RGBIR.tif: expected 3 bands \(RGB\)"):
            prepare("folder", self.src, self.dst, src_bands="RGB")
        with self.assertRaisesRegex(TileError, r"\['IR'\].*not in the source bands RGB"):
            prepare("folder", self.src, self.dst, src_bands="RGB", bands="IRRG")
        image = os.path.join(self.src, "images", "tile2_RGBIR.tif")
        data = open(image, "rb").read()
        open(image, "wb").write(data[:len(data) // 3])
        with self.assertRaisesRegex(TileError, "tile2_RGBIR.tif: unreadable or truncated"):
            prepare("folder", self.src, self.dst)
        with self.assertRaisesRegex(ValueError, "every tile is in the val split"):
            prepare("folder", self.src, self.dst, val_tiles=["tile0", "tile1", "tile2"])
        with self.assertRaisesRegex(ValueError, "dataset must be potsdam, inria or folder"):
            prepare("isprs", self.src, self.dst)
        empty = os.path.join(self.get_temp_dir(), "empty")
        os.makedirs(os.path.join(empty, "images"), exist_ok=True)
        os.makedirs(os.path.join(empty, "masks"), exist_ok=True)
        with self.assertRaisesRegex(TileError, "images: empty folder"):
            prepare("folder", empty, self.dst)
        with self.assertRaisesRegex(TileError, "no Potsdam image"):
            prepare("potsdam", self.src, self.dst)


if __name__ == "__main__":
    tf.test.main()
