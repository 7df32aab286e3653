"""Conv2D and the 2x upsamplers against NumPy and tf.nn references; the
lazy build, He initialisation, activations and dropout."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from layers import activations
from layers.base import Module, once
from layers.conv import Conv2D, ConvTranspose2x, ResizeConv2x
from tests.helpers import numpy_conv_same


class ConvTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        self.x = np.random.default_rng(1).normal(size=[2, 7, 6, 3]).astype(np.float32)

    @parameterized.parameters((3, 1), (3, 2), (1, 1), (3, 3))
    def test_conv_matches_numpy(self, kernel, dilation):
        conv = Conv2D(4, kernel, dilation=dilation)
        y = conv(self.x)
        conv.b.assign(np.arange(4, dtype=np.float32))
        y = conv(self.x)
        self.assertEqual(conv.w.shape, (kernel, kernel, 3, 4))
        ref = numpy_conv_same(self.x, conv.w.numpy(), conv.b.numpy(), dilation)
        self.assertAllClose(y, ref, atol=1e-4, rtol=1e-4)

    def test_variables_made_once_on_first_call_and_named(self):
        conv = Conv2D(5, 3, use_bias=False)
        self.assertEqual(conv.variables, ())
        conv(self.x)
        first = conv.w
        tf.function(conv)(tf.constant(self.x[:1]))
        self.assertIs(conv.w, first)
        self.assertEqual([v.name for v in conv.variables], ["conv/w:0"])
        self.assertEqual(conv.decay_variables, (conv.w,))

    def test_he_initialisation_variance(self):
        conv = Conv2D(64, 3)
        conv(tf.zeros([1, 4, 4, 32]))
        # He: Var[w] = 2 / fan_in, fan_in = 3 * 3 * 32.
        self.assertAllClose(np.var(conv.w.numpy()), 2.0 / 288, rtol=0.1)
        self.assertAllEqual(conv.b, np.zeros(64))

    def test_stride(self):
        conv = Conv2D(2, 3, stride=2)
        self.assertEqual(conv(tf.zeros([1, 8, 8, 3])).shape, (1, 4, 4, 2))

    @parameterized.parameters("mixed_float16", "mixed_bfloat16")
    def test_compute_dtype_from_policy(self, policy):
        conv = Conv2D(4, 3, policy=policy)
        y = conv(self.x)
        self.assertEqual(conv.w.dtype, tf.float32)
        self.assertEqual(y.dtype, conv.compute_dtype)
        ref = numpy_conv_same(self.x, conv.w.numpy(), conv.b.numpy())
        self.assertAllClose(tf.cast(y, tf.float32), ref, atol=0.1, rtol=0.05)

    def test_transpose_matches_conv2d_transpose(self):
        up = ConvTranspose2x(5)
        up(self.x)
        up.b.assign(np.linspace(-1, 1, 5).astype(np.float32))
        y = up(self.x)
        ref = tf.nn.conv2d_transpose(self.x, up.w, [2, 14, 12, 5], strides=2,
                                     padding="SAME") + up.b
        self.assertAllClose(y, ref, atol=1e-5, rtol=1e-5)
        # The gradient w.r.t. the kernel agrees too (same maths, other ops).
        with tf.GradientTape(persistent=True) as tape:
            ours = tf.reduce_sum(tf.sin(up(self.x)))
            theirs = tf.reduce_sum(tf.sin(tf.nn.conv2d_transpose(
                self.x, up.w, [2, 14, 12, 5], strides=2, padding="SAME") + up.b))
        self.assertAllClose(tape.gradient(ours, up.w), tape.gradient(theirs, up.w),
                            atol=1e-4, rtol=1e-4)

    def test_resize_conv_is_nearest_then_conv(self):
        up = ResizeConv2x(4)
        y = up(self.x)
        nearest = np.repeat(np.repeat(self.x, 2, axis=1), 2, axis=2)
        ref = numpy_conv_same(nearest, up.conv.w.numpy(), up.conv.b.numpy())
        self.assertEqual(y.shape, (2, 14, 12, 4))
        self.assertAllClose(y, ref, atol=1e-4, rtol=1e-4)

    def test_once_runs_only_the_first_time(self):
        class Counter(Module):
            calls = 0

            @once
            def build(self):
                Counter.calls += 1

        c = Counter()
        c.build()
        c.build()
        self.assertEqual(Counter.calls, 1)

    def test_missing_channel_dimension_is_a_clear_error(self):
        fn = tf.function(Conv2D(2, 3)).get_concrete_function
        with self.assertRaisesRegex(ValueError, "channel axis"):
            fn(tf.TensorSpec([None, None, None, None]))


class ActivationTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(
        ("relu", lambda x: np.maximum(x, 0)),
        ("leaky_relu", lambda x: np.maximum(0.1 * x, x)),
        ("elu", lambda x: np.where(x >= 0, x, np.expm1(x))),
        ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
        ("tanh", np.tanh),
        ("linear", lambda x: x))
    def test_matches_numpy_formula(self, name, ref):
        x = np.linspace(-4, 4, 33).astype(np.float32)
        self.assertAllClose(activations.get_activation(name)(x), ref(x), atol=1e-6)

    def test_keeps_bfloat16(self):
        x = tf.constant([-1.0, 2.0], tf.bfloat16)
        for name in activations.ACTIVATIONS:
            self.assertEqual(activations.get_activation(name)(x).dtype, tf.bfloat16)

    def test_unknown_name(self):
        with self.assertRaisesRegex(ValueError, "unknown activation 'swish'.*relu"):
            activations.get_activation("swish")

    def test_dropout_scales_kept_values_and_is_identity_at_inference(self):
        x = tf.ones([200, 200])
        y = activations.dropout(x, 0.25, training=True, seed=3).numpy()
        kept = y != 0
        self.assertAllClose(y[kept], np.full(kept.sum(), 1 / 0.75))
        self.assertAllClose(kept.mean(), 0.75, atol=0.01)
        self.assertAllEqual(activations.dropout(x, 0.25, training=False), x)
        with self.assertRaisesRegex(ValueError, "dropout rate"):
            activations.dropout(x, 1.0, training=True)


if __name__ == "__main__":
    tf.test.main()
