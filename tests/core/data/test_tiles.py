"""Tests for core.data.tiles: readers, band selection, pairing by stem."""
import dataclasses
import os
import random

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
import tifffile
from absl.testing import parameterized

from core.data import tiles
from core.data.tiles import TileError


class ReadImageTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        self.rgbir = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)

    def test_multiband_tiff_round_trip(self):
        path = os.path.join(self.dir, "a.tif")
        # ExtraSamples 0: the 4th band is data (IR); tifffile's default for
        # 4-band uint8 would tag it alpha.
        tifffile.imwrite(path, self.rgbir, photometric="rgb", extrasamples=[0])
        out = tiles.read_image(path)
        self.assertEqual(out.dtype, np.uint8)
        self.assertAllEqual(out, self.rgbir)

    def test_planar_tiff_comes_back_channels_last(self):
        path = os.path.join(self.dir, "planar.tif")
        tifffile.imwrite(path, np.moveaxis(self.rgbir, -1, 0), planarconfig="separate",
                         photometric="rgb", extrasamples=[0])
        self.assertAllEqual(tiles.read_image(path), self.rgbir)

    def test_png_and_gray(self):
        path = os.path.join(self.dir, "a.png")
        iio.imwrite(path, self.rgbir[..., :3])
        self.assertAllEqual(tiles.read_image(path), self.rgbir[..., :3])
        gray = os.path.join(self.dir, "g.png")
        iio.imwrite(gray, self.rgbir[..., 0])
        out = tiles.read_image(gray)
        self.assertEqual(out.shape, (20, 30, 1))
        self.assertAllEqual(out[..., 0], self.rgbir[..., 0])

    def test_jpeg_is_lossy_but_close(self):
        path = os.path.join(self.dir, "a.jpg")
        smooth = np.tile(np.linspace(0, 250, 30, dtype=np.uint8)[None, :, None], (20, 1, 3))
        iio.imwrite(path, smooth, quality=95)
        out = tiles.read_image(path)
        self.assertEqual(out.shape, (20, 30, 3))
        self.assertLess(np.abs(out.astype(int) - smooth).mean(), 3.0)

    def test_uint16_stays_uint16(self):
        path = os.path.join(self.dir, "u16.tif")
        data = (np.arange(600, dtype=np.uint16) * 100).reshape(20, 30)
        tifffile.imwrite(path, data)
        out = tiles.read_image(path)
        self.assertEqual(out.dtype, np.uint16)
        self.assertAllEqual(out[..., 0], data)

    def test_alpha_band_is_removed(self):
        path = os.path.join(self.dir, "rgba.tif")
        tifffile.imwrite(path, self.rgbir, photometric="rgb", extrasamples=[2])
        self.assertAllEqual(tiles.read_image(path), self.rgbir[..., :3])

    @parameterized.parameters(".tif", ".png", ".jpg")
    def test_truncated_file_error_names_it(self, ext):
        full = os.path.join(self.dir, "full" + ext)
        iio.imwrite(full, self.rgbir[..., :3]) if ext != ".tif" else tifffile.imwrite(full, self.rgbir)
        data = open(full, "rb").read()
        cut = os.path.join(self.dir, "cut" + ext)
        with open(cut, "wb") as f:
            f.write(data[:len(data) // 2])
        with self.assertRaisesRegex(TileError, "cut" + ext + ".*truncated"):
            tiles.read_image(cut)

    def test_missing_and_empty_files(self):
        with self.assertRaisesRegex(TileError, "nope.tif: file not found"):
            tiles.read_image(os.path.join(self.dir, "nope.tif"))
        empty = os.path.join(self.dir, "empty.tif")
        open(empty, "wb").close()
        with self.assertRaisesRegex(TileError, "empty.tif: empty file"):
            tiles.read_image(empty)

    def test_empty_folder(self):
        folder = os.path.join(self.dir, "nothing")
        os.makedirs(folder)
        open(os.path.join(folder, "readme.txt"), "w").close()
        with self.assertRaisesRegex(TileError, "nothing: empty folder"):
            tiles.list_images(folder)
        with self.assertRaisesRegex(TileError, "missing: folder not found"):
            tiles.list_images(os.path.join(self.dir, "missing"))


class ReadElevationTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        rng = np.random.default_rng(1)
        self.dsm = rng.normal(30.0, 5.0, (16, 12)).astype(np.float32)

    def _check(self, out, valid, expected_valid):
        self.assertEqual(out.dtype, np.float32)
        self.assertAllEqual(valid, expected_valid)
        fill = self.dsm[expected_valid].astype(np.float64).mean()
        self.assertAllClose(out[expected_valid], self.dsm[expected_valid])
        self.assertAllClose(out[~expected_valid], np.full((~expected_valid).sum(), fill))

    def test_nan_and_inf_are_holes(self):
        data = self.dsm.copy()
        holes = np.zeros(data.shape, bool)
        holes[2:4, 5:9] = True
        holes[10, 0] = True
        data[2:4, 5:9] = np.nan
        data[10, 0] = np.inf
        path = os.path.join(self.dir, "dsm.tif")
        tifffile.imwrite(path, data)
        self._check(*tiles.read_elevation(path), ~holes)

    def test_nodata_argument_and_gdal_tag(self):
        data = self.dsm.copy()
        holes = np.zeros(data.shape, bool)
        holes[0, :] = True
        data[holes] = -9999.0
        plain = os.path.join(self.dir, "plain.tif")
        tifffile.imwrite(plain, data)
        self._check(*tiles.read_elevation(plain, nodata=-9999.0), ~holes)
        tagged = os.path.join(self.dir, "tagged.tif")
        tifffile.imwrite(tagged, data, extratags=[(42113, "s", 0, "-9999", True)])
        self._check(*tiles.read_elevation(tagged), ~holes)
        # Without the tag or the argument, -9999 is a (weird) height.
        out, valid = tiles.read_elevation(plain)
        self.assertTrue(valid.all())
        self.assertAllEqual(out, data)

    def test_the_files_own_mask_and_nodata_are_holes(self):
        import rasterio  # pylint: disable=import-outside-toplevel
        data = self.dsm.copy()
        holes = np.zeros(data.shape, bool)
        holes[0, :] = True                  # GDAL_NODATA -9999
        holes[:, -2:] = True                # internal mask
        holes[7, 3] = True                  # the nodata argument
        data[0, :] = -9999.0
        data[7, 3] = -1.0
        path = os.path.join(self.dir, "masked.tif")
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
                path, "w", driver="GTiff", height=16, width=12, count=1, dtype="float32",
                nodata=-9999.0) as dst:
            dst.write(data[None])
            dst.write_mask(np.where(np.arange(12) >= 10, 0, 255).astype(np.uint8)[None].repeat(16, 0))
        self._check(*tiles.read_elevation(path, nodata=-1.0), ~holes)

    def test_multiband_elevation_is_an_error(self):
        path = os.path.join(self.dir, "rgb.tif")
        tifffile.imwrite(path, np.zeros((4, 4, 3), np.float32))
        with self.assertRaisesRegex(TileError, "rgb.tif: an elevation raster has 1 band"):
            tiles.read_elevation(path)


class BandsTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(("RGBIR", ("R", "G", "B", "IR")), ("IRRGB", ("IR", "R", "G", "B")),
                              ("irrg", ("IR", "R", "G")), ("RGB", ("R", "G", "B")))
    def test_parse(self, text, expected):
        self.assertEqual(tiles.parse_bands(text), expected)

    @parameterized.parameters("RGX", "", "RGBR", "IRRGBIR")
    def test_parse_errors(self, text):
        with self.assertRaises(TileError):
            tiles.parse_bands(text)

    def test_select_matches_numpy_indexing(self):
        image = np.random.default_rng(2).integers(0, 256, (5, 6, 4), dtype=np.uint8)
        self.assertAllEqual(tiles.select_bands(image, "RGBIR", "IRRG"), image[..., [3, 0, 1]])
        self.assertAllEqual(tiles.select_bands(image, "RGBIR", "IRRGB"), image[..., [3, 0, 1, 2]])
        self.assertAllEqual(tiles.select_bands(image, "RGBIR", "RGBIR"), image)

    def test_wrong_band_count_and_missing_band(self):
        image = np.zeros((5, 6, 3), np.uint8)
        with self.assertRaisesRegex(TileError, r"x.tif: expected 4 bands \(RGBIR\), got shape \(5, 6, 3\)"):
            tiles.select_bands(image, "RGBIR", "RGB", path="x.tif")
        with self.assertRaisesRegex(TileError, r"\['IR'\].*not in the source bands RGB"):
            tiles.select_bands(image, "RGB", "IRRG")


class PairByStemTest(tf.test.TestCase):

    def test_potsdam_names_pair_in_any_order(self):
        ids = ["2_10", "2_11", "3_10", "7_9", "6_15"]
        images = [f"/a/4_Ortho_RGBIR/top_potsdam_{i}_RGBIR.tif" for i in ids]
        masks = [f"/a/5_Labels_all/top_potsdam_{i}_label.tif" for i in ids]
        rng = random.Random(0)
        rng.shuffle(images)
        rng.shuffle(masks)
        pairs = tiles.pair_by_stem(images, masks)
        self.assertLen(pairs, 5)
        for stem, image, mask in pairs:
            self.assertEqual(image.name, stem + "_RGBIR.tif")
            self.assertEqual(mask.name, stem + "_label.tif")
        eroded = [m.replace("_label.tif", "_label_noBoundary.tif") for m in masks]
        for stem, image, mask in tiles.pair_by_stem(images, eroded):
            self.assertEqual(mask.name, stem + "_label_noBoundary.tif")

    def test_sorted_position_would_be_wrong(self):
        # Sorted, these lists are misaligned (b10 sorts before b2 only in one).
        images = ["img/b2.tif", "img/b10.tif", "img/a.tif"]
        masks = ["gt/a.png", "gt/b10.png", "gt/b2.png"]
        pairs = {s: (str(i), str(m)) for s, i, m in tiles.pair_by_stem(images, masks)}
        self.assertEqual(pairs["b2"], ("img/b2.tif", "gt/b2.png"))
        self.assertEqual(pairs["b10"], ("img/b10.tif", "gt/b10.png"))

    def test_errors_name_the_files(self):
        with self.assertRaisesRegex(TileError, r"No mask for image\(s\) img/c.tif"):
            tiles.pair_by_stem(["img/a.tif", "img/c.tif"], ["gt/a.tif"])
        with self.assertRaisesRegex(TileError, r"No image for mask\(s\) gt/z.tif"):
            tiles.pair_by_stem(["img/a.tif"], ["gt/a.tif", "gt/z.tif"])
        self.assertLen(tiles.pair_by_stem(["img/a.tif"], ["gt/a.tif", "gt/z.tif"],
                                          allow_unused_masks=True), 1)
        with self.assertRaisesRegex(TileError, "Two mask files for tile 'a': gt/a_label.tif and gt/a.tif"):
            tiles.pair_by_stem(["img/a.tif"], ["gt/a_label.tif", "gt/a.tif"])
        with self.assertRaisesRegex(TileError, "No image files"):
            tiles.pair_by_stem([], ["gt/a.tif"])

    def test_size_mismatch_names_both(self):
        with self.assertRaisesRegex(TileError, r"a.tif is 4x5 but b.tif is 4x6"):
            tiles.check_same_size([("a.tif", np.zeros((4, 5, 3))), ("b.tif", np.zeros((4, 6)))])
        tiles.check_same_size([("a.tif", np.zeros((4, 5, 3))), ("b.tif", np.zeros((4, 5)))])

    def test_grid_compares_only_placed_rasters(self):
        from core.data import geotiff  # pylint: disable=import-outside-toplevel
        root = self.get_temp_dir()
        array = np.zeros((8, 10), np.uint8)
        paths = {}
        for name, geo in (
                ("placed", geotiff.make_geoinfo(25832, (366000.0, 5808000.0), 0.05)),
                ("within_half_pixel", geotiff.make_geoinfo(25832, (366000.02, 5808000.0), 0.05)),
                # A PixelIsPoint file whose tiepoint is a corner: half a pixel.
                ("half_pixel", geotiff.make_geoinfo(25832, (366000.025, 5808000.025), 0.05)),
                # GDAL reads a negative ScaleY as north-up.
                ("negative_scale_y", dataclasses.replace(
                    geotiff.make_geoinfo(25832, (366000.0, 5808000.0), 0.05),
                    model_pixel_scale=(0.05, -0.05, 0.0))),
                # Only a geographic code (ETRS89): not compared with a projected one.
                ("geographic_code_only", dataclasses.replace(
                    geotiff.make_geoinfo(25832, (366000.0, 5808000.0), 0.05),
                    geo_key_directory=(1, 1, 0, 1, 2048, 0, 1, 4258))),
                ("two_pixels_off", geotiff.make_geoinfo(25832, (366000.1, 5808000.0), 0.05)),
                ("no_place", geotiff.GeoInfo(geo_key_directory=(1, 1, 0, 0),
                                             model_pixel_scale=(1.0, 1.0, 0.0),
                                             model_tiepoint=(0.0,) * 6)),
                ("plain", None)):
            paths[name] = os.path.join(root, f"{name}.tif")
            geotiff.write_geotiff(paths[name], array, geo)
        paths["png"] = os.path.join(root, "mask.png")
        iio.imwrite(paths["png"], array)
        self.assertEqual(geotiff.read_geoinfo(paths["no_place"]).transform,
                         (0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
        tiles.check_same_grid([paths[n] for n in (
            "placed", "within_half_pixel", "half_pixel", "negative_scale_y",
            "geographic_code_only", "no_place", "plain", "png")])
        tiles.check_same_grid([paths["plain"], paths["two_pixels_off"]])  # one placed
        with self.assertRaisesRegex(TileError, r"two_pixels_off\.tif is not on the grid of "
                                    r".*placed\.tif: origin \(366000\.1, 5808000\)"):
            tiles.check_same_grid([paths["placed"], paths["png"], paths["two_pixels_off"]])

    def test_grid_of_files_gdal_places(self):
        """JPEG 2000, a VRT and a PNG with a world file are placed by GDAL
        (rasterio writes them) and compared with a GeoTIFF's tags."""
        import rasterio  # pylint: disable=import-outside-toplevel
        from rasterio.transform import from_origin  # pylint: disable=import-outside-toplevel
        root = self.get_temp_dir()
        array = np.arange(16 * 20, dtype=np.uint8).reshape(1, 16, 20)

        def write(name, driver, x0=366000.0, pixel=0.5, crs="EPSG:25832"):
            path = os.path.join(root, name)
            with rasterio.open(path, "w", driver=driver, width=20, height=16, count=1,
                               dtype="uint8", crs=crs,
                               transform=from_origin(x0, 5808000.0, pixel, pixel)) as ds:
                ds.write(array)
            return path

        image = write("image.tif", "GTiff")
        same = [write("mask.jp2", "JP2OpenJPEG"), write("mask_world.png", "PNG")]
        vrt = os.path.join(root, "mask.vrt")
        with rasterio.open(same[0]) as src:
            self.assertEqual(src.transform, from_origin(366000.0, 5808000.0, 0.5, 0.5))
        tiles.check_same_grid([image, *same])
        # A VRT over the GeoTIFF, moved two pixels east by its geotransform.
        with open(vrt, "w", encoding="utf-8") as f:
            f.write(f"""<VRTDataset rasterXSize="20" rasterYSize="16">
  <SRS>EPSG:25832</SRS>
  <GeoTransform>366001.0, 0.5, 0, 5808000.0, 0, -0.5</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1"><SimpleSource>
    <SourceFilename relativeToVRT="1">image.tif</SourceFilename><SourceBand>1</SourceBand>
  </SimpleSource></VRTRasterBand>
</VRTDataset>""")
        with self.assertRaisesRegex(TileError, r"mask\.vrt is not on the grid of .*image\.tif: "
                                    r"origin \(366001, 5808000\), pixel 0\.5 x 0\.5, EPSG:25832"):
            tiles.check_same_grid([image, vrt])
        for name, kwargs in (("coarser.jp2", {"pixel": 1.0}),
                             ("other_crs.png", {"crs": "EPSG:32632"})):
            with self.assertRaisesRegex(TileError, f"{name} is not on the grid"):
                driver = "PNG" if name.endswith(".png") else "JP2OpenJPEG"
                tiles.check_same_grid([image, write(name, driver, **kwargs)])
        # A TIFF without geo tags beside a world file (.tfw: pixel size, then
        # the centre of the top-left pixel) two pixels west of the image.
        tfw = os.path.join(root, "world.tif")
        tifffile.imwrite(tfw, array[0])
        with open(tfw[:-4] + ".tfw", "w", encoding="utf-8") as f:
            f.write("0.5\n0\n0\n-0.5\n365999.25\n5807999.75\n")
        with self.assertRaisesRegex(TileError, r"world\.tif is not on the grid of .*image\.tif: "
                                    r"origin \(365999, 5808000\), pixel 0\.5 x 0\.5 vs"):
            tiles.check_same_grid([image, tfw])
        # Without a place (no world file, no CRS): paired by size, as before.
        plain = os.path.join(root, "plain.png")
        iio.imwrite(plain, array[0])
        tiles.check_same_grid([image, plain])


if __name__ == "__main__":
    tf.test.main()
