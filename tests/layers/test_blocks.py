"""ConvBNAct's inference path: inside a graph the batch norm is folded into
the convolution; the result must equal conv -> batch norm -> activation
computed in NumPy (float64) from the same variables, in every dtype policy,
and the residual U-Net must give the same logits folded (graph) and
unfolded (eager)."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from layers import UNet
from layers.blocks import ConvBNAct
from layers.conv import Conv2D
from tests.helpers import numpy_conv_same

EPS = 1e-3


def randomize_batch_norms(model, seed=0):
    """Gives every BatchNorm of `model` non-trivial statistics and affine terms."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        name, n = variable.name, variable.shape[-1] if variable.shape.rank else 0
        if "moving_mean" in name:
            variable.assign(rng.normal(0, 0.3, n).astype(np.float32))
        elif "moving_variance" in name:
            variable.assign(rng.uniform(0.5, 2.0, n).astype(np.float32))
        elif name.endswith("scale:0"):
            variable.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
        elif name.endswith("offset:0"):
            variable.assign(rng.normal(0, 0.2, n).astype(np.float32))


class ConvBNActInferenceTest(tf.test.TestCase, parameterized.TestCase):

    def _unit(self, policy, activation="relu", dilation=1):
        rng = np.random.default_rng(1)
        x = rng.normal(size=[2, 9, 7, 5]).astype(np.float32)
        unit = ConvBNAct(6, 3, dilation=dilation, activation=activation, policy=policy)
        unit(x)  # build
        randomize_batch_norms(unit)
        bn = unit.bn
        conv = numpy_conv_same(x, unit.conv.w.numpy(), 0.0, dilation)
        y = ((conv - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + EPS)
             * bn.scale.numpy() + bn.offset.numpy())
        return unit, x, y

    @parameterized.parameters(("relu", 1), ("linear", 1), ("relu", 2), ("elu", 1))
    def test_folded_graph_equals_numpy_conv_then_batch_norm(self, activation, dilation):
        unit, x, y = self._unit("float32", activation, dilation)
        if activation == "relu":
            y = np.maximum(y, 0)
        elif activation == "elu":
            y = np.where(y > 0, y, np.expm1(np.minimum(y, 0)))
        graph = tf.function(lambda t: unit(t, training=False))(x)
        self.assertAllClose(graph, y, rtol=1e-5, atol=1e-5)
        self.assertAllClose(unit(x, training=False), y, rtol=1e-5, atol=1e-5)  # eager

    @parameterized.parameters("mixed_bfloat16", "mixed_float16")
    def test_folded_low_precision_close_to_float64(self, policy):
        unit, x, y = self._unit(policy)
        graph = tf.function(lambda t: unit(t, training=False))(x)
        self.assertEqual(graph.dtype, unit.compute_dtype)
        tolerance = 3e-2 if policy == "mixed_bfloat16" else 4e-3
        self.assertAllClose(tf.cast(graph, tf.float32), np.maximum(y, 0),
                            rtol=tolerance, atol=tolerance)

    def test_training_still_normalises_by_batch_statistics(self):
        unit, x, _ = self._unit("float32")
        before = unit.bn.moving_mean.numpy()
        y = tf.function(lambda t: unit(t, training=True))(x)
        conv = numpy_conv_same(x, unit.conv.w.numpy(), 0.0)
        ref = ((conv - conv.mean((0, 1, 2))) / np.sqrt(conv.var((0, 1, 2)) + EPS)
               * unit.bn.scale.numpy() + unit.bn.offset.numpy())
        self.assertAllClose(y, np.maximum(ref, 0), rtol=1e-4, atol=1e-4)
        self.assertNotAllClose(unit.bn.moving_mean, before)

    def test_scaled_refuses_a_conv_with_bias(self):
        conv = Conv2D(4, 3, use_bias=True)
        with self.assertRaisesRegex(ValueError, "without a bias"):
            conv.scaled(tf.zeros([1, 4, 4, 2]), tf.ones([4]), tf.zeros([4]))


class UNetFoldedTest(tf.test.TestCase):

    def test_graph_logits_equal_eager_logits_with_trained_statistics(self):
        model = UNet(3, in_channels=4, filters=8, depth=3, residual=True,
                     center="parallel_dilated", mean=[10.0] * 4, std=[5.0] * 4)
        x = np.random.default_rng(2).uniform(0, 40, [2, 32, 40, 4]).astype(np.float32)
        model(x)
        randomize_batch_norms(model)
        eager = model(x, training=False)  # unfolded: conv, batch norm, activation
        graph = tf.function(lambda t: model(t, training=False))(x)  # folded
        self.assertAllClose(graph, eager, rtol=1e-4, atol=1e-4)
        self.assertGreater(float(tf.math.reduce_std(eager)), 0.1)  # not a trivial output


if __name__ == "__main__":
    tf.test.main()
