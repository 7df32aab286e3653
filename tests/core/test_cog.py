"""core.cog: COGs read back with rasterio (GDAL) and with the core reader."""
import os
import tempfile

import numpy as np
import rasterio
import tensorflow as tf
from rasterio.transform import from_origin

from core import cog
from core.data.raster import read_raster

CRS = rasterio.crs.CRS.from_epsg(25832)
TRANSFORM = from_origin(366000.0, 5808000.0, 0.05, 0.05)


class CogTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp()
        rng = np.random.default_rng(0)
        # Blocks of one class (so a nearest overview is checkable) and no data.
        cls.classes = np.kron(rng.integers(0, 3, (9, 11)), np.ones((128, 128), int))[
            :1100, :1300].astype(np.uint8)
        cls.classes[:10] = 255
        cls.probs = rng.integers(0, 256, (1100, 1300, 3)).astype(np.uint8)
        cls.class_path = os.path.join(cls.dir, "c.tif")
        cls.prob_path = os.path.join(cls.dir, "p.tif")
        cog.write_cog(cls.class_path, cls.classes, crs=CRS, transform=TRANSFORM, nodata=255,
                      colormap=cog.palette_colormap([(255, 0, 0), (0, 255, 0), (0, 0, 255)]))
        # Probabilities in a streamed write of 4 uneven windows.
        with cog.CogWriter(cls.prob_path, height=1100, width=1300, count=3, crs=CRS,
                           transform=TRANSFORM, resampling="average", masked=True) as w:
            for r0, r1, c0, c1 in ((0, 700, 0, 300), (0, 700, 300, 1300),
                                   (700, 1100, 0, 900), (700, 1100, 900, 1300)):
                w.write(cls.probs[r0:r1, c0:c1], r0, c0,
                        valid=cls.classes[r0:r1, c0:c1] != 255)

    def test_class_cog_layout_values_and_georeferencing(self):
        with rasterio.open(self.class_path) as ds:
            self.assertEqual(ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"], "COG")
            self.assertEqual(ds.profile["compress"], "deflate")
            self.assertTrue(ds.profile["tiled"])
            self.assertEqual(ds.block_shapes, [(512, 512)])
            self.assertEqual(ds.overviews(1), [2, 4])
            self.assertEqual(ds.nodata, 255)
            self.assertEqual(ds.crs.to_epsg(), 25832)
            self.assertEqual(ds.transform, TRANSFORM)
            self.assertEqual(ds.colormap(1)[2], (0, 0, 255, 255))
            self.assertAllEqual(ds.read(1), self.classes)
            # nearest: every overview pixel is one of the full-resolution pixels
            # it covers (never an average that invents a class).
            half = ds.read(1, out_shape=(550, 650))
        self.assertAllEqual(half, self.classes[::2, ::2])
        # The project's own reader (tifffile) reads the full resolution.
        self.assertAllEqual(read_raster(self.class_path).array[..., 0], self.classes)
        self.assertEqual(sorted(os.listdir(self.dir)), ["c.tif", "p.tif"])  # no scratch left

    def test_probability_cog_is_averaged_and_masked(self):
        with rasterio.open(self.prob_path) as ds:
            self.assertEqual(ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"], "COG")
            self.assertEqual(ds.overviews(1), [2, 4])
            self.assertEqual(ds.block_shapes, [(512, 512)] * 3)
            self.assertEqual(ds.crs.to_epsg(), 25832)
            self.assertAllEqual(np.moveaxis(ds.read(), 0, -1), self.probs)
            self.assertAllEqual(ds.dataset_mask() == 255, self.classes != 255)
            half = ds.read(2, out_shape=(550, 650))
        # average over 2x2 blocks (rows 12.. hold data in all four pixels)
        want = self.probs[12:, :, 1].reshape(544, 2, 650, 2).astype(float).mean((1, 3))
        self.assertAllClose(half[6:], want, atol=1.0)


if __name__ == "__main__":
    tf.test.main()
