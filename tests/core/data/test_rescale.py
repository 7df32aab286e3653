"""Tests for core.data.rescale against hand-computed values."""
import numpy as np
import tensorflow as tf

from core.data import rescale


class RescaleTest(tf.test.TestCase):

    def test_dtype_maps_full_ranges(self):
        u16 = np.array([[[0, 257, 32768, 65535]]], np.uint16).reshape(1, 4, 1)
        got = rescale.rescale(u16, "dtype", "uint8")
        self.assertEqual(got.dtype, np.float32)
        # x * 255/65535 rounded: 0, 1, 127.5 -> 128, 255.
        self.assertAllEqual(got[..., 0], [[0, 1, 128, 255]])
        u8 = np.array([0, 1, 128, 255], np.uint8).reshape(1, 4, 1)
        self.assertAllEqual(rescale.rescale(u8, "dtype", "uint16")[..., 0],
                            [[0, 257, 32896, 65535]])
        # int16 spans -32768..32767; float32 spans 0..1.
        i16 = np.array([-32768, 0, 32767], np.int16).reshape(1, 3, 1)
        self.assertAllEqual(rescale.rescale(i16, "dtype", "uint8")[..., 0], [[0, 128, 255]])
        f32 = np.array([0.0, 0.5, 1.0, 1.2], np.float32).reshape(1, 4, 1)
        self.assertAllEqual(rescale.rescale(f32, "dtype", "uint8")[..., 0],
                            [[0, 128, 255, 255]])                 # clipped to uint8
        # Towards float32: no rounding.
        self.assertAllClose(rescale.rescale(u8, "dtype", "float32")[..., 0],
                            [[0, 1 / 255, 128 / 255, 1]])
        # Every uint8 value comes back from uint8 * 257.
        all8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
        self.assertAllEqual(rescale.rescale(all8.astype(np.uint16) * 257, "dtype", "uint8"),
                            all8)

    def test_range_maps_each_band_over_valid_pixels(self):
        image = np.zeros((2, 3, 2), np.uint16)
        image[..., 0] = [[100, 200, 300], [400, 500, 65535]]      # 65535: no data
        image[..., 1] = 7                                          # constant
        valid = np.ones((2, 3), bool)
        valid[1, 2] = False
        got = rescale.rescale(image, "range", "uint8", bands=["R", "G"], valid=valid,
                              band_ranges={"R": [10, 50], "G": [3, 9]})
        # R: 100..500 -> 10..50; G constant -> its training min.
        self.assertAllEqual(got[..., 0][valid], [10, 20, 30, 40, 50])
        self.assertAllEqual(got[..., 1], np.full((2, 3), 3))
        self.assertEqual(got[1, 2, 0], 255)                        # far out: clipped
        with self.assertRaisesRegex(ValueError, r"^x.tif: --rescale_input=range needs the "
                                                r"training range of each band; the model "
                                                r"records \['R'\]$"):
            rescale.rescale(image, "range", "uint8", bands=["R", "G"], path="x.tif",
                            band_ranges={"R": [0, 1]})

    def test_none_and_errors(self):
        image = np.array([[[3, 70000]]], np.int32)
        self.assertAllEqual(rescale.rescale(image, "none", "uint8"), [[[3, 70000]]])
        with self.assertRaisesRegex(ValueError, "rescale mode 'stretch'"):
            rescale.rescale(image, "stretch", "uint8")


if __name__ == "__main__":
    tf.test.main()
