"""Tests for core/data/labels.py against hand-built arrays and NumPy loops."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.data import labels

P = labels.POTSDAM.palette
WHITE, BLUE, CYAN, GREEN, YELLOW, RED = P


class SpecTest(tf.test.TestCase, parameterized.TestCase):

    def test_potsdam_order_and_colours(self):
        spec = labels.get_label_spec("Potsdam")
        self.assertEqual(spec.num_classes, 6)
        self.assertEqual(spec.class_names,
                         ("impervious_surfaces", "building", "low_vegetation",
                          "tree", "car", "clutter"))
        self.assertEqual(spec.palette,
                         ((255, 255, 255), (0, 0, 255), (0, 255, 255),
                          (0, 255, 0), (255, 255, 0), (255, 0, 0)))

    def test_inria(self):
        spec = labels.get_label_spec("inria")
        self.assertEqual(spec.num_classes, 2)
        self.assertEqual(spec.class_names, ("background", "building"))

    def test_unknown_name(self):
        with self.assertRaisesRegex(ValueError, "Unknown label spec 'vaihingen'"):
            labels.get_label_spec("vaihingen")

    @parameterized.parameters(
        (((1, 2, 3), (1, 2, 3)), "repeats"),
        (((1, 2, 300),), "0..255"),
        (((1, 2),), "triple"),
        ((), "1..255"))
    def test_bad_palette(self, palette, message):
        with self.assertRaisesRegex(ValueError, message):
            labels.index_to_rgb(np.zeros((2, 2), np.uint8), palette)

    def test_spec_length_mismatch(self):
        with self.assertRaisesRegex(ValueError, "2 class names but 1 palette"):
            labels.LabelSpec("x", ("a", "b"), ((1, 2, 3),))


class RgbCodecTest(tf.test.TestCase):

    def test_hand_built_decode(self):
        rgb = np.array([[WHITE, BLUE, CYAN],
                        [GREEN, YELLOW, RED],
                        [(0, 0, 0), (12, 200, 7), (255, 255, 254)]],
                       dtype=np.uint8)
        ids, num_unknown = labels.rgb_to_index(rgb, P)
        self.assertEqual(ids.dtype, np.uint8)
        self.assertAllEqual(ids, [[0, 1, 2], [3, 4, 5], [255, 255, 255]])
        self.assertEqual(num_unknown, 3)

    def test_matches_numpy_loop_reference(self):
        rng = np.random.default_rng(1)
        # Palette colours mixed with near-misses (one channel off by one).
        colours = np.array(list(P) + [(0, 0, 0), (0, 0, 254), (1, 255, 0)],
                           np.uint8)
        rgb = colours[rng.integers(0, len(colours), (37, 23))]
        ref = np.full(rgb.shape[:2], 255, np.uint8)
        for i in range(rgb.shape[0]):
            for j in range(rgb.shape[1]):
                colour = tuple(int(c) for c in rgb[i, j])
                if colour in P:
                    ref[i, j] = P.index(colour)
        ids, num_unknown = labels.rgb_to_index(rgb, P)
        self.assertAllEqual(ids, ref)
        self.assertEqual(num_unknown, int((ref == 255).sum()))

    def test_round_trip(self):
        rng = np.random.default_rng(2)
        ids = rng.integers(0, 6, (31, 17)).astype(np.uint8)
        ids[3:5, 4:9] = 255
        rgb = labels.index_to_rgb(ids, P)
        self.assertEqual(rgb.shape, (31, 17, 3))
        self.assertAllEqual(rgb[3, 4], (0, 0, 0))
        back, num_unknown = labels.rgb_to_index(rgb, P)
        self.assertAllEqual(back, ids)
        self.assertEqual(num_unknown, 10)

    def test_encode_hand_built_and_ignore_colour(self):
        ids = np.array([[0, 5], [255, 7]], np.int64)
        rgb = labels.index_to_rgb(ids, P, ignore_color=(9, 8, 7))
        self.assertAllEqual(rgb, [[WHITE, RED], [(9, 8, 7), (9, 8, 7)]])

    def test_encode_rejects_out_of_range(self):
        with self.assertRaisesRegex(ValueError, "0..255"):
            labels.index_to_rgb(np.array([[-1, 0]]), P)
        with self.assertRaisesRegex(ValueError, "integer"):
            labels.index_to_rgb(np.zeros((2, 2), np.float32), P)

    def test_decode_rejects_wrong_shape_or_dtype(self):
        with self.assertRaisesRegex(ValueError, r"\[H,W,3\] uint8"):
            labels.rgb_to_index(np.zeros((4, 4, 4), np.uint8), P)
        with self.assertRaisesRegex(ValueError, r"\[H,W,3\] uint8"):
            labels.rgb_to_index(np.zeros((4, 4, 3), np.int32), P)

    def test_other_palette_is_not_mixed_with_cached_one(self):
        rgb = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
        ids, n = labels.rgb_to_index(rgb, labels.INRIA.palette)
        self.assertAllEqual(ids, [[0, 1]])
        self.assertEqual(n, 0)
        ids, n = labels.rgb_to_index(rgb, P)
        self.assertAllEqual(ids, [[255, 0]])
        self.assertEqual(n, 1)


class BinaryAndIndexMaskTest(tf.test.TestCase):

    def test_binary_decode(self):
        mask = np.array([[0, 255, 1], [128, 255, 0]], np.uint8)
        ids, n = labels.binary_mask_to_index(mask[..., None])
        self.assertAllEqual(ids, [[0, 1, 255], [255, 1, 0]])
        self.assertEqual(n, 2)

    def test_binary_round_trip_and_encode(self):
        ids = np.array([[0, 1], [255, 1]], np.uint8)
        mask = labels.index_to_binary_mask(ids)
        self.assertEqual(mask.dtype, np.uint8)
        self.assertAllEqual(mask, [[0, 255], [0, 255]])
        back, n = labels.binary_mask_to_index(mask)
        self.assertAllEqual(back, [[0, 1], [0, 1]])
        self.assertEqual(n, 0)

    def test_binary_rejects_rgb(self):
        with self.assertRaisesRegex(ValueError, "0/255 mask"):
            labels.binary_mask_to_index(np.zeros((3, 3, 3), np.uint8))

    def test_check_index_mask(self):
        ids = np.array([[0, 5, 6], [255, -3, 300]], np.int32)
        out, n = labels.check_index_mask(ids, 6)
        self.assertEqual(out.dtype, np.uint8)
        self.assertAllEqual(out, [[0, 5, 255], [255, 255, 255]])
        self.assertEqual(n, 3)

    def test_check_index_mask_rejects_bad_num_classes(self):
        with self.assertRaisesRegex(ValueError, "num_classes"):
            labels.check_index_mask(np.zeros((2, 2), np.uint8), 0)


class ColorizeTfTest(tf.test.TestCase):

    def test_equals_numpy_encoder(self):
        rng = np.random.default_rng(3)
        ids = rng.integers(0, 6, (2, 9, 11)).astype(np.int32)
        ids[0, 0, :4] = [255, 6, 100, 254]
        got = labels.colorize_tf(tf.constant(ids), P)
        self.assertEqual(got.dtype, tf.uint8)
        self.assertAllEqual(got, labels.index_to_rgb(ids, P))

    def test_inside_tf_function_with_uint8_and_negative(self):
        fn = tf.function(lambda x: labels.colorize_tf(x, P, (1, 2, 3)))
        got = fn(tf.constant([[0, 4], [-1, 255]], tf.int64))
        self.assertAllEqual(got, [[WHITE, YELLOW], [(1, 2, 3), (1, 2, 3)]])
        got = labels.colorize_tf(tf.constant([[1, 3]], tf.uint8), P)
        self.assertAllEqual(got, [[BLUE, GREEN]])


if __name__ == "__main__":
    tf.test.main()
