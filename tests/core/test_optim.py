"""SGD against Keras 3's SGD, a NumPy transcription, checkpoints and replicas."""
import itertools

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.optim import SGD, sgd_momentum_update
from tests.distribute import two_replica_strategy

STEPS = 10


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 3)).astype(np.float32)
    target = rng.standard_normal((6, 4)).astype(np.float32)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    b0 = rng.standard_normal((4,)).astype(np.float32)
    return a, target, w0, b0


def _loss(a, target, w, b):
    return tf.reduce_mean(tf.square(tf.matmul(a, w) + b - target))


def _grads(a, target, w, b):
    with tf.GradientTape() as tape:
        loss = _loss(a, target, w, b)
    return tape.gradient(loss, [w, b])


class SGDTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(itertools.product([False, True], [0.0, 0.05], [False, True]))
    def test_matches_keras_sgd(self, nesterov, weight_decay, only_kernel):
        a, target, w0, b0 = _problem()
        w, b = tf.Variable(w0), tf.Variable(b0)
        kw, kb = tf.Variable(w0), tf.Variable(b0)
        ours = SGD(0.1, momentum=0.9, nesterov=nesterov, weight_decay=weight_decay)
        theirs = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov,
                                      weight_decay=weight_decay or None)
        decay = [w] if only_kernel else None
        if only_kernel:
            theirs.exclude_from_weight_decay(var_list=[kb])
        step = tf.function(lambda: ours.apply(_grads(a, target, w, b), [w, b],
                                              decay_variables=decay))
        for _ in range(STEPS):
            step()
            theirs.apply(_grads(a, target, kw, kb), [kw, kb])
        self.assertAllClose(w, kw, rtol=1e-6, atol=1e-6)
        self.assertAllClose(b, kb, rtol=1e-6, atol=1e-6)
        self.assertEqual(int(ours.iterations), STEPS)
        self.assertNotAllClose(w, w0)  # the run did move

    def test_variable_schedule_against_numpy(self):
        """lr and momentum assigned every step, checked against the formula."""
        a, target, w0, b0 = _problem(1)
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01)
        p = [w0.astype(np.float64), b0.astype(np.float64)]
        v = [np.zeros_like(p[0]), np.zeros_like(p[1])]
        for i in range(5):
            lr, mu = 0.05 * (i + 1), 0.95 - 0.02 * i
            opt.learning_rate.assign(lr)
            opt.momentum.assign(mu)
            grads = _grads(a, target, tf.Variable(p[0], dtype=tf.float32),
                           tf.Variable(p[1], dtype=tf.float32))
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
            for j, g in enumerate(grads):
                decay = 0.01 if j == 0 else 0.0
                q = p[j] - lr * decay * p[j]
                v[j] = mu * v[j] - lr * g.numpy()
                p[j] = q + mu * v[j] - lr * g.numpy()
        self.assertAllClose(w, p[0], rtol=1e-5, atol=1e-6)
        self.assertAllClose(b, p[1], rtol=1e-5, atol=1e-6)

    def test_pure_update_by_hand(self):
        new_p, new_v = sgd_momentum_update(
            tf.constant(2.0), tf.constant(0.5), tf.constant(1.0),
            tf.constant(0.1), tf.constant(0.9), 0.1, nesterov=False)
        # p1 = 2 - 0.1*0.1*2 = 1.98; v' = 0.9 - 0.05 = 0.85; p' = 2.83
        self.assertAllClose([new_p, new_v], [2.83, 0.85])
        new_p, _ = sgd_momentum_update(
            tf.constant(2.0), tf.constant(0.5), tf.constant(1.0),
            tf.constant(0.1), tf.constant(0.9), 0.0, nesterov=True)
        self.assertAllClose(new_p, 2.0 + 0.9 * 0.85 - 0.05)

    def test_checkpoint_restores_slots_and_continues_identically(self):
        a, target, w0, b0 = _problem(2)
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = SGD(0.1, momentum=0.9)
        for _ in range(3):
            opt.apply(_grads(a, target, w, b), [w, b])
        path = tf.train.Checkpoint(w=w, b=b, opt=opt).save(self.get_temp_dir() + "/c")
        for _ in range(3):
            opt.apply(_grads(a, target, w, b), [w, b])
        # Fresh optimizer, slots not built yet: restore is deferred until
        # the first apply creates them (inside a tf.function here).
        w2, b2 = tf.Variable(tf.zeros_like(w0)), tf.Variable(tf.zeros_like(b0))
        opt2 = SGD(0.5, momentum=0.5)
        tf.train.Checkpoint(w=w2, b=b2, opt=opt2).restore(path)
        self.assertEqual(int(opt2.iterations), 3)
        self.assertAllClose(opt2.learning_rate, 0.1)
        step = tf.function(lambda: opt2.apply(_grads(a, target, w2, b2), [w2, b2]))
        for _ in range(3):
            step()
        self.assertAllClose(w2, w, rtol=1e-6, atol=1e-7)
        self.assertAllClose(b2, b, rtol=1e-6, atol=1e-7)

    def test_finite_false_skips_the_update(self):
        w = tf.Variable([1.0, 2.0])
        opt = SGD(0.1, momentum=0.9)
        opt.apply([tf.constant([1.0, 1.0])], [w], finite=tf.constant(True))
        before = (w.numpy(), opt.velocity[0].numpy())
        opt.apply([tf.constant([np.inf, 1.0])], [w], finite=tf.constant(False))
        self.assertAllEqual(w, before[0])
        self.assertAllEqual(opt.velocity[0], before[1])
        self.assertEqual(int(opt.iterations), 2)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "momentum must be in"):
            SGD(0.1, momentum=1.5)
        opt = SGD(0.1)
        w, other = tf.Variable([1.0]), tf.Variable([2.0])
        opt.apply([tf.constant([1.0])], [w])
        with self.assertRaisesRegex(ValueError, "not among the variables"):
            opt.apply([tf.constant([1.0])], [other])
        with self.assertRaisesRegex(ValueError, "1 gradients for 2 variables"):
            opt.apply([tf.constant([1.0])], [w, other])

    def test_two_replica_mirrored_strategy_equals_one_device(self):
        strategy = two_replica_strategy()
        a, target, w0, b0 = _problem(3)
        # Reference: one device, the whole batch, mean loss.
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        for _ in range(4):
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
        with strategy.scope():
            mw, mb = tf.Variable(w0), tf.Variable(b0)
            mopt = SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        halves = np.split(a, 2), np.split(target, 2)
        inputs = strategy.experimental_distribute_values_from_function(
            lambda ctx: (tf.constant(halves[0][ctx.replica_id_in_sync_group]),
                         tf.constant(halves[1][ctx.replica_id_in_sync_group])))

        def replica_step(a_part, target_part):
            with tf.GradientTape() as tape:
                # Per-replica mean / replicas: the summed gradient is the global mean's.
                loss = _loss(a_part, target_part, mw, mb) / 2.0
            grads = tape.gradient(loss, [mw, mb])
            mopt.apply(grads, [mw, mb], decay_variables=[mw])

        @tf.function
        def step(inputs):
            strategy.run(replica_step, args=inputs)

        for _ in range(4):
            step(inputs)
        self.assertAllClose(mw.values[0], w, rtol=1e-5, atol=1e-6)
        self.assertAllClose(mw.values[1], w, rtol=1e-5, atol=1e-6)
        self.assertAllClose(mb.values[1], b, rtol=1e-5, atol=1e-6)
        self.assertEqual(int(mopt.iterations.numpy()), 4)
        self.assertIsInstance(mopt.velocity[0], tf.distribute.DistributedValues)


if __name__ == "__main__":
    tf.test.main()
