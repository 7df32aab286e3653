"""Step functions against a NumPy reference on a linear (1x1 conv) model."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import losses, metrics, optim, precision, schedules
from train_loop import steps
from tests.distribute import two_replica_strategy
from tests.helpers import PixelLinear


def numpy_ce_grads(x, labels, w, b, ignore=255):
    """Mean softmax cross-entropy over valid pixels and its gradients."""
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    y = labels.reshape(-1)
    valid = y != ignore
    x, y = x[valid], y[valid]
    z = x @ w + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    d = p.copy()
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
    return loss, x.T @ d, d.sum(axis=0)


def make_batch(seed=0, b=2, h=4, w=4, c=3, k=3):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=[b, h, w, c]).astype(np.float32)
    labels = rng.integers(0, k, size=[b, h, w]).astype(np.uint8)
    labels[0, 0, :2] = 255  # ignored pixels take no part
    return {"image": tf.constant(images), "label": tf.constant(labels)}


class TrainStepTest(tf.test.TestCase, parameterized.TestCase):

    def test_one_step_matches_numpy_sgd_with_schedule(self):
        model = PixelLinear(3, 3)
        w0, b0 = model.w.numpy().astype(np.float64), model.b.numpy().astype(np.float64)
        opt = optim.SGD(0.1, momentum=0.9)
        schedule = lambda s: schedules.one_cycle(s, 100, 0.5)  # noqa: E731
        step = steps.make_train_step(model, losses.cross_entropy, opt, schedule=schedule)
        batch = make_batch()
        logs = step(batch)
        loss, gw, gb = numpy_ce_grads(batch["image"].numpy(), batch["label"].numpy(), w0, b0)
        lr0 = 0.5 / 25.0  # one_cycle starts at max_lr / div_factor
        self.assertAllClose(logs["loss"], loss, rtol=1e-5)
        self.assertAllClose(logs["lr"], lr0, rtol=1e-6)
        self.assertAllClose(logs["momentum"], 0.95, rtol=1e-6)
        self.assertAllClose(logs["grad_norm"], np.sqrt((gw ** 2).sum() + (gb ** 2).sum()), rtol=1e-5)
        # First momentum step from zero velocity: w1 = w0 - lr * g.
        self.assertAllClose(model.w.numpy(), w0 - lr0 * gw, rtol=1e-5, atol=1e-7)
        self.assertAllClose(model.b.numpy(), b0 - lr0 * gb, rtol=1e-5, atol=1e-7)
        self.assertEqual(int(step.step_counter.numpy()), 1)
        # The schedule reads the counter: the second step uses step 1's lr.
        logs = step(batch)
        lr1, _ = schedules.one_cycle(tf.constant(1, tf.int64), 100, 0.5)
        self.assertAllClose(logs["lr"], lr1, rtol=1e-6)

    def test_clip_norm_scales_the_update(self):
        model = PixelLinear(3, 3)
        w0, b0 = model.w.numpy().astype(np.float64), model.b.numpy().astype(np.float64)
        step = steps.make_train_step(model, losses.cross_entropy, optim.SGD(1.0, momentum=0.0),
                                     clip_norm=0.01)
        batch = make_batch()
        logs = step(batch)
        _, gw, gb = numpy_ce_grads(batch["image"].numpy(), batch["label"].numpy(), w0, b0)
        norm = np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
        self.assertGreater(norm, 0.01)
        self.assertAllClose(logs["grad_norm"], norm, rtol=1e-5)  # logged before clipping
        self.assertAllClose(model.w.numpy(), w0 - gw * 0.01 / norm, rtol=1e-4, atol=1e-7)

    def test_float16_loss_scale_skips_a_non_finite_step(self):
        model = PixelLinear(3, 3)
        opt = optim.SGD(0.1, momentum=0.9)
        scale = precision.DynamicLossScale.for_policy("mixed_float16")
        blow_up = tf.Variable(1.0)

        def loss_fn(labels, logits):
            return losses.cross_entropy(labels, logits) * blow_up

        step = steps.make_train_step(model, loss_fn, opt, loss_scale=scale)
        batch = make_batch()
        step(batch)
        w1, scale1 = model.w.numpy(), float(scale.scale.numpy())
        blow_up.assign(np.inf)
        logs = step(batch)
        self.assertAllEqual(model.w.numpy(), w1)  # the update was skipped
        self.assertEqual(float(scale.scale.numpy()), scale1 / 2)
        self.assertEqual(float(logs["loss_scale"]), scale1 / 2)  # logged after the update
        self.assertEqual(int(step.step_counter.numpy()), 2)

    def test_metrics_and_eval_step_match_numpy_confusion(self):
        model = PixelLinear(3, 3)
        cm = metrics.ConfusionMatrix(3)
        batch = make_batch(seed=3)
        logs = steps.make_eval_step(model, losses.cross_entropy, cm)(batch)
        pred = np.argmax(model(batch["image"]).numpy(), axis=-1).reshape(-1)
        true = batch["label"].numpy().reshape(-1)
        keep = true != 255
        expected = np.zeros([3, 3], np.int64)
        np.add.at(expected, (true[keep], pred[keep]), 1)
        self.assertAllEqual(cm.matrix.numpy(), expected)
        loss, _, _ = numpy_ce_grads(batch["image"].numpy(), batch["label"].numpy(),
                                    model.w.numpy().astype(np.float64), model.b.numpy().astype(np.float64))
        self.assertAllClose(logs["loss"], loss, rtol=1e-5)


class RunStepsTest(tf.test.TestCase):

    def test_run_steps_equals_eager_steps_and_does_not_retrace(self):
        batches = [make_batch(seed=s) for s in range(6)]
        ds = tf.data.Dataset.from_tensor_slices(
            {k: tf.stack([b[k] for b in batches]) for k in ("image", "label")})

        eager_model = PixelLinear(3, 3)
        eager_step = steps.make_train_step(eager_model, losses.cross_entropy,
                                           optim.SGD(0.05, momentum=0.9, nesterov=True))
        eager_losses = [float(eager_step(b)["loss"]) for b in batches]

        model = PixelLinear(3, 3)
        step = steps.make_train_step(model, losses.cross_entropy,
                                     optim.SGD(0.05, momentum=0.9, nesterov=True))
        iterator = iter(ds)
        first = steps.run_steps(step, iterator, 2)
        loop = steps._loop_for(step, False)  # pylint: disable=protected-access
        traces = loop.experimental_get_tracing_count()
        second = steps.run_steps(step, iterator, 4)
        self.assertAllClose(model.w.numpy(), eager_model.w.numpy(), rtol=1e-5, atol=1e-6)
        self.assertAllClose(first["mean_loss"], np.mean(eager_losses[:2]), rtol=1e-5)
        self.assertAllClose(second["loss"], eager_losses[-1], rtol=1e-5)
        self.assertTrue(bool(second["all_finite"]))
        self.assertEqual(int(step.step_counter.numpy()), 6)
        # A new step count is a tensor, not a new trace.
        self.assertEqual(loop.experimental_get_tracing_count(), traces)

    def test_run_steps_flags_a_non_finite_loss(self):
        model = PixelLinear(3, 3)
        step = steps.make_train_step(model, lambda y, z: losses.cross_entropy(y, z) * np.nan,
                                     optim.SGD(0.1))
        ds = tf.data.Dataset.from_tensors(make_batch()).repeat()
        logs = steps.run_steps(step, iter(ds), 3)
        self.assertFalse(bool(logs["all_finite"]))

    def test_run_steps_rejects_zero_steps(self):
        with self.assertRaisesRegex(ValueError, "num_steps must be >= 1"):
            steps.run_steps(lambda b: {}, iter([]), 0)


class DistributedStepTest(tf.test.TestCase):

    def test_two_replicas_match_one_device(self):
        batch = make_batch(seed=5, b=4)
        batch["label"] = tf.where(batch["label"] == 255, tf.zeros_like(batch["label"]), batch["label"])

        single = PixelLinear(3, 3)
        single_step = steps.make_train_step(single, losses.cross_entropy, optim.SGD(0.1, momentum=0.9))
        single_logs = [single_step(batch) for _ in range(3)]

        strategy = two_replica_strategy()
        with strategy.scope():
            model = PixelLinear(3, 3)
            opt = optim.SGD(0.1, momentum=0.9)
            opt.build(model.trainable_variables)
        step = steps.distribute_step(
            strategy, steps.make_train_step(model, losses.cross_entropy, opt))
        ds = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch).unbatch().batch(4).repeat())
        iterator = iter(ds)
        for expected in single_logs:
            logs = tf.function(step)(next(iterator))
            self.assertAllClose(logs["loss"], expected["loss"], rtol=1e-5)
        self.assertAllClose(model.w.numpy(), single.w.numpy(), rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    tf.test.main()
