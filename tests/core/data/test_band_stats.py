"""core.data.band_stats against NumPy over the valid pixels of each band."""
import numpy as np
from absl.testing import parameterized
import tensorflow as tf

from core.data import band_stats


class BandStatsTest(parameterized.TestCase, tf.test.TestCase):

    @parameterized.parameters("uint8", "uint16", "int16", "float32")
    def test_matches_numpy_over_valid_pixels_of_two_tiles(self, dtype):
        rng = np.random.default_rng(3)
        info = np.iinfo(dtype) if dtype != "float32" else None
        lo, hi = (info.min, info.max) if info else (-50.0, 3000.0)
        tiles = [rng.uniform(lo, hi, (37, 41, 3)).astype(dtype) for _ in range(2)]
        valids = [rng.random((37, 41)) > 0.3, None]
        sums = [band_stats.tile_sums(t, v) for t, v in zip(tiles, valids)]
        got = band_stats.combine(sums)
        for c in range(3):
            values = np.concatenate([tiles[0][..., c][valids[0]],
                                     tiles[1][..., c].ravel()]).astype(np.float64)
            self.assertEqual(got[c]["count"], values.size)
            self.assertAllClose(got[c]["mean"], values.mean(), rtol=1e-12)
            self.assertAllClose(got[c]["std"], values.std(), rtol=1e-9)
            self.assertEqual(got[c]["min"], values.min())
            self.assertEqual(got[c]["max"], values.max())

    def test_hand_computed_single_band(self):
        band = np.array([[1, 2], [3, 250]], np.uint8)
        valid = np.array([[True, True], [True, False]])
        (got,) = band_stats.combine([band_stats.tile_sums(band, valid)])
        self.assertEqual((got["mean"], got["min"], got["max"], got["count"]),
                         (2.0, 1.0, 3.0, 3))
        self.assertAllClose(got["std"], np.sqrt(2 / 3))

    def test_constant_band_has_zero_std_and_nan_is_left_out(self):
        band = np.full((300, 7), 1234.5678, np.float32)
        band[0, 0] = np.nan
        (got,) = band_stats.combine([band_stats.tile_sums(band, None)])
        self.assertEqual(got["std"], 0.0)
        self.assertEqual(got["count"], 300 * 7 - 1)

    def test_no_valid_pixel(self):
        band = np.ones((4, 4, 1), np.uint16)
        (got,) = band_stats.combine([band_stats.tile_sums(band, np.zeros((4, 4), bool))])
        self.assertEqual((got["count"], got["mean"], got["std"]), (0, 0.0, 0.0))


if __name__ == "__main__":
    tf.test.main()
