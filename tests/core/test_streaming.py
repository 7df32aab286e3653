"""core.streaming: block-by-block prediction equals the in-memory TilePredictor;
GdalRaster's windows equal core.data.raster.read_raster."""
import os
import tempfile

import numpy as np
import rasterio
import tensorflow as tf
from rasterio.transform import from_origin

from core import inference, streaming
from core.data.raster import read_raster
from layers import UNet


def tiny_model(channels=3, classes=3):
    model = UNet(classes, in_channels=channels, filters=4, depth=3, mean=[100.0] * channels,
                 std=[50.0] * channels)
    model(tf.zeros([1, 8, 8, channels]), training=False)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(scale=0.4, size=v.shape).astype(np.float32))
    return model


def stream(predictor, image, block, valid=None):
    """Runs StreamPredictor on an in-memory image; returns the assembled
    probabilities, the blocks written and the windows counted."""
    height, width = image.shape[:2]
    out = np.full(image.shape[:2] + (3,), np.nan, np.float32)
    written, counted = [], []

    def read(r0, r1, c0, c1):
        return image[r0:r1, c0:c1], None if valid is None else valid[r0:r1, c0:c1]

    def write(r0, c0, probs, block_valid):
        self_check = out[r0:r0 + probs.shape[0], c0:c0 + probs.shape[1]]
        assert np.isnan(self_check).all(), "a pixel written twice"
        out[r0:r0 + probs.shape[0], c0:c0 + probs.shape[1]] = probs
        written.append((r0, c0, probs.shape[:2], block_valid))

    streamer = streaming.StreamPredictor(predictor, block=block)
    streamer(read, height, width, write, progress=counted.append)
    return out, written, sum(counted), streamer.num_windows(height, width)


class StreamPredictorTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = tiny_model()
        rng = np.random.default_rng(3)
        cls.image = rng.integers(0, 256, (90, 110, 3)).astype(np.float32)
        # One predictor (one tf.function trace) for the tests.
        cls.predictor = inference.TilePredictor(cls.model, window=32, overlap=0.25,
                                                tta="0,6", batch_size=3)

    def test_streamed_equals_in_memory(self):
        predictor = self.predictor
        want = predictor(self.image)
        got, written, counted, planned = stream(predictor, self.image, block=40)
        self.assertAllClose(got, want, atol=1e-6, rtol=0)
        self.assertAllEqual(inference.probabilities_to_classes(got),
                            inference.probabilities_to_classes(want))
        # 3 x 3 blocks of at most 40 px, each written once, in row-major order.
        self.assertEqual([(r, c) for r, c, _, _ in written],
                         [(r, c) for r in range(0, 90, 40) for c in range(0, 110, 40)])
        self.assertEqual(counted, planned)
        # No window twice along a row of blocks: windows = grid rows reaching
        # each block row x all grid columns.
        ys = inference.window_grid(90, 32, 0.25)
        xs = inference.window_grid(110, 32, 0.25)
        rows = sum(sum(1 for y in ys if max(y, 0) < min(r + 40, 90) and y + 32 > r)
                   for r in range(0, 90, 40))
        self.assertEqual(planned, rows * len(xs))
        self.assertGreater(planned, len(ys) * len(xs))  # block-row edges cost more

    def test_tile_smaller_than_half_a_window_and_masks(self):
        predictor = self.predictor
        small = self.image[:10, :7]
        valid = np.ones((10, 7), bool)
        valid[2, 3] = False
        got, written, _, _ = stream(predictor, small, block=4, valid=valid)
        self.assertAllClose(got, predictor(small), atol=1e-6, rtol=0)
        self.assertEqual([w[:3] for w in written[:3]], [(0, 0, (4, 4)), (0, 4, (4, 3)),
                                                         (4, 0, (4, 4))])
        self.assertAllEqual(written[2][3], valid[4:8, 0:4])  # the block's own mask

    def test_memory_bound_does_not_grow_with_the_raster(self):
        bound = streaming.peak_memory_bytes(window=512, overlap=0.25, batch_size=4,
                                            channels=4, num_classes=6, block=2048)
        self.assertEqual(bound["accumulators"], 2048 * 2048 * 7 * 4)
        self.assertEqual(bound["kept_windows"], 7 * 2 * 512 * 512 * 6 * 4)
        self.assertLess(bound["total"], 1 << 30)
        # The in-memory accumulators alone for 30000 x 30000 x 6 classes:
        memory = inference.peak_memory_bytes(30000, 30000, 4, 6)["accumulators"]
        self.assertGreater(memory, 20 * bound["total"])


class GdalRasterTest(tf.test.TestCase):

    def test_windows_equal_the_whole_file_reader(self):
        root = tempfile.mkdtemp()
        rng = np.random.default_rng(1)
        pixels = rng.integers(1, 65535, (3, 70, 90)).astype(np.uint16)
        pixels[:, 5:9, 10:20] = 0  # nodata on every band
        pixels[1, 30, 30] = 0      # on one band only: data
        path = os.path.join(root, "a.tif")
        with rasterio.open(path, "w", driver="GTiff", height=70, width=90, count=3,
                           dtype="uint16", nodata=0, crs="EPSG:25832",
                           transform=from_origin(0, 70, 1, 1)) as ds:
            ds.write(pixels)
        whole = read_raster(path)
        with streaming.GdalRaster(path) as raster:
            self.assertEqual((raster.height, raster.width, raster.count), (70, 90, 3))
            self.assertEqual(raster.dtype, np.uint16)
            self.assertEqual(raster.crs.to_epsg(), 25832)
            array, valid = raster.read(3, 40, 8, 50)
            self.assertEqual(streaming.valid_mean(raster), 0.0 + pixels[0][
                (pixels != 0).any(0)].mean())
        self.assertAllEqual(array, whole.array[3:40, 8:50])
        self.assertAllEqual(valid, whole.valid[3:40, 8:50])
        self.assertTrue(valid[25, 20] and not valid[2, 2])


if __name__ == "__main__":
    tf.test.main()
