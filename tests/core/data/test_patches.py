"""Tests for core.data.patches: grids cover borders, windows, scaling."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.data import patches


class GridTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(
        (10, 4, 4, [0, 4, 6]),     # border window aligned to the far edge
        (8, 4, 4, [0, 4]),         # exact fit: no extra window
        (10, 4, 3, [0, 3, 6]),     # overlap, last one reaches 10
        (11, 4, 3, [0, 3, 6, 7]),
        (4, 4, 4, [0]),
        (5, 4, 8, [0, 1]))         # stride > size still covers the end
    def test_starts_by_hand(self, length, size, stride, expected):
        self.assertAllEqual(patches.grid_starts(length, size, stride), expected)

    @parameterized.parameters((37, 50, 16, None), (64, 64, 16, 8), (10, 100, 16, 5),
                              (33, 17, 8, 3), (5, 5, 8, None))
    def test_windows_cover_every_pixel(self, h, w, size, stride):
        corners = patches.grid_windows(h, w, size, stride)
        ph, pw = patches.padded_shape(h, w, size)
        cover = np.zeros((ph, pw), int)
        for y, x in corners:
            self.assertTrue(0 <= y <= ph - size and 0 <= x <= pw - size)
            cover[y:y + size, x:x + size] += 1
        self.assertTrue((cover[:h, :w] >= 1).all())
        self.assertEqual(len(corners), patches.num_grid_windows(h, w, size, stride))
        self.assertLen({tuple(c) for c in corners}, len(corners))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "stride must be >= 1"):
            patches.grid_starts(10, 4, 0)
        with self.assertRaisesRegex(ValueError, "pad the tile first"):
            patches.grid_starts(3, 4, 4)
        with self.assertRaisesRegex(ValueError, "scale must be > 0"):
            patches.scaled_shape(10, 10, 0.0)

    def test_scaled_shape(self):
        self.assertEqual(patches.scaled_shape(6000, 6000, 0.5), (3000, 3000))
        self.assertEqual(patches.scaled_shape(101, 33, 0.5), (50, 16))  # round half to even
        self.assertEqual(patches.scaled_shape(3, 3, 0.1), (1, 1))


class WindowOpsTest(tf.test.TestCase):

    def test_random_windows_in_bounds_and_seeded(self):
        corners = patches.random_windows(tf.constant([1, 2]), 40, 70, 16, 2000).numpy()
        self.assertEqual(corners.shape, (2000, 2))
        self.assertEqual(corners[:, 0].min(), 0)
        self.assertEqual(corners[:, 0].max(), 40 - 16)
        self.assertEqual(corners[:, 1].max(), 70 - 16)
        again = patches.random_windows(tf.constant([1, 2]), 40, 70, 16, 2000).numpy()
        other = patches.random_windows(tf.constant([1, 3]), 40, 70, 16, 2000).numpy()
        self.assertAllEqual(corners, again)
        self.assertNotAllEqual(corners, other)

    def test_cut_window_matches_numpy(self):
        tile = np.arange(9 * 11 * 2).reshape(9, 11, 2)
        out = patches.cut_window(tf.constant(tile), tf.constant([3, 5]), 4)
        self.assertEqual(out.shape, (4, 4, 2))
        self.assertAllEqual(out, tile[3:7, 5:9])
        label = np.arange(99).reshape(9, 11)
        self.assertAllEqual(patches.cut_window(tf.constant(label), [5, 7], 4), label[5:9, 7:11])

    def test_pad_to_window(self):
        image = tf.ones([3, 5, 2], tf.uint8)
        label = tf.zeros([3, 5], tf.uint8)
        elev = tf.ones([3, 5, 1])
        pi, pl, pe = patches.pad_to_window(image, label, 4, elev)
        self.assertEqual(pi.shape, (4, 5, 2))
        self.assertAllEqual(pl[3], [255] * 5)
        self.assertAllEqual(pl[:3], np.zeros((3, 5)))
        self.assertAllEqual(pi[3], np.zeros((5, 2)))
        self.assertAllEqual(pe[3], np.zeros((5, 1)))

    def test_resize_tile_half_is_block_mean(self):
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
        label = rng.integers(0, 6, (8, 12), dtype=np.uint8)
        elev = rng.normal(size=(8, 12, 1)).astype(np.float32)
        ri, rl, re = patches.resize_tile(tf.constant(image), tf.constant(label), (4, 6),
                                         tf.constant(elev))
        block = image.reshape(4, 2, 6, 2, 3).astype(np.float64).mean(axis=(1, 3))
        self.assertEqual(ri.dtype, tf.uint8)
        self.assertAllClose(ri.numpy().astype(float), block, atol=0.5 + 1e-6)
        self.assertAllClose(re, elev.reshape(4, 2, 6, 2, 1).mean(axis=(1, 3)), atol=1e-5)
        # Nearest neighbour: every output label is one of its 2x2 block's.
        blocks = label.reshape(4, 2, 6, 2).transpose(0, 2, 1, 3).reshape(4, 6, 4)
        self.assertTrue((blocks == rl.numpy()[..., None]).any(-1).all())

    def test_random_counts_follow_area(self):
        areas = [1850, 1230, 2025]
        # Shares 10 * areas / 5105 = 3.62, 2.41, 3.97; offset 0 cuts the
        # cumulative 0, 36.2, 60.3, 100 (in tenths) at whole windows: 3, 3, 4.
        self.assertAllEqual(patches.random_counts(10, areas, 0), [3, 3, 4])
        every = patches.random_counts(10, areas, tf.range(5105)[:, None]).numpy()
        self.assertEqual(every.shape, (5105, 3))
        self.assertTrue((every.sum(1) == 10).all())
        share = 10 * np.array(areas) / 5105
        self.assertTrue(((every == np.floor(share)) | (every == np.ceil(share))).all())
        # Over all offsets, exactly each tile's share.
        self.assertAllEqual(every.sum(0), [10 * a for a in areas])
        # Fewer windows than tiles: each tile still comes up, half the epochs.
        few = patches.random_counts(2, [5, 5, 5, 5], tf.range(20)[:, None]).numpy()
        self.assertAllEqual(few.sum(0), [10, 10, 10, 10])
        self.assertAllEqual(patches.random_counts(0, [3, 4], 2), [0, 0])


if __name__ == "__main__":
    tf.test.main()
