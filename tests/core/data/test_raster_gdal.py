"""read_raster's GDAL fallback (rasterio, the `geo` extra): JPEG 2000 and VRT
rasters, and a TIFF whose codec the core reader lacks, read back exactly as
GDAL wrote them; without rasterio, one line names the extra."""
import os
import sys
import tempfile
import warnings
from unittest import mock

import numpy as np
import rasterio
import tensorflow as tf
import tifffile
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from core.data import raster_gdal
from core.data.raster import read_raster
from core.data.tiles import TileError


def _write(path, data, driver="GTiff", **options):
    """data [H,W,C] -> a file GDAL writes with `options`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, width=data.shape[1],
                           height=data.shape[0], count=data.shape[2], dtype=data.dtype,
                           crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5),
                           **options) as dst:
            dst.write(np.moveaxis(data, -1, 0))
    return path


class GdalFallbackTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(dir=self.get_temp_dir())
        self.data = np.random.default_rng(1).integers(0, 4096, (40, 56, 3)).astype(np.uint16)

    def test_lossless_jpeg2000_reads_exactly(self):
        path = _write(os.path.join(self.dir, "ortho.jp2"), self.data, driver="JP2OpenJPEG",
                      QUALITY="100", REVERSIBLE="YES")
        got = read_raster(path)
        self.assertEqual(got.array.dtype, np.uint16)
        self.assertAllEqual(got.array, self.data)
        self.assertIsNone(got.valid)

    def test_vrt_mosaic_with_nodata_reads_exactly(self):
        data = self.data.copy()
        data[:3, :4] = 0
        _write(os.path.join(self.dir, "part.tif"), data, nodata=0, compress="deflate")
        vrt = os.path.join(self.dir, "mosaic.vrt")
        rows = "".join(
            f'<VRTRasterBand dataType="UInt16" band="{b}"><NoDataValue>0</NoDataValue>'
            f'<SimpleSource><SourceFilename relativeToVRT="1">part.tif</SourceFilename>'
            f'<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>' for b in (1, 2, 3))
        with open(vrt, "w", encoding="utf-8") as f:
            f.write(f'<VRTDataset rasterXSize="56" rasterYSize="40">{rows}</VRTDataset>')
        got = read_raster(vrt)
        self.assertAllEqual(got.array, data)
        expected = np.ones((40, 56), bool)
        expected[:3, :4] = False
        self.assertAllEqual(got.valid, expected)

    def test_tiff_codec_the_core_lacks_is_read_by_gdal(self):
        path = _write(os.path.join(self.dir, "lzw.tif"), self.data, compress="lzw")
        from tifffile import _imagecodecs as pure_python  # pylint: disable=import-outside-toplevel
        # As if imagecodecs were missing: tifffile's pure-Python codecs have no LZW.
        with mock.patch.dict(sys.modules, {"imagecodecs": None}), \
                mock.patch.object(tifffile.tifffile, "imagecodecs", pure_python), \
                mock.patch.object(tifffile.TIFF, "DECOMPRESSORS",
                                  tifffile.tifffile.CompressionCodec(encode=False)):
            got = read_raster(path)
        self.assertAllEqual(got.array, self.data)

    def test_without_rasterio_one_line_names_the_extra(self):
        path = _write(os.path.join(self.dir, "ortho.jp2"), self.data, driver="JP2OpenJPEG",
                      QUALITY="100", REVERSIBLE="YES")
        with mock.patch.object(raster_gdal, "available", lambda: False):
            with self.assertRaisesRegex(TileError, r"^[^\n]*ortho\.jp2: a JPEG 2000 or VRT raster"
                                        r".*pip install 'ortholoop\[geo\]'[^\n]*$"):
                read_raster(path)
        self.assertIn("rasterio", sys.modules)


if __name__ == "__main__":
    tf.test.main()
