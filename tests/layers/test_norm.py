"""BatchNorm against NumPy: training, inference, moving averages, dtypes,
and the cross-replica mode under a two-replica MirroredStrategy."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from layers.norm import BatchNorm
from tests.distribute import two_replica_strategy

EPS = 1e-3
MOMENTUM = 0.99


def numpy_bn_train(x, scale, offset):
    """Normalised output, batch mean, unbiased batch variance (float64)."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    y = (x - mean) / np.sqrt(var + EPS) * scale + offset
    n = x.size // x.shape[-1]
    return y, mean, var * n / (n - 1)


class BatchNormTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.x = (rng.normal(size=[3, 5, 4, 6]) * 2.5 + 1.5).astype(np.float32)
        self.scale = rng.uniform(0.5, 2.0, size=[6]).astype(np.float32)
        self.offset = rng.normal(size=[6]).astype(np.float32)

    def _bn(self, policy="float32", cross_replica=False):
        bn = BatchNorm(policy=policy, cross_replica=cross_replica)
        bn(self.x[:1])  # build
        bn.scale.assign(self.scale)
        bn.offset.assign(self.offset)
        return bn

    def test_training_matches_numpy_and_updates_moving_averages(self):
        bn = self._bn()
        y = bn(self.x, training=True)
        y_ref, mean, var_unbiased = numpy_bn_train(self.x, self.scale, self.offset)
        self.assertAllClose(y, y_ref, atol=1e-4, rtol=1e-4)
        self.assertAllClose(bn.moving_mean, (1 - MOMENTUM) * mean, atol=1e-5)
        self.assertAllClose(bn.moving_variance,
                            MOMENTUM * 1.0 + (1 - MOMENTUM) * var_unbiased,
                            atol=1e-5)

    def test_inference_uses_moving_averages(self):
        bn = self._bn()
        moving_mean = np.linspace(-1, 1, 6).astype(np.float32)
        moving_var = np.linspace(0.5, 3, 6).astype(np.float32)
        bn.moving_mean.assign(moving_mean)
        bn.moving_variance.assign(moving_var)
        y = bn(self.x, training=False)
        y_ref = ((self.x - moving_mean) / np.sqrt(moving_var + EPS)
                 * self.scale + self.offset)
        self.assertAllClose(y, y_ref, atol=1e-4, rtol=1e-4)

    def test_moving_averages_update_only_when_training(self):
        bn = self._bn()
        bn(self.x, training=False)
        tf.function(lambda x: bn(x, training=False))(self.x)
        self.assertAllEqual(bn.moving_mean, np.zeros(6))
        self.assertAllEqual(bn.moving_variance, np.ones(6))
        # Two training steps in a tf.function compound the averages.
        step = tf.function(lambda x: bn(x, training=True))
        step(self.x)
        step(self.x)
        _, mean, var = numpy_bn_train(self.x, self.scale, self.offset)
        keep = MOMENTUM ** 2
        self.assertAllClose(bn.moving_mean, (1 - keep) * mean, atol=1e-5)
        self.assertAllClose(bn.moving_variance, keep + (1 - keep) * var, atol=1e-5)

    def test_variables_are_named_float32_and_trainable_by_role(self):
        bn = self._bn(policy="mixed_bfloat16")
        names = sorted(v.name.split("/")[-1] for v in bn.variables)
        self.assertEqual(names, ["moving_mean:0", "moving_variance:0",
                                 "offset:0", "scale:0"])
        self.assertTrue(all(v.dtype == tf.float32 for v in bn.variables))
        self.assertCountEqual([v.name.split("/")[-1] for v in bn.trainable_variables],
                              ["scale:0", "offset:0"])
        self.assertEqual(bn.decay_variables, ())

    @parameterized.parameters(("mixed_float16", tf.float16, 1e-2),
                              ("mixed_bfloat16", tf.bfloat16, 6e-2))
    def test_low_precision_close_to_numpy(self, policy, dtype, tol):
        bn = self._bn(policy=policy)
        y = bn(self.x, training=True)
        self.assertEqual(y.dtype, dtype)
        y_ref, mean, var = numpy_bn_train(self.x, self.scale, self.offset)
        self.assertAllClose(tf.cast(y, tf.float32), y_ref, atol=tol, rtol=tol)
        # Statistics are accumulated in float32 whatever the input dtype.
        self.assertAllClose(bn.moving_mean, (1 - MOMENTUM) * mean, atol=tol * 0.05)

    def test_cross_replica_uses_global_batch_statistics(self):
        strategy = two_replica_strategy()
        # Replicas see different data (shifted), so local != global stats.
        x = np.concatenate([self.x[:2], self.x[1:3] + 3.0]).astype(np.float32)
        halves = [x[:2], x[2:]]
        with strategy.scope():
            bn = self._bn(cross_replica=True)
            local_bn = self._bn(cross_replica=False)
        inputs = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(halves[ctx.replica_id_in_sync_group]))

        @tf.function
        def run(x):
            return strategy.run(lambda t: (bn(t, training=True),
                                           local_bn(t, training=True)), args=(x,))

        synced, local = run(inputs)
        y_ref, mean, var = numpy_bn_train(x, self.scale, self.offset)
        got = np.concatenate([t.numpy() for t in strategy.experimental_local_results(synced)])
        self.assertAllClose(got, y_ref, atol=1e-4, rtol=1e-4)
        self.assertAllClose(bn.moving_mean.read_value(), (1 - MOMENTUM) * mean, atol=1e-5)
        self.assertAllClose(bn.moving_variance.read_value(),
                            MOMENTUM + (1 - MOMENTUM) * var, atol=1e-4)
        # Without the option each replica normalises by its own half.
        first = strategy.experimental_local_results(local)[0].numpy()
        self.assertAllClose(first, numpy_bn_train(halves[0], self.scale, self.offset)[0],
                            atol=1e-4, rtol=1e-4)


if __name__ == "__main__":
    tf.test.main()
