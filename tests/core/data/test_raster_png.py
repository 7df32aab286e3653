"""Tests for core.data.raster on PNG and JPEG files (Pillow, GDAL's PNG driver).

References: the array handed to the writer, and GDAL's reading of the same
file through rasterio (nodata from tRNS, 1-bit values).
"""
import os
import tempfile

import numpy as np
import rasterio
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

from core.data.raster import read_raster
from tests.helpers import H, W, raster_data, smooth_bands, write_raster


class ReadPngJpegTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_palette_png_gives_indices_and_transparent_entries_are_no_data(self):
        indices = (raster_data("uint8", 1, seed=6)[0] % 4).astype(np.uint8)
        colours = [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]
        image = Image.fromarray(indices, "P")
        image.putpalette(colours)
        image.save(self.path("p.png"))
        image.save(self.path("t.png"), transparency=bytes([255, 255, 255, 0]))
        for name, expected_valid in (("p.png", None), ("t.png", indices != 3)):
            out = read_raster(self.path(name))
            self.assertAllEqual(out.array, indices[..., None])
            self.assertAllEqual(out.palette, np.reshape(colours, (4, 3)))
            if expected_valid is None:
                self.assertIsNone(out.valid)
            else:
                self.assertAllEqual(out.valid, expected_valid)

    @parameterized.named_parameters(
        ("gray", "L", 100, 100.0),
        ("rgb_equal", "RGB", (100, 100, 100), 100.0),
        ("rgb_colour", "RGB", (100, 50, 100), None),
    )
    def test_png_transparent_colour_is_no_data(self, mode, colour, gdal_nodata):
        bands = len(mode)
        data = np.moveaxis(raster_data("uint8", bands, seed=9), 0, -1)
        data[data == 100] = 99                      # no accidental match
        data[5:9, 3:60] = colour
        data[30, :, 0] = 100                        # one band only: data
        Image.fromarray(data[..., 0] if bands == 1 else data, mode).save(
            self.path("t.png"), transparency=colour)
        with rasterio.open(self.path("t.png")) as src:   # GDAL: tRNS is nodata
            self.assertEqual(src.nodata, gdal_nodata if gdal_nodata else 100.0)
        out = read_raster(self.path("t.png"))
        expected = np.ones((H, W), bool)
        expected[5:9, 3:60] = False
        if bands == 1:
            expected[30] = False
        self.assertAllEqual(out.array, data)
        self.assertAllEqual(out.valid, expected)
        self.assertEqual(out.nodata, gdal_nodata)

    @parameterized.parameters("RGBA", "LA")
    def test_png_alpha_is_removed(self, mode):
        bands = len(mode)
        data = np.moveaxis(raster_data("uint8", bands, seed=7), 0, -1)
        data[..., -1] = 255
        data[20:25, :, -1] = 0
        Image.fromarray(data, mode).save(self.path("a.png"))
        out = read_raster(self.path("a.png"))
        self.assertAllEqual(out.array, data[..., :-1])
        self.assertAllEqual(out.valid, np.arange(H)[:, None].repeat(W, 1).__lt__(20)
                            | np.arange(H)[:, None].repeat(W, 1).__ge__(25))

    @parameterized.parameters(1, 3, 4)
    def test_16_bit_png_written_by_gdal_stays_16_bit(self, bands):
        data = raster_data("uint16", bands, seed=8)
        path = write_raster(self.path("a.png"), data, driver="PNG", crs=None, transform=None)
        out = read_raster(path)
        self.assertEqual(out.array.dtype, np.uint16)
        # GDAL's PNG driver writes 4 bands as RGBA: the 4th is alpha.
        self.assertAllEqual(out.array, np.moveaxis(data[:3] if bands == 4 else data, 0, -1))

    def test_1_bit_png_reads_0_1_like_gdal(self):
        bits = raster_data("bool", 1, seed=10)[0].astype(bool)
        Image.fromarray(bits).save(self.path("b.png"))
        with rasterio.open(self.path("b.png")) as src:
            reference = src.read(1)
        out = read_raster(self.path("b.png"))
        self.assertEqual(out.array.dtype, np.uint8)
        self.assertAllEqual(out.array[..., 0], reference)
        self.assertAllEqual(out.array[..., 0], bits.astype(np.uint8))

    def test_jpeg_file(self):
        data = np.moveaxis(smooth_bands(3), 0, -1)
        Image.fromarray(data).save(self.path("a.jpg"), quality=95)
        out = read_raster(self.path("a.jpg"))
        self.assertEqual(out.array.dtype, np.uint8)
        self.assertLessEqual(np.abs(out.array.astype(int) - data).max(), 8)


if __name__ == "__main__":
    tf.test.main()
