"""Tests for core/data/geotiff.py, read back with rasterio (GDAL) as reference."""
import dataclasses
import math
import os
import tempfile

import numpy as np
import rasterio
import tensorflow as tf
import tifffile
from absl.testing import parameterized

from core.data import geotiff


class WriteReadTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    @parameterized.named_parameters(
        ("rgbir_uint8", (6, 7, 4), np.uint8, 25833, (368012.5, 5807000.25), 0.05, None),
        ("rgb_uint8", (5, 9, 3), np.uint8, 26914, (620000.0, 3350000.0), 0.3, None),
        ("mask_uint8", (8, 4), np.uint8, 32633, (500000.0, 4000000.0), 0.3, 0),
        ("dsm_float32", (6, 5), np.float32, 25833, (368000.0, 5806000.0), 0.05, -9999.0),
        ("two_band_uint16", (3, 4, 2), np.uint16, 4326, (13.05, 52.4), 1e-5, 65535),
    )
    def test_rasterio_reads_what_was_written(self, shape, dtype, epsg, origin,
                                            pixel, nodata):
        rng = np.random.default_rng(0)
        array = (rng.uniform(0, 200, shape)).astype(dtype)
        path = os.path.join(self.dir, "a.tif")
        geo = geotiff.make_geoinfo(epsg, origin, pixel)
        geotiff.write_geotiff(path, array, geo, nodata=nodata)
        bands = 1 if array.ndim == 2 else shape[2]
        with rasterio.open(path) as src:
            self.assertEqual(src.crs.to_epsg(), epsg)
            expected = rasterio.Affine(pixel, 0, origin[0], 0, -pixel, origin[1])
            self.assertSequenceAlmostEqual(tuple(src.transform)[:6],
                                           tuple(expected)[:6], places=9)
            self.assertEqual(src.count, bands)
            self.assertEqual(src.dtypes, (np.dtype(dtype).name,) * bands)
            self.assertEqual(src.nodata, nodata)
            data = src.read()
        self.assertAllEqual(np.moveaxis(data, 0, -1).reshape(array.shape), array)
        # tifffile (what imageio uses) reads the same pixels back.
        self.assertAllEqual(tifffile.imread(path), array)

    def test_geoinfo_round_trip_and_properties(self):
        path = os.path.join(self.dir, "d.tif")
        geo = geotiff.make_geoinfo(25833, (368000.0, 5806000.0), 0.05)
        geotiff.write_geotiff(path, np.zeros((4, 4), np.float32), geo,
                              nodata=float("nan"))
        back = geotiff.read_geoinfo(path)
        self.assertEqual(back.crs_epsg, 25833)
        self.assertEqual(back.transform,
                         (368000.0, 0.05, 0.0, 5806000.0, 0.0, -0.05))
        self.assertTrue(math.isnan(back.nodata))
        self.assertEqual(back.geo_key_directory, geo.geo_key_directory)
        self.assertEqual(back.model_tiepoint, geo.model_tiepoint)
        with rasterio.open(path) as src:
            self.assertTrue(math.isnan(src.nodata))

    def test_copy_geoinfo_from_rasterio_file_preserves_crs_and_transform(self):
        # What predict does: read the input tile's tags, write the prediction.
        src_path = os.path.join(self.dir, "src.tif")
        transform = rasterio.Affine(0.3, 0, 612345.5, 0, -0.3, 4512345.25)
        with rasterio.open(src_path, "w", driver="GTiff", width=10, height=8,
                           count=3, dtype="uint8", crs="EPSG:32618",
                           transform=transform) as dst:
            dst.write(np.ones((3, 8, 10), np.uint8))
        geo = geotiff.read_geoinfo(src_path)
        self.assertEqual(geo.crs_epsg, 32618)
        self.assertIsNotNone(geo.geo_ascii_params)   # GDAL writes a citation
        out_path = os.path.join(self.dir, "pred.tif")
        geotiff.write_geotiff(out_path, np.full((8, 10), 3, np.uint8), geo)
        with rasterio.open(src_path) as a, rasterio.open(out_path) as b:
            self.assertEqual(b.crs, a.crs)
            self.assertEqual(b.transform, a.transform)
            self.assertEqual(b.count, 1)

    def test_window_moves_origin(self):
        geo = geotiff.make_geoinfo(25833, (100.0, 200.0), 0.5)
        sub = geo.window(row_off=4, col_off=10)
        self.assertEqual(sub.transform, (105.0, 0.5, 0.0, 198.0, 0.0, -0.5))
        path = os.path.join(self.dir, "w.tif")
        geotiff.write_geotiff(path, np.zeros((2, 2), np.uint8), sub)
        with rasterio.open(path) as src:
            self.assertEqual(tuple(src.transform)[:6],
                             (0.5, 0.0, 105.0, 0.0, -0.5, 198.0))

    def test_pixel_is_point_shifts_half_pixel_like_gdal(self):
        geo = geotiff.make_geoinfo(25833, (100.0, 200.0), 2.0)
        keys = list(geo.geo_key_directory)
        keys[11] = 2   # GTRasterTypeGeoKey = PixelIsPoint
        geo = dataclasses.replace(geo, geo_key_directory=tuple(keys))
        path = os.path.join(self.dir, "p.tif")
        geotiff.write_geotiff(path, np.zeros((2, 2), np.uint8), geo)
        with rasterio.open(path) as src:
            gdal = src.transform.to_gdal()
        self.assertSequenceAlmostEqual(geo.transform, gdal)
        self.assertEqual(geo.transform[0], 99.0)

    def test_encode_equals_file_bytes_and_levels_are_lossless(self):
        rng = np.random.default_rng(5)
        array = rng.integers(0, 255, (40, 30, 4)).astype(np.uint8)
        geo = geotiff.make_geoinfo(25833, (368000.0, 5806000.0), 0.05)
        path = os.path.join(self.dir, "e.tif")
        geotiff.write_geotiff(path, array, geo, level=1)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), geotiff.encode_geotiff(array, geo, level=1))
        self.assertEqual(geotiff.encode_geotiff(array, geo),
                         geotiff.encode_geotiff(array.copy(), geo))   # deterministic
        for compress, level in (("none", 6), ("deflate", 9)):
            geotiff.write_geotiff(path, array, geo, compress=compress, level=level)
            self.assertAllEqual(tifffile.imread(path), array)
        with self.assertRaisesRegex(ValueError, "level=0"):
            geotiff.encode_geotiff(array, geo, level=0)

    def test_plain_tiff_png_and_no_geo(self):
        path = os.path.join(self.dir, "plain.tif")
        geotiff.write_geotiff(path, np.zeros((3, 3), np.uint8), None)
        self.assertIsNone(geotiff.read_geoinfo(path))
        self.assertIsNone(geotiff.read_geoinfo(os.path.join(self.dir, "x.png")))

    def test_errors(self):
        bad = os.path.join(self.dir, "bad.tif")
        with open(bad, "wb") as f:
            f.write(b"not a tiff at all")
        with self.assertRaisesRegex(ValueError, "bad.tif: cannot read TIFF"):
            geotiff.read_geoinfo(bad)
        geo = geotiff.make_geoinfo(25833, (0.0, 0.0), 1.0)
        with self.assertRaisesRegex(ValueError, "must end in .tif"):
            geotiff.write_geotiff(os.path.join(self.dir, "a.png"),
                                  np.zeros((2, 2), np.uint8), geo)
        with self.assertRaisesRegex(ValueError, "compress='jpeg'"):
            geotiff.write_geotiff(os.path.join(self.dir, "a.tif"),
                                  np.zeros((2, 2), np.uint8), geo,
                                  compress="jpeg")
        with self.assertRaisesRegex(ValueError, "pixel_size"):
            geotiff.make_geoinfo(25833, (0.0, 0.0), 0.0)
        rotated = os.path.join(self.dir, "rot.tif")
        with rasterio.open(rotated, "w", driver="GTiff", width=4, height=4,
                           count=1, dtype="uint8", crs="EPSG:25833",
                           transform=rasterio.Affine(1, 0.2, 0, 0.1, -1, 0)) as d:
            d.write(np.zeros((1, 4, 4), np.uint8))
        with self.assertRaisesRegex(ValueError, "rot.tif: .*north-up"):
            geotiff.read_geoinfo(rotated)


if __name__ == "__main__":
    tf.test.main()
