"""ConvNeXt-Tiny encoder and its primitives: LayerNorm, LayerScale, the
depthwise convolution and GELU against NumPy; pyramid shapes, parameter
count, dtypes, and the U-Net on top. Equality with Keras' ConvNeXtTiny is in
tests/tools/test_import_encoder.py."""
import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from layers import UNet, count_parameters
from layers.activations import get_activation
from layers.conv import DepthwiseConv2D
from layers.convnext import ConvNeXtTiny
from layers.norm import LayerNorm, LayerScale


def images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


class PrimitivesTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(("float32", 1e-5), ("mixed_bfloat16", 2e-2))
    def test_layer_norm_matches_numpy(self, policy, tol):
        x = images([2, 3, 4, 6]) * 3 + 2
        norm = LayerNorm(epsilon=1e-6, policy=policy)
        norm(x)
        rng = np.random.default_rng(1)
        scale, offset = rng.uniform(0.5, 2, 6), rng.normal(size=6)
        norm.scale.assign(scale)
        norm.offset.assign(offset)
        x64 = x.astype(np.float64)
        mean = x64.mean(-1, keepdims=True)
        ref = (x64 - mean) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6) * scale + offset
        got = norm(x)
        self.assertEqual(got.dtype, norm.compute_dtype)
        self.assertAllClose(tf.cast(got, tf.float32), ref, atol=tol * 4, rtol=tol)

    def test_layer_scale_starts_small_and_multiplies_per_channel(self):
        ls = LayerScale(1e-6)
        x = images([1, 2, 2, 3])
        self.assertAllClose(ls(x), x * 1e-6)
        ls.scale.assign([1.0, 2.0, -3.0])
        self.assertAllClose(ls(x), x * np.float32([1, 2, -3]))

    def test_depthwise_conv_matches_numpy(self):
        x = images([1, 6, 5, 3])
        conv = DepthwiseConv2D(3)
        conv(x)
        conv.b.assign([0.5, -1.0, 2.0])
        w = conv.w.numpy()[:, :, :, 0]  # [3, 3, C]
        padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
        ref = np.zeros_like(x)
        for i in range(6):
            for j in range(5):
                ref[0, i, j] = (padded[0, i:i + 3, j:j + 3] * w).sum((0, 1))
        self.assertAllClose(conv(x), ref + conv.b.numpy(), atol=1e-5)
        self.assertEqual(conv.decay_variables, (conv.w,))

    def test_gelu_is_the_exact_erf_form(self):
        x = np.linspace(-4, 4, 17).astype(np.float32)
        ref = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x]
        self.assertAllClose(get_activation("gelu")(x), ref, atol=1e-6)


class ConvNeXtTinyTest(tf.test.TestCase):

    def test_pyramid_and_parameter_count(self):
        enc = ConvNeXtTiny()
        features = enc(images([2, 64, 32, 3]))
        self.assertEqual(sorted(features), [4, 8, 16, 32])
        for stride, channels in zip(ConvNeXtTiny.STRIDES, ConvNeXtTiny.CHANNELS):
            self.assertEqual(features[stride].shape, (2, 64 // stride, 32 // stride, channels))
        # Keras' ConvNeXtTiny(include_top=False): 27,820,128, all trainable.
        self.assertEqual(count_parameters(enc), (27_820_128, 0))
        # Kernels of the convolutions (stem, 3 downsamplings, 18 blocks x 3).
        self.assertLen(enc.decay_variables, 1 + 3 + 18 * 3)

    def test_truncated_bfloat16_unet(self):
        model = UNet(2, in_channels=5, filters=4, depth=3, encoder="convnext_tiny",
                     policy="mixed_bfloat16")
        logits = model(images([1, 32, 32, 5]), training=True)
        self.assertEqual((logits.shape, logits.dtype), ((1, 32, 32, 2), tf.float32))
        self.assertEqual(model.encoder.strides, (4, 8))
        self.assertIsNone(model.encoder.out_norm)
        self.assertEqual(model.encoder.first_conv.w.shape, (4, 4, 5, 96))
        # Levels 0 and 1 (strides 1 and 2) have no skip: input = upsampled only.
        self.assertEqual([b.unit1.conv.w.shape[2] for b in model.decoder], [4, 8, 16 + 96])
