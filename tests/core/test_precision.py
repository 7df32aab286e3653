"""Policies and the dynamic loss scale's sequence of skips, halvings, doublings."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.optim import SGD
from core.precision import DynamicLossScale, get_policy
from tests.distribute import two_replica_strategy

PLANTED = 3.0e4  # x16 * scale overflows float16 (max 65504) for scale >= 4


def _train_step(loss_scale, optimizer, w, x):
    """A float16 forward pass; the gradient is S * x in float16 before unscaling."""
    with tf.GradientTape() as tape:
        loss = tf.cast(tf.reduce_sum(tf.cast(w, tf.float16) * tf.cast(x, tf.float16)),
                       tf.float32)
        scaled = loss_scale.scale_loss(loss)
    grads, finite = loss_scale.unscale(tape.gradient(scaled, [w]))
    optimizer.apply(grads, [w], finite=finite)
    loss_scale.update(finite)
    return grads[0], finite


class PolicyTest(tf.test.TestCase):

    def test_policies(self):
        self.assertTrue(get_policy("mixed_float16").needs_loss_scaling)
        self.assertFalse(get_policy("mixed_bfloat16").needs_loss_scaling)
        with self.assertRaisesRegex(ValueError, "mixed_float16"):
            get_policy("float64")


class DynamicLossScaleTest(tf.test.TestCase, parameterized.TestCase):

    def test_sequence_with_planted_overflow(self):
        loss_scale = DynamicLossScale(initial_scale=8.0, growth_interval=3)
        optimizer = SGD(0.1, momentum=0.0)
        w = tf.Variable([1.0, 2.0])
        step = tf.function(lambda x: _train_step(loss_scale, optimizer, w, x))
        planted = {5, 9, 10}
        # Traced by hand: 3 good steps double S; an overflow halves it.
        expected_scale = [8, 8, 16, 16, 8, 8, 8, 16, 8, 4, 4]
        expected_good = [1, 2, 0, 1, 0, 1, 2, 0, 0, 0, 1]
        expected_w = np.array([1.0, 2.0])
        for i in range(1, 12):
            x = np.array([PLANTED if i in planted else 1.0, 0.5], np.float32)
            grad, finite = step(tf.constant(x))
            self.assertEqual(bool(finite), i not in planted, f"step {i}")
            if i not in planted:
                # Unscaled gradient is the true one (x), exactly: S is a power of 2.
                self.assertAllEqual(grad, x)
                expected_w -= 0.1 * x
            self.assertAllClose(w, expected_w, msg=f"step {i}")
            self.assertEqual(float(loss_scale.scale), expected_scale[i - 1], f"step {i}")
            self.assertEqual(int(loss_scale.good_steps), expected_good[i - 1], f"step {i}")
        self.assertEqual(int(optimizer.iterations), 11)

    def test_small_scale_recovers_from_the_planted_value(self):
        # At S = 2 the planted gradient 6e4 fits in float16: the step is kept.
        loss_scale = DynamicLossScale(initial_scale=2.0, growth_interval=100)
        _, finite = _train_step(loss_scale, SGD(0.1), tf.Variable([1.0]),
                                tf.constant([PLANTED]))
        self.assertTrue(bool(finite))

    def test_floor_and_overflowing_growth(self):
        loss_scale = DynamicLossScale(initial_scale=2.0, growth_interval=1)
        for _ in range(3):
            loss_scale.update(False)
        self.assertEqual(float(loss_scale.scale), 1.0)
        big = DynamicLossScale(initial_scale=2.0 ** 127, growth_interval=1)
        big.update(True)
        self.assertEqual(float(big.scale), 2.0 ** 127)  # 2**128 is inf in float32

    def test_defaults_and_checkpoint(self):
        loss_scale = DynamicLossScale.for_policy("mixed_float16")
        self.assertEqual(float(loss_scale.scale), 2.0 ** 15)
        self.assertEqual(loss_scale.growth_interval, 2000)
        loss_scale.update(False)
        loss_scale.update(True)
        path = tf.train.Checkpoint(s=loss_scale).save(self.get_temp_dir() + "/s")
        fresh = DynamicLossScale()
        tf.train.Checkpoint(s=fresh).restore(path).assert_consumed()
        self.assertEqual(float(fresh.scale), 2.0 ** 14)
        self.assertEqual(int(fresh.good_steps), 1)

    @parameterized.parameters("float32", "mixed_bfloat16")
    def test_disabled_for_other_policies(self, policy):
        loss_scale = DynamicLossScale.for_policy(policy)
        loss = tf.constant(3.0)
        self.assertEqual(float(loss_scale.scale_loss(loss)), 3.0)
        grads, finite = loss_scale.unscale([tf.constant([np.inf, 1.0]), None])
        self.assertTrue(bool(finite))  # never skips
        self.assertAllEqual(grads[0], [np.inf, 1.0])
        self.assertIsNone(grads[1])
        loss_scale.update(False)
        self.assertEqual(float(loss_scale.scale), 1.0)

    def test_two_replicas_skip_together(self):
        strategy = two_replica_strategy()
        with strategy.scope():
            loss_scale = DynamicLossScale(initial_scale=4.0, growth_interval=10)
            w = tf.Variable([1.0, 2.0])
            optimizer = SGD(0.5, momentum=0.0)
        plant = tf.Variable(True)

        def replica_step():
            # With `plant`, only replica 0 sees an infinite gradient.
            i = tf.distribute.get_replica_context().replica_id_in_sync_group
            bad = tf.logical_and(plant, tf.equal(i, 0))
            g = tf.where(bad, np.inf, 1.0) * tf.ones([2])
            grads, finite = loss_scale.unscale([loss_scale.scale_loss(g)])
            # tf.cond around apply is not allowed here (merge_call): finite= is.
            optimizer.apply(grads, [w], finite=finite)
            loss_scale.update(finite)
            return finite

        step = tf.function(lambda: strategy.run(replica_step))
        finite = step()
        self.assertEqual([bool(f) for f in strategy.experimental_local_results(finite)],
                         [False, False])
        self.assertEqual([float(v) for v in loss_scale.scale.values], [2.0, 2.0])
        for value in w.values:
            self.assertAllEqual(value, [1.0, 2.0])
        plant.assign(False)
        step()
        for value in w.values:  # gradients of both replicas summed: 1 + 1
            self.assertAllClose(value, [1.0 - 0.5 * 2, 2.0 - 0.5 * 2])
        self.assertEqual([int(v) for v in loss_scale.good_steps.values], [1, 1])

if __name__ == "__main__":
    tf.test.main()
