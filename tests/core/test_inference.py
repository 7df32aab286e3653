"""Tests for core.inference: windows, blending, reflection, TTA, graph version.

The models are small tf.Modules written here: a 3x3 convolution with zero
'SAME' padding (translation invariant away from window edges, so seams show
exactly where windows end) and the same with a D4-symmetric kernel (exactly
equivariant under the 8 flips/rotations). References are NumPy.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import inference
from tests.helpers import random_conv


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_conv_probs(model, image):
    """NumPy reference: softmax(conv(image)) with zero padding, [H,W,K]."""
    kernel, bias = model.kernel.numpy(), model.bias.numpy()
    r = kernel.shape[0] // 2
    padded = np.pad(image.astype(np.float32), ((r, r), (r, r), (0, 0)))
    h, w = image.shape[:2]
    out = np.zeros((h, w, kernel.shape[-1]), np.float64) + bias
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            out += padded[i:i + h, j:j + w] @ kernel[i, j]
    return np_softmax(out)


def np_full_context(model, image, pad=4):
    """Reference with full context: the model on the reflect-padded tile."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return np_conv_probs(model, padded)[pad:-pad, pad:-pad]


class GridTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((5, 0, 7), (5, 9, 3), (1, 4, 4), (7, 30, 2), (2, 5, 5))
    def test_reflect_indices_equal_numpy_pad(self, size, before, after):
        want = np.pad(np.arange(size), (before, after), mode="reflect")
        positions = np.arange(-before, size + after)
        self.assertAllEqual(inference.reflect_indices(positions, size), want)
        self.assertAllEqual(inference.reflect_indices_tf(
            tf.constant(positions, tf.int32), tf.constant(size)), want)

    def test_grid_exact_tiling_and_margins(self):
        self.assertEqual(inference.window_grid(64, 32, 0.0), [0, 32])
        # stride 24, margin 4: covers [-4, 68), centred on the tile.
        starts = inference.window_grid(64, 32, 0.25)
        self.assertEqual(starts, [-8, 16, 40])
        self.assertLessEqual(starts[0], -4)
        self.assertGreaterEqual(starts[-1] + 32, 68)
        self.assertEqual(inference.window_grid(10, 32, 0.5), [-11])

    def test_window_weights_hann(self):
        w = inference.window_weights(8, min_weight=0.0)
        h = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(8) + 0.5) / 8)
        self.assertAllClose(w, np.outer(h, h), atol=1e-6)
        self.assertAllClose(w, w[::-1, ::-1])
        self.assertAllGreaterEqual(inference.window_weights(8, 1e-3), 1e-3)

    def test_parse_tta(self):
        self.assertEqual(inference.parse_tta(False), (0,))
        self.assertEqual(inference.parse_tta(True), tuple(range(8)))
        self.assertEqual(inference.parse_tta("flips"), (0, 4, 6))
        self.assertEqual(inference.parse_tta("0,3,3"), (0, 3))
        for bad in ("sideways", "0,9", []):
            with self.assertRaisesRegex(ValueError, "test-time augmentation"):
                inference.parse_tta(bad)

    def test_dihedral_matches_numpy_and_inverts(self):
        x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
        seen = set()
        for k in range(8):
            flipped = x[:, :, ::-1] if k >= 4 else x
            want = np.rot90(flipped, k % 4, axes=(1, 2))
            got = inference.dihedral(tf.constant(x), k)
            self.assertAllEqual(got, want)
            self.assertAllEqual(inference.inverse_dihedral(got, k), x)
            seen.add(want.tobytes())
        self.assertLen(seen, 8)

    def test_peak_memory_hand_computed(self):
        got = inference.peak_memory_bytes(6000, 6000, 5, 6, window=512, batch_size=4)
        self.assertEqual(got["accumulators"], 6000 * 6000 * 7 * 4)
        self.assertEqual(got["batch"], 4 * 512 * 512 * 4 * (10 + 12))


class BlendingTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        # Small values keep the softmax away from saturation (seams stay visible).
        self.image = np.random.default_rng(1).normal(0, 0.5, (96, 96, 3)).astype(np.float32)

    def test_pointwise_model_same_everywhere(self):
        # A 1x1 convolution is translation invariant: exact tiling and
        # overlapping windows give the model's own per-pixel output, seamlessly.
        model = random_conv(size=1)
        want = np_conv_probs(model, self.image)
        exact = inference.predict_tile(model, self.image, window=32, overlap=0.0)
        blended = inference.predict_tile(model, self.image, window=32, overlap=0.5,
                                         batch_size=3)
        self.assertAllClose(exact, want, atol=2e-5)
        self.assertAllClose(blended, want, atol=2e-5)
        self.assertAllEqual(inference.probabilities_to_classes(exact),
                            inference.probabilities_to_classes(blended))
        # Along window edges of the overlapping grid (stride 16): no seam.
        edges = [s for s in range(0, 96, 16)] + [s - 1 for s in range(16, 96, 16)]
        self.assertAllClose(blended[edges], want[edges], atol=2e-5)
        self.assertAllClose(blended[:, edges], want[:, edges], atol=2e-5)

    def test_blending_removes_seams_of_a_spatial_model(self):
        # With a 3x3 kernel, a pixel on a window edge sees zero padding; exact
        # tiling shows that as a seam, blended windows hide it.
        model = random_conv(size=3, seed=3)
        want = np_full_context(model, self.image)
        exact = inference.predict_tile(model, self.image, window=32, overlap=0.0)
        blended = inference.predict_tile(model, self.image, window=32, overlap=0.5)
        edges = [31, 32, 63, 64]  # internal window edges of the exact tiling
        seam = np.abs(exact[edges] - want[edges]).max()
        self.assertGreater(seam, 0.05)
        # Elsewhere the exact tiling is exact (without overlap there is no
        # margin, so the tile's own border rows see zero padding too).
        inner = [r for r in range(1, 95) if r not in edges]
        self.assertAllClose(exact[inner][:, inner], want[inner][:, inner], atol=1e-4)
        self.assertLess(np.abs(blended - want).max(), seam / 50)

    def test_tile_smaller_than_window_is_reflected(self):
        model = random_conv(size=3, seed=4)
        tile = self.image[:20, :13]
        got = inference.predict_tile(model, tile, window=32, overlap=0.25)
        self.assertEqual(got.shape, (20, 13, 4))
        # One window: the reflected 32x32 canvas, offsets (32-20)//2, (32-13)//2.
        canvas = np.pad(tile, ((6, 6), (9, 10), (0, 0)), mode="reflect")
        self.assertAllClose(got, np_conv_probs(model, canvas)[6:26, 9:22], atol=1e-5)

    def test_batch_size_does_not_change_result(self):
        model = random_conv(size=3, seed=5)
        a = inference.predict_tile(model, self.image[:70], window=32, overlap=0.25, batch_size=1)
        b = inference.predict_tile(model, self.image[:70], window=32, overlap=0.25, batch_size=5)
        self.assertAllClose(a, b, atol=1e-6)

    def test_bad_arguments(self):
        model = random_conv(depth=3)
        with self.assertRaisesRegex(ValueError, "multiple of 8"):
            inference.TilePredictor(model, window=30)
        with self.assertRaisesRegex(ValueError, "overlap"):
            inference.TilePredictor(model, window=32, overlap=1.0)
        with self.assertRaisesRegex(ValueError, r"\[H,W,C\]"):
            inference.predict_tile(model, self.image[..., 0], window=32)


class TTATest(tf.test.TestCase):

    def test_equivariant_model_returns_plain_prediction(self):
        model = random_conv(size=3, seed=6, symmetric=True)
        image = np.random.default_rng(2).normal(size=(40, 56, 3)).astype(np.float32)
        plain = inference.predict_tile(model, image, window=32, overlap=0.25)
        tta = inference.predict_tile(model, image, window=32, overlap=0.25, tta=True)
        self.assertAllClose(tta, plain, atol=1e-5)

    def test_tta_averages_transformed_predictions(self):
        model = random_conv(size=3, seed=7)  # not symmetric: TTA changes the result
        image = np.random.default_rng(3).normal(size=(32, 32, 3)).astype(np.float32)
        got = inference.predict_tile(model, image, window=32, overlap=0.0, tta="d4")
        want = np.zeros_like(got)
        for k in range(8):
            x = np.rot90(image[:, ::-1] if k >= 4 else image, k % 4)
            p = np.rot90(np_conv_probs(model, np.ascontiguousarray(x)), -(k % 4))
            want += (p[:, ::-1] if k >= 4 else p) / 8
        self.assertAllClose(got, want, atol=1e-5)
        plain = inference.predict_tile(model, image, window=32, overlap=0.0)
        self.assertGreater(np.abs(plain - got).max(), 0.01)


class GraphTest(tf.test.TestCase):

    def test_graph_version_equals_numpy_version(self):
        model = random_conv(size=3, seed=8)
        image = np.random.default_rng(4).uniform(0, 255, (45, 70, 3)).astype(np.float32)
        want = inference.predict_tile(model, image, window=32, overlap=0.25, tta="flips",
                                      batch_size=2)
        fn = tf.function(
            lambda x: inference.predict_tile_graph(model, x, window=32, overlap=0.25,
                                                   tta="flips", batch_size=2),
            input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
        self.assertAllClose(fn(image), want, atol=1e-5)
        small = image[:9, :20]
        self.assertAllClose(fn(small), inference.predict_tile(
            model, small, window=32, overlap=0.25, tta="flips"), atol=1e-5)


if __name__ == "__main__":
    tf.test.main()
