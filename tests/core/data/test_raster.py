"""Tests for core.data.raster on TIFFs written by GDAL (rasterio); errors.

PNG and JPEG files: test_raster_png.py (which uses this file's writers).

The reference is the array handed to the writer (and, for palettes, the
colour table rasterio reads back): lossless layouts must come back
bit-exact, JPEG within JPEG's tolerance.
"""
import os
import sys
import tempfile
from unittest import mock

import imagecodecs
import numpy as np
import rasterio
import tensorflow as tf
import tifffile
from absl.testing import parameterized

from core.data import raster as raster_lib
from core.data import raster_gdal
from core.data.raster import read_raster
from core.data.tiles import TileError
from tests.helpers import H, W, raster_data, smooth_bands, write_raster

TILED = {"tiled": True, "blockxsize": 32, "blockysize": 32}   # 80 = 2.5 tiles


# (name, dtype, bands, creation options, expected dtype, JPEG tolerance or 0)
VARIANTS = [
    ("none_strips_uint8", "uint8", 3, {}, "uint8", 0),
    ("none_tiled_uint16", "uint16", 2, TILED, "uint16", 0),
    ("lzw_uint8", "uint8", 3, {"compress": "LZW"}, "uint8", 0),
    ("lzw_pred2_uint16", "uint16", 4, {"compress": "LZW", "predictor": 2}, "uint16", 0),
    ("lzw_pred3_float32", "float32", 1, {"compress": "LZW", "predictor": 3}, "float32", 0),
    ("deflate_pred1_uint8", "uint8", 3, {"compress": "DEFLATE", "predictor": 1}, "uint8", 0),
    ("deflate_pred2_int16", "int16", 1, {"compress": "DEFLATE", "predictor": 2}, "int16", 0),
    ("deflate_pred3_float32_tiled", "float32", 2,
     {"compress": "DEFLATE", "predictor": 3, **TILED}, "float32", 0),
    ("packbits_uint8", "uint8", 3, {"compress": "PACKBITS"}, "uint8", 0),
    ("zstd_pred2_uint16_tiled", "uint16", 3,
     {"compress": "ZSTD", "predictor": 2, **TILED}, "uint16", 0),
    ("zstd_pred3_float32", "float32", 1, {"compress": "ZSTD", "predictor": 3}, "float32", 0),
    ("lzma_int16", "int16", 1, {"compress": "LZMA"}, "int16", 0),
    ("lerc_zstd_uint16", "uint16", 1, {"compress": "LERC_ZSTD"}, "uint16", 0),
    ("webp_lossless_uint8", "uint8", 3, {"compress": "WEBP", "webp_lossless": True}, "uint8", 0),
    ("band_interleave_uint8", "uint8", 4,
     {"interleave": "band", "photometric": "MINISBLACK"}, "uint8", 0),
    ("band_interleave_deflate_uint16_tiled", "uint16", 3,
     {"interleave": "band", "compress": "DEFLATE", "predictor": 2, **TILED}, "uint16", 0),
    ("bigtiff_lzw_uint8_tiled", "uint8", 3,
     {"bigtiff": "YES", "compress": "LZW", **TILED}, "uint8", 0),
    ("bigtiff_deflate_float32_strips", "float32", 1,
     {"bigtiff": "YES", "compress": "DEFLATE", "predictor": 3}, "float32", 0),
    ("cog_lzw_uint8", "uint8", 3,
     {"driver": "COG", "compress": "LZW", "blocksize": 32, "overview_resampling": "average"},
     "uint8", 0),
    ("big_endian_uint16_deflate_pred2", "uint16", 2,
     {"endianness": "BIG", "compress": "DEFLATE", "predictor": 2}, "uint16", 0),
    ("big_endian_float32_lzw_pred3", "float32", 1,
     {"endianness": "BIG", "compress": "LZW", "predictor": 3}, "float32", 0),
    ("nbits1_uint8", "bool", 1, {"nbits": 1}, "uint8", 0),
    ("nbits12_uint16_lzw", "uint16", 1, {"nbits": 12, "compress": "LZW"}, "uint16", 0),
    ("int8_to_int16", "int8", 1, {"compress": "DEFLATE"}, "int16", 0),
    ("float64_to_float32", "float64", 1, {"compress": "DEFLATE", "predictor": 3}, "float32", 0),
    ("int32_to_float32", "int32", 1, {"compress": "LZW"}, "float32", 0),
    ("uint32_to_float32", "uint32", 1, {}, "float32", 0),
    ("jpeg_rgb", "jpeg", 3, {"compress": "JPEG", "photometric": "RGB"}, "uint8", 3),
    ("jpeg_ycbcr", "jpeg", 3, {"compress": "JPEG", "photometric": "YCBCR"}, "uint8", 8),
    ("jpeg_ycbcr_tiled", "jpeg", 3,
     {"compress": "JPEG", "photometric": "YCBCR", **TILED}, "uint8", 8),
    ("jpeg_gray", "jpeg", 1, {"compress": "JPEG"}, "uint8", 3),
    ("jpeg_4_bands_band_interleave", "jpeg", 4,
     {"compress": "JPEG", "photometric": "MINISBLACK", "interleave": "band"}, "uint8", 3),
]


class ReadRasterTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def path(self, name):
        return os.path.join(self.dir, name)

    @parameterized.named_parameters(*VARIANTS)
    def test_gdal_layouts_read_back(self, dtype, bands, options, expected_dtype, tolerance):
        data = smooth_bands(bands) if dtype == "jpeg" else raster_data(dtype, bands)
        if "nbits" in options:
            data %= 2 ** options["nbits"]
        path = write_raster(self.path("a.tif"), data, **options)
        out = read_raster(path)
        expected = np.moveaxis(data, 0, -1)
        self.assertEqual(out.array.dtype, np.dtype(expected_dtype))
        self.assertEqual(out.array.shape, (H, W, bands))
        self.assertIsNone(out.valid)
        self.assertIsNone(out.palette)
        if tolerance:
            diff = np.abs(out.array.astype(int) - expected.astype(int))
            self.assertLessEqual(diff.max(), tolerance)
            self.assertLess(diff.mean(), 2.0)
        else:
            self.assertAllEqual(out.array, expected.astype(expected_dtype))

    @parameterized.named_parameters(
        ("deflate_tiled", {"compress": "DEFLATE", **TILED}, 0),
        # The usual orthophoto: JPEG in YCbCr with a mask for the collar.
        ("jpeg_ycbcr_strips", {"compress": "JPEG", "photometric": "YCBCR"}, 8),
    )
    def test_overviews_and_mask_ifds_are_not_the_image(self, options, tolerance):
        data = smooth_bands(3) if tolerance else raster_data("uint8", 3)
        mask = np.full((H, W), 255, np.uint8)
        mask[:5, :7] = 0
        path = write_raster(self.path("ov.tif"), data, mask=mask, overviews=[2, 4, 8],
                      env={"GDAL_TIFF_INTERNAL_MASK": True}, **options)
        with tifffile.TiffFile(path) as tif:   # the file has what the test is about
            kinds = [int(p.subfiletype) for p in tif.pages]
        self.assertEqual(sorted(set(kinds)), [0, 1, 4, 5])
        out = read_raster(path)
        self.assertEqual(out.array.shape, (H, W, 3))
        diff = np.abs(out.array.astype(int) - np.moveaxis(data, 0, -1))
        self.assertLessEqual(diff.max(), tolerance)
        self.assertAllEqual(out.valid, mask != 0)

    @parameterized.named_parameters(
        ("uint8_rgb_zero", "uint8", 3, 0),
        ("uint16_max", "uint16", 1, 65535),
        ("float32_minus9999", "float32", 2, -9999.0),
        ("float32_nan", "float32", 1, float("nan")),
        ("int16_minus1", "int16", 1, -1),
    )
    def test_gdal_nodata_on_every_band(self, dtype, bands, nodata):
        data = raster_data(dtype, bands, seed=1)
        if not np.isnan(nodata):   # no accidental no-data among the random values
            data[data == nodata] = 1
        data[:, 3:6, 10:20] = nodata                 # every band: no data
        data[0, 40, :] = nodata                      # one band only: data
        path = write_raster(self.path("nd.tif"), data, nodata=nodata, compress="LZW")
        out = read_raster(path)
        expected = np.ones((H, W), bool)
        expected[3:6, 10:20] = False
        if bands == 1:
            expected[40, :] = False
        self.assertAllEqual(out.valid, expected)
        if np.isnan(nodata):
            self.assertTrue(np.isnan(out.nodata))
        else:
            self.assertEqual(out.nodata, nodata)
        self.assertAllEqual(np.isnan(out.array), np.isnan(np.moveaxis(data, 0, -1)))

    @parameterized.named_parameters(("float32", "float32"), ("float64", "float64"))
    def test_nan_and_inf_are_no_data_without_a_nodata_tag(self, dtype):
        data = raster_data(dtype, 3, seed=5)
        data[1, 3:6, 10:20] = np.nan                 # one band is enough
        data[0, 40, 7] = np.inf
        data[2, 41, 8] = -np.inf
        if dtype == "float64":
            data[0, 50, 9] = 1e300                   # beyond float32: inf once read
        path = write_raster(self.path("holes.tif"), data, compress="DEFLATE", predictor=3)
        with rasterio.open(path) as ds:
            self.assertIsNone(ds.nodata)
        out = read_raster(path)
        expected = np.ones((H, W), bool)
        expected[3:6, 10:20] = expected[40, 7] = expected[41, 8] = False
        if dtype == "float64":
            expected[50, 9] = False
        self.assertAllEqual(out.valid, expected)
        self.assertEqual(out.array.dtype, np.float32)
        # The source values are kept; what the model gets there is finite_values'.
        self.assertEqual(int(np.isnan(out.array).sum()), 30)

    def test_finite_values_reference(self):
        array = np.array([[[1.5, np.nan], [np.inf, 2]], [[-np.inf, 3], [4, 5]]], np.float32)
        filled = [[[1.5, 0], [0, 2]], [[0, 3], [4, 5]]]
        self.assertAllEqual(raster_lib.finite_values(array), filled)
        self.assertTrue(np.isnan(array[0, 0, 1]))                 # the source is kept
        self.assertAllEqual(raster_lib.finite_pixels(array), [[False, False], [False, True]])
        self.assertIs(raster_lib.finite_values(array, in_place=True), array)
        self.assertAllEqual(array, filled)                         # filled where it is
        finite = np.ones((2, 2, 1), np.float32)
        self.assertIs(raster_lib.finite_values(finite), finite)   # no copy
        self.assertIsNone(raster_lib.finite_pixels(finite))
        self.assertIsNone(raster_lib.finite_pixels(np.zeros((2, 2, 1), np.uint16)))

    def test_nodata_the_dtype_cannot_hold_marks_nothing(self):
        data = raster_data("uint8", 1)[0]
        data[0] = 241                          # -9999 wrapped to uint8 is 241
        path = self.path("nd.tif")             # (rasterio refuses to write it)
        tifffile.imwrite(path, data, extratags=[(42113, "s", 0, "-9999", True)])
        out = read_raster(path)
        self.assertEqual(out.nodata, -9999.0)
        self.assertIsNone(out.valid)

    @parameterized.named_parameters(
        ("unassociated_uint8", "uint8", 4, {"photometric": "RGB", "alpha": "YES"}),
        ("gdal_default_rgba", "uint8", 4, {}),
        ("premultiplied_uint8", "uint8", 4, {"photometric": "RGB", "alpha": "PREMULTIPLIED"}),
        ("gray_alpha_uint16", "uint16", 2, {"photometric": "MINISBLACK", "alpha": "YES"}),
        ("rgba_band_interleave_lzw", "uint8", 4,
         {"photometric": "RGB", "alpha": "YES", "interleave": "band", "compress": "LZW"}),
    )
    def test_alpha_is_not_a_band_and_marks_no_data(self, dtype, bands, options):
        data = raster_data(dtype, bands, seed=2)
        data[-1] = np.iinfo(dtype).max
        data[-1, 10:30, 5:9] = 0
        path = write_raster(self.path("alpha.tif"), data, **options)
        with tifffile.TiffFile(path) as tif:
            self.assertIn(int(tif.pages[0].extrasamples[-1]), (1, 2))
        out = read_raster(path)
        self.assertAllEqual(out.array, np.moveaxis(data[:-1], 0, -1))
        expected = np.ones((H, W), bool)
        expected[10:30, 5:9] = False
        self.assertAllEqual(out.valid, expected)

    @parameterized.named_parameters(
        ("rgb_unspecified", {"photometric": "RGB", "alpha": "UNSPECIFIED"}),
        ("minisblack", {"photometric": "MINISBLACK"}),
    )
    def test_extrasamples_0_is_a_data_band(self, options):
        data = raster_data("uint8", 4, seed=3)
        data[3, :10] = 0          # would be "no data" if it were read as alpha
        path = write_raster(self.path("rgbir.tif"), data, **options)
        with tifffile.TiffFile(path) as tif:
            self.assertEqual(int(tif.pages[0].extrasamples[-1]), 0)
        out = read_raster(path)
        self.assertAllEqual(out.array, np.moveaxis(data, 0, -1))
        self.assertIsNone(out.valid)

    def test_every_source_of_no_data_combines(self):
        data = raster_data("uint8", 4, seed=4)
        data[3] = 255
        data[3, 0:4] = 0                              # alpha
        data[:3, 10:12] = 7                           # nodata on every data band
        mask = np.full((H, W), 255, np.uint8)
        mask[:, 70:] = 0                              # internal mask
        path = write_raster(self.path("all.tif"), data, mask=mask, nodata=7,
                      photometric="RGB", alpha="YES", env={"GDAL_TIFF_INTERNAL_MASK": True})
        out = read_raster(path)
        expected = np.ones((H, W), bool)
        expected[0:4] = expected[10:12] = False
        expected[:, 70:] = False
        self.assertEqual(out.array.shape, (H, W, 3))
        self.assertAllEqual(out.valid, expected)

    def test_palette_tiff_gives_indices_and_the_colour_table(self):
        indices = (raster_data("uint8", 1, seed=5) % 5).astype(np.uint8)
        colours = {0: (255, 255, 255, 255), 1: (0, 0, 255, 255), 2: (0, 255, 255, 255),
                   3: (0, 255, 0, 255), 4: (13, 200, 7, 255)}
        path = write_raster(self.path("pal.tif"), indices, colormap=colours,
                      photometric="PALETTE", compress="LZW")
        out = read_raster(path)
        with rasterio.open(path) as src:
            reference = src.colormap(1)
        self.assertEqual(out.array.dtype, np.uint8)
        self.assertAllEqual(out.array, np.moveaxis(indices, 0, -1))
        self.assertEqual(out.palette.shape, (256, 3))
        self.assertEqual(out.palette.dtype, np.uint8)
        self.assertAllEqual(out.palette, np.array([reference[i][:3] for i in range(256)]))
        self.assertAllEqual(out.palette[4], [13, 200, 7])

    @parameterized.named_parameters(
        ("16_bit_entries", [[0, 65280, 32896, 1000], [65535, 257, 128, 40000],
                            [12345, 0, 65535, 2]]),
        ("8_bit_entries", [[0, 255, 128, 10], [255, 1, 2, 40], [12, 0, 255, 2]]),
    )
    def test_palette_scaling_follows_gdal(self, entries):
        colormap = np.zeros((3, 256), np.uint16)
        colormap[:, :4] = entries
        path = self.path("cmap.tif")
        tifffile.imwrite(path, np.arange(H * W, dtype=np.uint8).reshape(H, W) % 4,
                         photometric="palette", colormap=colormap)
        with rasterio.open(path) as src:
            reference = src.colormap(1)
        out = read_raster(path)
        self.assertAllEqual(out.palette[:4], [reference[i][:3] for i in range(4)])

    def test_overview_before_the_image_is_skipped(self):
        data = np.moveaxis(raster_data("uint16", 2), 0, -1)
        path = self.path("ov_first.tif")
        with tifffile.TiffWriter(path) as tif:   # not GDAL's order, but legal TIFF
            tif.write(data[::2, ::2], subfiletype=1, photometric="minisblack",
                      planarconfig="contig")
            tif.write(data, photometric="minisblack", planarconfig="contig")
        self.assertAllEqual(read_raster(path).array, data)

    def test_missing_imagecodecs_names_codec_and_package(self):
        from tifffile import _imagecodecs as pure_python  # pylint: disable=import-outside-toplevel
        path = write_raster(self.path("lzw.tif"), raster_data("uint8", 3), compress="LZW")
        # As if imagecodecs were not installed: tifffile falls back to its
        # pure-Python codecs, which have no LZW.
        with mock.patch.dict(sys.modules, {"imagecodecs": None}), \
                mock.patch.object(tifffile.tifffile, "imagecodecs", pure_python), \
                mock.patch.object(tifffile.TIFF, "DECOMPRESSORS",
                                  tifffile.tifffile.CompressionCodec(encode=False)), \
                mock.patch.object(raster_gdal, "available", lambda: False):
            with self.assertRaises(TileError) as caught:
                read_raster(path)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertRegex(message, r"lzw\.tif: TIFF with LZW compression needs the "
                                  r"imagecodecs package, which is not installed \(pip install imagecodecs\)")
        # DEFLATE has a pure-Python fallback; the floating-point predictor not.
        path = write_raster(self.path("fp.tif"), raster_data("float32", 1), compress="DEFLATE", predictor=3)
        with mock.patch.dict(sys.modules, {"imagecodecs": None}), \
                mock.patch.object(tifffile.tifffile, "imagecodecs", pure_python), \
                mock.patch.object(tifffile.TIFF, "DECOMPRESSORS",
                                  tifffile.tifffile.CompressionCodec(encode=False)), \
                mock.patch.object(tifffile.TIFF, "UNPREDICTORS",
                                  tifffile.tifffile.PredictorCodec(encode=False)), \
                mock.patch.object(raster_gdal, "available", lambda: False):
            with self.assertRaisesRegex(TileError, r"^[^\n]*fp\.tif: TIFF with floating-point "
                                                   r"predictor needs the imagecodecs package"):
                read_raster(path)

    def test_codec_missing_from_imagecodecs_names_it(self):
        path = write_raster(self.path("lerc.tif"), raster_data("float32", 1), compress="LERC")

        def missing(*args, **kwargs):
            raise imagecodecs.DelayedImportError("_lerc")

        imagecodecs.lerc_decode  # pylint: disable=pointless-statement
        # ^ imagecodecs loads codecs lazily: load it so that the patch puts
        # the real function back afterwards.

        with mock.patch.object(imagecodecs, "lerc_decode", missing), \
                mock.patch.object(tifffile.TIFF, "DECOMPRESSORS",
                                  tifffile.tifffile.CompressionCodec(encode=False)), \
                mock.patch.object(raster_gdal, "available", lambda: False):
            with self.assertRaises(TileError) as caught:
                read_raster(path)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertRegex(message, r"lerc\.tif: TIFF with LERC compression needs the LERC "
                                  r"compression codec of the imagecodecs package")
        self.assertNotIn("truncated", message)

    def test_compression_no_python_codec_reads_names_gdal(self):
        path = self.path("jbig.tif")
        tifffile.imwrite(path, raster_data("uint8", 1)[0], compression="zlib")
        with tifffile.TiffFile(path, mode="r+b") as tif:   # relabel as JBIG (34661)
            tif.pages[0].tags["Compression"].overwrite(34661)
        with self.assertRaisesRegex(TileError, r"^[^\n]*jbig\.tif: TIFF with JBIG compression: "
                                               r"no decoder in tifffile/imagecodecs[^\n]*"
                                               r"GDAL \(the rasterio package\)[^\n]*$"):
            read_raster(path)

    @parameterized.named_parameters(
        ("strips_none", ".tif", {}),
        ("strips_lzw", ".tif", {"compress": "LZW"}),
        ("tiled_deflate", ".tif", {"compress": "DEFLATE", **TILED}),
        ("jpeg", ".tif", {"compress": "JPEG"}),
        ("cog", ".tif", {"driver": "COG", "compress": "LZW", "blocksize": 32}),
        ("png", ".png", {"driver": "PNG", "crs": None, "transform": None}),
    )
    def test_truncated_file_is_one_clear_line(self, ext, options):
        full = write_raster(self.path("full" + ext), raster_data("uint8", 3), **options)
        data = open(full, "rb").read()
        cut = self.path("cut" + ext)
        with open(cut, "wb") as f:
            f.write(data[:int(len(data) * 0.9)])
        with self.assertRaisesRegex(TileError, r"^[^\n]*cut\.(tif|png): [^\n]*truncated[^\n]*$"):
            read_raster(cut)

    def test_missing_and_empty_file(self):
        with self.assertRaisesRegex(TileError, "nope.tif: file not found"):
            read_raster(self.path("nope.tif"))
        open(self.path("empty.tif"), "wb").close()
        with self.assertRaisesRegex(TileError, "empty.tif: empty file"):
            read_raster(self.path("empty.tif"))

    def test_dtype_without_exact_float32_is_refused(self):
        data = raster_data("int32", 1)
        data[0, 0, 0] = 2 ** 24 + 1
        path = write_raster(self.path("big.tif"), data)
        with self.assertRaisesRegex(TileError, r"big\.tif: int32 values .*16777217"):
            read_raster(path)

    def test_nodata_pixels_reference(self):
        array = np.array([[[0, 0], [0, 1]], [[np.nan, np.nan], [5, 5]]], np.float32)
        self.assertAllEqual(raster_lib.nodata_pixels(array, 0),
                            [[True, False], [False, False]])
        self.assertAllEqual(raster_lib.nodata_pixels(array, float("nan")),
                            [[False, False], [True, False]])
        self.assertIsNone(raster_lib.nodata_pixels(array.astype(np.uint8), 0.5))


if __name__ == "__main__":
    tf.test.main()
