"""Tests for core.data.prepare on demo archives and hand-made folders."""
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tifffile

from core.data import geotiff, synthetic
from core.data.datasets import ISPRS_CLASSES as POTSDAM
from core.data.prepare import prepare
from core.data.tiles import TileError
from tests.helpers import make_folder_dataset, tree_state


def as_written_before(path):
    """A tile record or info.json as releases before NaN/inf pixel values were
    stored as 0 wrote it: without its "finite" mark."""
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    del record["finite"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f)


def decode_reference(rgb, palette):
    """Palette decode written plainly: one comparison per class."""
    ids = np.full(rgb.shape[:2], 255, np.uint8)
    for k, colour in enumerate(palette):
        ids[(rgb == np.array(colour, np.uint8)).all(-1)] = k
    return ids


class PotsdamInriaTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="prep_demo_")
        cls.potsdam = os.path.join(cls.root, "potsdam_src")
        cls.inria = os.path.join(cls.root, "inria_src")
        synthetic.make_demo_dataset(cls.potsdam, "potsdam", tiles=4, size=256, log=None)
        synthetic.make_demo_dataset(cls.inria, "inria", tiles=4, size=256, log=None)

    def test_potsdam_store_keeps_every_band_and_elevation(self):
        dst = os.path.join(self.root, "potsdam_store")
        info = prepare("potsdam", self.potsdam, dst, bands="IRRGB", elevation="ndsm",
                       eroded="val")
        self.assertEqual(info["splits"], {
            "train": ["top_potsdam_2_10", "top_potsdam_2_11", "top_potsdam_2_12"],
            "val": ["top_potsdam_2_13"]})
        self.assertEqual(info["format"], "ortholoop-tiles-npy-v2")
        self.assertEqual(info["bands"], ["R", "G", "B", "IR"])   # all, source order
        self.assertEqual(info["dtype"], "uint8")
        self.assertEqual(info["elevations"], ["dsm", "ndsm"])
        self.assertEqual(info["class_names"], list(POTSDAM.class_names))
        self.assertEqual(info["palette"], [list(c) for c in POTSDAM.palette])
        self.assertEqual(info["excluded_from_mean"], ["clutter"])
        self.assertEqual(json.load(open(os.path.join(dst, "info.json"))), info)
        pixels = []
        for name, tile in info["tiles"].items():
            a, b = (int(v) for v in name.split("_")[-2:])
            src = tifffile.imread(f"{self.potsdam}/4_Ortho_RGBIR/{name}_RGBIR.tif")
            dsm = tifffile.imread(f"{self.potsdam}/1_DSM/dsm_potsdam_{a:02d}_{b:02d}.tif")
            ndsm = tifffile.imread(f"{self.potsdam}/1_DSM_normalisation/"
                                   f"dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.tif")
            folder, suffix = (("5_Labels_all_noBoundary", "_label_noBoundary")
                              if tile["split"] == "val" else ("5_Labels_all", "_label"))
            ids = decode_reference(tifffile.imread(f"{self.potsdam}/{folder}/{name}{suffix}.tif"),
                                   POTSDAM.palette)
            image = np.load(os.path.join(dst, tile["files"]["image"]))
            self.assertAllEqual(image, src)
            self.assertAllEqual(np.load(os.path.join(dst, tile["files"]["dsm"])), dsm)
            self.assertAllEqual(np.load(os.path.join(dst, tile["files"]["ndsm"])), ndsm)
            self.assertAllEqual(np.load(os.path.join(dst, tile["files"]["label"])), ids)
            self.assertEqual(tile["class_pixels"], np.bincount(ids.ravel(), minlength=256)[:6].tolist())
            if tile["split"] == "val":
                self.assertGreater((ids == 255).sum(), 0)   # eroded boundaries
                self.assertEqual(tile["ignore_pixels"], (ids == 255).sum())
                self.assertEqual(tile["unknown_label_pixels"], 0)
            else:
                self.assertEqual((ids == 255).sum(), 0)
                pixels.append(np.concatenate([image, dsm[..., None], ndsm[..., None]],
                                             -1).reshape(-1, 6))
        pixels = np.concatenate(pixels).astype(np.float64)
        stats = [info["band_stats"][b] for b in ("R", "G", "B", "IR", "DSM", "nDSM")]
        self.assertAllClose([s["mean"] for s in stats], pixels.mean(0), rtol=1e-10)
        self.assertAllClose([s["std"] for s in stats], pixels.std(0), rtol=1e-8)
        self.assertAllEqual([s["min"] for s in stats], pixels.min(0))
        self.assertAllEqual([s["max"] for s in stats], pixels.max(0))

    def test_hold_out_and_unknown_tile(self):
        dst = os.path.join(self.root, "potsdam_holdout")
        info = prepare("potsdam", self.potsdam, dst, val_tiles=["2_10"])
        self.assertEqual(info["splits"]["val"], ["top_potsdam_2_10", "top_potsdam_2_13"])
        with self.assertRaisesRegex(ValueError, "val_tiles: no tile '9_9'"):
            prepare("potsdam", self.potsdam, dst, val_tiles=["9_9"])
        with self.assertRaisesRegex(TileError, r"No dsm for .*top_potsdam_2_1\d_RGBIR.tif: "
                                    r"--elevation=dsm needs one for every tile"):
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
        self.assertNotIn("finite", first)  # a uint8 store's info.json is as before
        # A uint8 tile recorded before NaN/inf were stored as 0 is left as is.
        as_written_before(os.path.join(dst, "tiles", "top_potsdam_2_10.json"))
        state = tree_state(dst)
        prepare("potsdam", self.potsdam, dst, elevation="ndsm")
        self.assertEqual(tree_state(dst), state)
        # Another run's band and elevation choice uses the same store as is.
        third = prepare("potsdam", self.potsdam, dst, bands="RGB", elevation="none")
        self.assertEqual(third, first)
        self.assertEqual(tree_state(dst), state)
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
        self.assertEqual(open(os.path.join(dst, "NOTES.txt")).read(), "mine")
        self.assertEqual(tree_state(self.potsdam), src_before)

    def test_inria_split_and_labels(self):
        dst = os.path.join(self.root, "inria_store")
        info = prepare("inria", self.inria, dst)
        self.assertEqual(info["splits"], {"train": ["austin6", "chicago6", "kitsap6"],
                                          "val": ["austin1"]})
        self.assertEqual(info["class_names"], ["background", "building"])
        self.assertEqual(info["bands"], ["R", "G", "B"])
        self.assertEqual(info["elevations"], [])
        gt = tifffile.imread(f"{self.inria}/AerialImageDataset/train/gt/austin1.tif")
        self.assertAllEqual(np.load(os.path.join(dst, "tiles/austin1.label.npy")),
                            (gt // 255).astype(np.uint8))
        with self.assertRaisesRegex(TileError, "No dsm for .*austin"):
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
        self.assertEqual(info["bands"], ["R", "G", "B", "IR"])
        self.assertEqual(info["elevations"], ["dsm"])
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
        self.assertAllClose(info["band_stats"]["DSM"]["mean"], valid.mean(), rtol=1e-10)
        self.assertAllClose(info["band_stats"]["DSM"]["std"], valid.std(), rtol=1e-8)

    def test_uint16_and_float32_bands_keep_their_dtype(self):
        rng = np.random.default_rng(5)
        for dtype, top in (("uint16", 4095), ("float32", 1.0)):
            dst = os.path.join(self.get_temp_dir(), f"store_{dtype}")
            images = {}
            for stem in ("tile0", "tile1", "tile2"):
                h, w = self.arrays[stem][1].shape
                images[stem] = (rng.random((h, w, 4)) * top).astype(dtype)
                geotiff.write_geotiff(os.path.join(self.src, "images", f"{stem}_RGBIR.tif"),
                                      images[stem], None)
            info = prepare("folder", self.src, dst, val_tiles=["tile2"])
            self.assertEqual(info["dtype"], dtype)
            for stem, image in images.items():
                stored = np.load(os.path.join(dst, "tiles", f"{stem}.image.npy"))
                self.assertEqual(stored.dtype, np.dtype(dtype))
                self.assertAllEqual(stored, image)
            train = np.concatenate([images[s].reshape(-1, 4) for s in ("tile0", "tile1")])
            self.assertAllClose(info["band_stats"]["IR"]["mean"],
                                train[:, 3].astype(np.float64).mean(), rtol=1e-9)
            self.assertEqual(info["band_stats"]["R"]["max"], float(train[:, 0].max()))

    def test_mixed_dtypes_constant_band_and_no_labels_are_refused(self):
        image = os.path.join(self.src, "images", "tile1_RGBIR.tif")
        geotiff.write_geotiff(image, self.arrays["tile1"][0].astype(np.uint16), None)
        with self.assertRaisesRegex(TileError, r"tile1_RGBIR.tif: 4 bands of uint16, but "
                                    r".*tile0_RGBIR.tif has 4 of uint8"):
            prepare("folder", self.src, self.dst)
        for stem in ("tile0", "tile1", "tile2"):
            constant = self.arrays[stem][0].copy()
            constant[..., 3] = 7
            geotiff.write_geotiff(os.path.join(self.src, "images", f"{stem}_RGBIR.tif"),
                                  constant, None)
        with self.assertRaisesRegex(ValueError, r"band IR is constant \(7\) over the train split"):
            prepare("folder", self.src, self.dst + "_c", val_tiles=["tile2"])
        for stem in ("tile0", "tile1"):
            h, w = self.arrays[stem][1].shape
            tifffile.imwrite(os.path.join(self.src, "masks", f"{stem}_label.tif"),
                             np.zeros((h, w, 3), np.uint8))   # all black: ignore colour
        with self.assertRaisesRegex(ValueError, r"the train split \(2 tiles\) has no labelled pixel"):
            prepare("folder", self.src, self.dst + "_l", val_tiles=["tile2"])

    def test_alpha_and_gdal_nodata_become_ignore(self):
        import rasterio  # pylint: disable=import-outside-toplevel
        image, ids, _ = self.arrays["tile0"]
        h, w = ids.shape
        alpha = np.full((h, w), 255, np.uint8)
        alpha[:4, :5] = 0
        rgba = np.concatenate([image[..., :3], alpha[..., None]], -1)
        for stem in ("tile0", "tile1", "tile2"):
            os.remove(os.path.join(self.src, "images", f"{stem}_RGBIR.tif"))
        import imageio.v3 as iio  # pylint: disable=import-outside-toplevel
        iio.imwrite(os.path.join(self.src, "images", "tile0.png"), rgba)
        for stem in ("tile1", "tile2"):
            data = self.arrays[stem][0][..., :3].copy()
            data[-2:, -3:] = 0
            with rasterio.open(os.path.join(self.src, "images", f"{stem}.tif"), "w",
                               driver="GTiff", width=data.shape[1], height=data.shape[0],
                               count=3, dtype="uint8", nodata=0, compress="lzw") as dst:
                dst.write(np.moveaxis(data, -1, 0))
        info = prepare("folder", self.src, self.dst, val_tiles=["tile2"])
        self.assertEqual(info["bands"], ["R", "G", "B"])     # alpha is not a band
        label0 = np.load(os.path.join(self.dst, "tiles/tile0.label.npy"))
        self.assertAllEqual(label0 == 255, alpha == 0)
        self.assertEqual(info["tiles"]["tile0"]["nodata_pixels"], 20)
        label1 = np.load(os.path.join(self.dst, "tiles/tile1.label.npy"))
        self.assertTrue((label1[-2:, -3:] == 255).all())
        self.assertEqual(info["tiles"]["tile1"]["nodata_pixels"], 6)
        # Statistics leave the no-data pixels out.
        r = np.concatenate([image[..., 0][alpha > 0], self.arrays["tile1"][0][..., 0][label1 != 255]])
        self.assertAllClose(info["band_stats"]["R"]["mean"], r.astype(np.float64).mean(),
                            rtol=1e-10)

    def test_nan_and_inf_pixels_are_ignore_and_stored_finite(self):
        # Float imagery written by GDAL with NaN holes and no nodata tag.
        import rasterio  # pylint: disable=import-outside-toplevel
        holes = {}
        for stem, (image, _, _) in self.arrays.items():
            os.remove(os.path.join(self.src, "images", f"{stem}_RGBIR.tif"))
            data = image[..., :3].astype(np.float32) / 255
            data[1:3, 2:5, 0] = np.nan
            data[6, 7, 2] = np.inf
            holes[stem] = data
            with rasterio.open(os.path.join(self.src, "images", f"{stem}.tif"), "w",
                               driver="GTiff", width=data.shape[1], height=data.shape[0],
                               count=3, dtype="float32", compress="deflate") as dst:
                dst.write(np.moveaxis(data, -1, 0))
        info = prepare("folder", self.src, self.dst, val_tiles=["tile2"])
        bad = ~np.isfinite(holes["tile0"]).all(-1)
        self.assertEqual(info["tiles"]["tile0"]["nodata_pixels"], 7)
        label = np.load(os.path.join(self.dst, "tiles/tile0.label.npy"))
        self.assertAllEqual(label[bad], np.full(7, 255))
        self.assertAllEqual(label[~bad], self.arrays["tile0"][1][~bad])
        stored = np.load(os.path.join(self.dst, "tiles/tile0.image.npy"))
        self.assertAllEqual(stored, np.where(np.isfinite(holes["tile0"]), holes["tile0"], 0))
        # Statistics: the valid pixels of the train split only.
        b = np.concatenate([holes[t][..., 2][~(~np.isfinite(holes[t])).any(-1)]
                            for t in ("tile0", "tile1")]).astype(np.float64)
        self.assertAllClose(info["band_stats"]["B"]["mean"], b.mean(), rtol=1e-10)
        self.assertAllClose(info["band_stats"]["B"]["max"], b.max(), rtol=1e-7)
        # A float tile of a store prepared before (NaN kept, no "finite" in its
        # record) is prepared again; the others are skipped.
        as_written_before(os.path.join(self.dst, "tiles/tile0.json"))
        np.save(os.path.join(self.dst, "tiles/tile0.image.npy"), holes["tile0"])
        kept = os.stat(os.path.join(self.dst, "tiles/tile1.image.npy")).st_mtime_ns
        prepare("folder", self.src, self.dst, val_tiles=["tile2"])
        self.assertAllEqual(np.load(os.path.join(self.dst, "tiles/tile0.image.npy")), stored)
        self.assertEqual(os.stat(os.path.join(self.dst, "tiles/tile1.image.npy")).st_mtime_ns,
                         kept)
        # A whole store of that kind: its readers warn, a flag file's first-run
        # prepare (tools.train --prepare_*) prepares it again.
        from types import SimpleNamespace  # pylint: disable=import-outside-toplevel
        from unittest import mock  # pylint: disable=import-outside-toplevel
        from core.data import store  # pylint: disable=import-outside-toplevel
        from tools import prepare_flags  # pylint: disable=import-outside-toplevel
        flag_values = SimpleNamespace(prepare_src=self.src, data_dir=self.dst)
        self.assertTrue(store.load_info(self.dst)["finite"])
        with mock.patch.object(prepare_flags, "prepare_from_flags") as again:
            prepare_flags.prepare_if_needed(flag_values)
        again.assert_not_called()
        as_written_before(os.path.join(self.dst, "info.json"))
        with self.assertLogs("core.data.store", "WARNING") as logs:
            store.load_info(self.dst)
        self.assertIn("kept NaN/inf pixel values", logs.output[0])
        with mock.patch.object(prepare_flags, "prepare_from_flags") as again:
            prepare_flags.prepare_if_needed(flag_values)
        again.assert_called_once_with(flag_values)

    def test_mask_on_another_grid_is_refused(self):
        # GeoTIFFs written by GDAL: the masks have the images' size, placed
        # where the images are, 10 pixels off, or in another CRS.
        import rasterio  # pylint: disable=import-outside-toplevel
        from rasterio.transform import from_origin  # pylint: disable=import-outside-toplevel

        def write(path, array, transform, crs="EPSG:25832"):
            with rasterio.open(path, "w", driver="GTiff", width=array.shape[1],
                               height=array.shape[0], count=array.shape[2], dtype="uint8",
                               crs=crs, transform=transform) as dst:
                dst.write(np.moveaxis(array, -1, 0))

        palette = np.array(POTSDAM.palette, np.uint8)
        grid = from_origin(366000.0, 5808000.0, 0.05, 0.05)
        for stem, (image, ids, _) in self.arrays.items():
            os.remove(os.path.join(self.src, "images", f"{stem}_RGBIR.tif"))
            write(os.path.join(self.src, "images", f"{stem}_RGB.tif"), image[..., :3], grid)
            write(os.path.join(self.src, "masks", f"{stem}_label.tif"), palette[ids], grid)
        shutil.rmtree(os.path.join(self.src, "elevation"))
        info = prepare("folder", self.src, self.dst, val_tiles=["tile2"])   # same grid
        self.assertEqual(info["tiles"]["tile1"]["nodata_pixels"], 0)
        image, ids, _ = self.arrays["tile1"]
        mask = os.path.join(self.src, "masks", "tile1_label.tif")
        for transform, crs, shown in (
                (from_origin(366000.5, 5808000.0, 0.05, 0.05), "EPSG:25832",
                 r"origin \(366000\.5, 5808000\), pixel 0\.05 x 0\.05, EPSG:25832 vs "
                 r"origin \(366000, 5808000\)"),
                (from_origin(366000.0, 5808000.0, 0.1, 0.1), "EPSG:25832", r".*pixel 0\.1 x 0\.1, EPSG:25832 vs "),
                (grid, "EPSG:25833", r".*EPSG:25833 vs .*EPSG:25832")):
            write(mask, palette[ids], transform, crs)
            with self.assertRaisesRegex(TileError, r"tile1_label\.tif is not on the grid of "
                                        r".*tile1_RGB\.tif: " + shown):
                prepare("folder", self.src, self.dst + "_shifted", val_tiles=["tile2"])

    def test_a_fourth_band_tagged_alpha_is_data_when_the_bands_count_it(self):
        # tifffile's (and GDAL's) default tags the 4th band of RGBIR as alpha.
        for stem, (image, _, _) in self.arrays.items():
            tifffile.imwrite(os.path.join(self.src, "images", f"{stem}_RGBIR.tif"), image)
        info = prepare("folder", self.src, self.dst, src_bands="RGBIR", val_tiles=["tile2"])
        self.assertEqual(info["bands"], ["R", "G", "B", "IR"])
        stored = np.load(os.path.join(self.dst, "tiles", "tile0.image.npy"))
        self.assertAllEqual(stored, self.arrays["tile0"][0])
        self.assertEqual(info["tiles"]["tile0"]["nodata_pixels"], 0)
        # Undeclared, it masks (IR == 0 -> no data) and a warning names the fix.
        with self.assertLogs("core.data.prepare", "WARNING") as logs:
            info = prepare("folder", self.src, self.dst + "_rgb", val_tiles=["tile2"])
        self.assertEqual(info["bands"], ["R", "G", "B"])
        self.assertTrue(any("--src_bands=RGBIR" in m for m in logs.output), logs.output)

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
        with self.assertRaisesRegex(TileError, "tile2_RGBIR.tif: truncated TIFF"):
            prepare("folder", self.src, self.dst)
        with self.assertRaisesRegex(ValueError, "every tile is in the val split"):
            prepare("folder", self.src, self.dst, val_tiles=["tile0", "tile1", "tile2"])
        with self.assertRaisesRegex(ValueError, "Unknown data set .isprs.; expected one of potsdam, vaihingen"):
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
