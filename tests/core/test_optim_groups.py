"""Parameter groups of the optimizers: a learning-rate multiplier equals the
plain rule at lr * multiplier, a frozen group stays bit-identical (weight
decay and slots included) and then moves, the frozen flag follows the step,
the group is in the checkpoint, and it works under a two-replica strategy."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import optim
from tests.distribute import two_replica_strategy


def _problem():
    a = tf.Variable([1.0, -2.0, 3.0])
    b = tf.Variable([[0.5, 0.25]])
    return a, b


def _grads(a, b):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(a ** 2) + tf.reduce_sum(tf.sin(b))
    return tape.gradient(loss, [a, b])


class GroupTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters("sgd", "adamw")
    def test_multiplier_is_the_rule_at_scaled_lr(self, name):
        a, b = _problem()
        ref_a = tf.Variable(a)
        opt = optim.make_optimizer(name, 0.1, weight_decay=0.05)
        ref = optim.make_optimizer(name, 0.1 * 0.25, weight_decay=0.05)
        opt.add_group("encoder", [a], lr_multiplier=0.25)
        for _ in range(3):
            opt.apply(_grads(a, b), [a, b])
            ref.apply(_grads(ref_a, b)[:1], [ref_a])
        self.assertAllClose(a, ref_a, rtol=1e-6, atol=1e-7)

    @parameterized.parameters("sgd", "adamw")
    def test_frozen_group_is_bit_identical_then_moves(self, name):
        a, b = _problem()
        flag = tf.Variable(0.0)
        opt = optim.make_optimizer(name, 0.1, weight_decay=0.05)
        opt.add_group("encoder", [a], freeze_steps=2, frozen_flag=flag)
        self.assertEqual(float(flag), 1.0)  # set when the group is made
        start_a, start_b = a.numpy().copy(), b.numpy().copy()
        flags = []
        for step in range(3):
            opt.begin_step()
            flags.append(float(flag))
            opt.apply(_grads(a, b), [a, b])
            if step < 2:
                self.assertAllEqual(a, start_a)
                slots = opt.velocity if name == "sgd" else opt.m
                self.assertAllEqual(slots[0], np.zeros(3))
        self.assertEqual(flags, [1.0, 1.0, 0.0])
        self.assertNotAllClose(a, start_a)
        self.assertNotAllClose(b, start_b)

    def test_group_variables_are_in_the_checkpoint(self):
        a, b = _problem()
        opt = optim.SGD(0.1)
        opt.add_group("encoder", [a], lr_multiplier=0.1, freeze_steps=5)
        path = tf.train.Checkpoint(optimizer=opt).write(self.get_temp_dir() + "/ckpt")
        other = optim.SGD(0.1)
        group = other.add_group("encoder", [a], lr_multiplier=1.0, freeze_steps=0)
        tf.train.Checkpoint(optimizer=other).read(path).assert_existing_objects_matched()
        self.assertAllClose(group.lr_multiplier, 0.1)
        self.assertEqual(int(group.freeze_steps), 5)

    def test_bad_groups(self):
        a, _ = _problem()
        opt = optim.SGD(0.1)
        opt.add_group("encoder", [a])
        with self.assertRaisesRegex(ValueError, "already in parameter group 'encoder'"):
            opt.add_group("other", [a])
        with self.assertRaisesRegex(ValueError, "lr_multiplier must be >= 0"):
            opt.add_group("x", [], lr_multiplier=-1)

    def test_two_replicas(self):
        strategy = two_replica_strategy()
        with strategy.scope():
            a, b = _problem()
            flag = tf.Variable(0.0, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            opt = optim.SGD(0.1)
            opt.add_group("encoder", [a], lr_multiplier=0.5, freeze_steps=1, frozen_flag=flag)
            opt.build([a, b])

        @tf.function
        def step():
            def replica():
                opt.begin_step()
                grads = _grads(a, b)
                opt.apply([g / 2.0 for g in grads], [a, b])
                return tf.identity(flag)
            return strategy.run(replica)

        first = strategy.experimental_local_results(step())
        self.assertEqual([float(f) for f in first], [1.0, 1.0])
        self.assertAllEqual(a, [1.0, -2.0, 3.0])
        second = strategy.experimental_local_results(step())
        self.assertEqual([float(f) for f in second], [0.0, 0.0])
        # grad 2a summed over replicas (each half), lr 0.1 * 0.5, momentum 0.9, v0 = 0.
        self.assertAllClose(a, np.float32([1.0, -2.0, 3.0]) * (1 - 0.05 * 2))
