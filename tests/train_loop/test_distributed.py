"""A U-Net trained by the step functions under a two-replica MirroredStrategy
(two logical CPU devices) matches one device on the same global batch:
gradients summed over replicas, batch norm synchronised across them."""
import numpy as np
import tensorflow as tf

from core import losses, optim, precision
from layers import UNet
from train_loop import steps
from tests.distribute import two_replica_strategy


def batch_of(n=4, size=16, channels=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": tf.constant(rng.uniform(0, 255, [n, size, size, channels]), tf.float32),
            "label": tf.constant(rng.integers(0, classes, [n, size, size]), tf.uint8)}


def build(cross_replica_bn):
    model = UNet(3, in_channels=3, filters=4, depth=3, center="serial_dilated",
                 mean=[120.0] * 3, std=[60.0] * 3, cross_replica_bn=cross_replica_bn)
    model(tf.zeros([1, 16, 16, 3]), training=False)
    opt = optim.SGD(0.05, momentum=0.9, weight_decay=1e-4)
    opt.build(model.trainable_variables)
    return model, opt


class MirroredUNetTest(tf.test.TestCase):

    def test_two_replicas_equal_one_device(self):
        batches = [batch_of(seed=s) for s in range(2)]
        # Cross-entropy is a mean over pixels, so the mean of the replicas'
        # losses is the global loss; region losses (Jaccard, Dice, Lovasz)
        # are computed per replica and differ slightly from the global one.
        loss_fn = losses.cross_entropy

        tf.random.set_seed(7)
        single, single_opt = build(cross_replica_bn=False)
        initial = [v.numpy() for v in single.variables]
        single_step = tf.function(steps.make_train_step(
            single, loss_fn, single_opt, loss_scale=precision.DynamicLossScale.for_policy("float32")))
        single_losses = [float(single_step(b)["loss"]) for b in batches]

        strategy = two_replica_strategy()
        with strategy.scope():
            model, opt = build(cross_replica_bn=True)
            for var, value in zip(model.variables, initial):
                var.assign(value)
            scale = precision.DynamicLossScale.for_policy("float32")
        step = tf.function(steps.distribute_step(
            strategy, steps.make_train_step(model, loss_fn, opt, loss_scale=scale)))
        data = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(
                {k: tf.concat([b[k] for b in batches], 0) for k in ("image", "label")}).batch(4))
        got_losses = [float(step(batch)["loss"]) for batch in data]
        self.assertAllClose(got_losses, single_losses, rtol=1e-5)
        # Same weights, batch-norm moving statistics and momentum, to float32
        # round-off (summation order differs between one and two devices).
        for got, want in zip(model.variables, single.variables):
            self.assertAllClose(got.numpy(), want.numpy(), rtol=1e-4, atol=5e-5, msg=got.name)

    def test_logged_cross_entropy_is_the_global_mean(self):
        batch = batch_of(seed=11)
        tf.random.set_seed(3)
        single, single_opt = build(cross_replica_bn=False)
        initial = [v.numpy() for v in single.variables]
        expected = float(steps.make_train_step(single, losses.cross_entropy, single_opt)(batch)["loss"])
        strategy = two_replica_strategy()
        with strategy.scope():
            model, opt = build(cross_replica_bn=True)
            for var, value in zip(model.variables, initial):
                var.assign(value)
        step = steps.distribute_step(strategy, steps.make_train_step(model, losses.cross_entropy, opt))
        data = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices(batch).batch(4))
        logs = tf.function(step)(next(iter(data)))
        self.assertAllClose(logs["loss"], expected, rtol=1e-5)


if __name__ == "__main__":
    tf.test.main()
