"""Tests of train_loop.lr_finder: the sweep against a NumPy reference on a
planted quadratic, bit-identical restore of a UNet and its SGD slots, the
suggestion rules on planted curves, and the CSV / PNG / TensorBoard writers."""
import math
import os
import sys
from unittest import mock

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import losses, optim
from layers import UNet
from train_loop import lr_finder, steps


class Quadratic(tf.Module):
    """logits = w everywhere, so loss = mean(logits**2) = w**2 and
    grad = 2w: plain SGD gives w' = w (1 - 2 lr), diverging for lr > 1."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(1.0)

    def __call__(self, images, training=False):
        del training
        return self.w * tf.ones_like(tf.cast(images[..., :1], tf.float32))


def square_loss(labels, logits):
    del labels
    return tf.reduce_mean(tf.square(logits))


def batches(n=2, size=16, seed=0):
    """Learnable synthetic batches: the label is 1 where band 0 is bright."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, [n, size, size, 3]).astype(np.float32)
    labels = (images[..., 0] > 127).astype(np.uint8)
    labels[:, 0, :] = 255  # some ignored pixels, as real masks have
    return tf.data.Dataset.from_tensors({"image": images, "label": labels}).repeat()


def tiny_unet():
    return UNet(2, in_channels=3, filters=4, depth=3, residual=True,
                mean=[127.0] * 3, std=[74.0] * 3)


def reference_sweep(num_steps, min_lr, max_lr, smoothing, divergence):
    """The finder's rules on the quadratic, in float64 NumPy."""
    lrs = min_lr * (max_lr / min_lr) ** (np.arange(num_steps) / (num_steps - 1))
    w, avg, best, out = 1.0, 0.0, math.inf, []
    for i, lr in enumerate(lrs):
        loss = w * w
        out.append((lr, loss))
        avg = smoothing * avg + (1 - smoothing) * loss
        value = avg / (1 - smoothing ** (i + 1))
        best = min(best, value)
        if value > divergence * best:
            break
        w = w - lr * 2 * w
    return np.array(out)


class SweepTest(tf.test.TestCase):

    def test_quadratic_matches_numpy_and_stops_on_divergence(self):
        model, opt = Quadratic(), optim.SGD(0.5, momentum=0.0)
        result = lr_finder.find_lr(model, square_loss, opt, iter(batches()),
                                   min_lr=1e-2, max_lr=1e2, num_steps=30,
                                   smoothing=0.9, divergence=4.0)
        ref = reference_sweep(30, 1e-2, 1e2, 0.9, 4.0)
        # Planted: the loss explodes past lr = 1; the reference stops at step
        # 21 of 30 with the smoothed loss 7.6x its best.
        self.assertLen(ref, 22)
        self.assertTrue(result.stopped_early)
        self.assertLen(result.lrs, len(ref))
        self.assertAllClose(result.lrs, ref[:, 0], rtol=1e-6)
        self.assertAllClose(result.losses, ref[:, 1], rtol=2e-4, atol=1e-12)
        self.assertGreater(result.smoothed[-1], 4.0 * result.smoothed[:-1].min())
        # The suggestion lies in the falling part, below the best lr.
        self.assertLess(result.suggested_lr, result.best_lr)
        # w and the optimizer are restored.
        self.assertEqual(model.w.numpy(), 1.0)
        self.assertEqual(opt.learning_rate.numpy(), np.float32(0.5))
        self.assertEqual(opt.iterations.numpy(), 0)

    def test_lrs_exponential_monotone_and_complete_without_divergence(self):
        result = lr_finder.find_lr(Quadratic(), square_loss,
                                   optim.SGD(0.1), iter(batches()),
                                   min_lr=1e-5, max_lr=1e-1, num_steps=9,
                                   divergence=None)
        expected = np.geomspace(1e-5, 1e-1, 9)
        self.assertFalse(result.stopped_early)
        self.assertAllClose(result.lrs, expected, rtol=1e-6)
        self.assertTrue(np.all(np.diff(result.lrs) > 0))
        self.assertAllClose(np.diff(np.log(result.lrs)), np.full(8, np.log(10) / 2),
                            rtol=1e-5)
        self.assertAllClose(result.smoothed,
                            lr_finder.smooth_losses(result.losses, 0.98))
        # The first loss is taken before any update: w0**2 = 1.
        self.assertAllClose(result.losses[0], 1.0)

    def test_every_variable_and_slot_restored_bit_identically(self):
        model = tiny_unet()
        opt = optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
        loss_fn = losses.get_loss("ce")
        data = iter(batches())
        # A mid-training state: built model, non-zero velocity slots,
        # iterations = 7 and moved batch-norm statistics, all of which the
        # sweep changes and must give back.
        model(next(data)["image"], training=False)
        opt.build(model.trainable_variables)
        rng = np.random.default_rng(3)
        for var in list(opt.velocity) + [v for v in model.variables if "moving" in v.name]:
            var.assign(rng.uniform(0.1, 1.0, var.shape).astype(np.float32))
        opt.iterations.assign(7)
        variables = list(model.variables) + list(opt.variables)
        before = [v.numpy().copy() for v in variables]
        self.assertGreater(len(model.variables), len(model.trainable_variables))

        result = lr_finder.find_lr(model, loss_fn, opt, data, min_lr=1e-3,
                                   max_lr=10.0, num_steps=4, divergence=None)
        # The sweep did train: its losses move.
        self.assertGreater(np.ptp(result.losses), 1e-4)
        self.assertLen(model.variables + opt.variables, len(variables))
        for var, value in zip(variables, before):
            self.assertTrue(np.array_equal(var.numpy(), value),
                            msg=f"{var.name} changed by the sweep")

    def test_restores_when_a_step_raises(self):
        model, opt = Quadratic(), optim.SGD(0.5, momentum=0.0)

        def failing_loss(labels, logits):
            tf.debugging.assert_greater(model.w, 0.85, message="planted failure")
            return square_loss(labels, logits)

        # Step 0 (lr 0.1) moves w from 1 to 0.8; step 1's assert then raises.
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "planted failure"):
            lr_finder.find_lr(model, failing_loss, opt, iter(batches()),
                              min_lr=0.1, max_lr=1.0, num_steps=5)
        self.assertEqual(model.w.numpy(), 1.0)
        self.assertEqual(opt.learning_rate.numpy(), np.float32(0.5))

    def test_bad_arguments_raise_one_clear_error(self):
        for kwargs, text in (({"min_lr": 1.0, "max_lr": 0.1}, "min_lr < max_lr"),
                             ({"num_steps": 1}, "num_steps"),
                             ({"divergence": 0.5}, "divergence"),
                             ({"smoothing": 1.0}, "smoothing")):
            with self.assertRaisesRegex(ValueError, text):
                lr_finder.find_lr(Quadratic(), square_loss, optim.SGD(0.1),
                                  iter(batches()), **kwargs)


class SuggestionTest(parameterized.TestCase, tf.test.TestCase):

    def test_smooth_losses_hand_values(self):
        # beta 0.5: avg = .5, 1.25, 2.125; corrections 1-.5, 1-.25, 1-.125.
        self.assertAllClose(lr_finder.smooth_losses([1.0, 2.0, 3.0], 0.5),
                            [1.0, 1.25 / 0.75, 2.125 / 0.875])
        self.assertAllClose(lr_finder.smooth_losses([3.0, 1.0], 0.0), [3.0, 1.0])

    def planted_curve(self):
        # Falls fastest at log10 lr = -3 (tanh), bottoms out, then rises
        # sharply past lr = 0.1.
        lrs = np.geomspace(1e-6, 1.0, 241)
        x = np.log10(lrs)
        curve = 2.0 - np.tanh((x + 3.0) / 0.5) + np.exp(4.0 * (x + 1.0)) * 0.05
        return lrs, curve

    def test_steepest_on_planted_curve(self):
        lrs, curve = self.planted_curve()
        lr = lr_finder.suggest_lr(lrs, curve, method="steepest", skip_start=10)
        grid = lrs[1] / lrs[0]
        self.assertBetween(lr, 1e-3 / grid, 1e-3 * grid)

    def test_min_div10_on_planted_curve(self):
        lrs, curve = self.planted_curve()
        best = lrs[np.argmin(curve)]
        self.assertBetween(best, 1e-2, 1e-1)  # the planted minimum
        self.assertAllClose(lr_finder.suggest_lr(lrs, curve, method="min_div10"),
                            best / 10)

    def test_steepest_falls_back_when_loss_never_falls(self):
        lrs = np.geomspace(1e-4, 1.0, 20)
        rising = np.linspace(1.0, 3.0, 20)
        self.assertAllClose(lr_finder.suggest_lr(lrs, rising), 1e-5)

    def test_unknown_method(self):
        with self.assertRaisesRegex(ValueError, "steepest"):
            lr_finder.suggest_lr([1.0, 2.0], [1.0, 0.5], method="valley")


class WritersTest(tf.test.TestCase):

    def result(self):
        lrs = np.geomspace(1e-5, 1.0, 12)
        raw = 1.0 + np.sin(np.arange(12.0)) / 3
        smoothed = lr_finder.smooth_losses(raw, 0.9)
        return lr_finder.LRFinderResult(
            lrs=lrs, losses=raw, smoothed=smoothed,
            suggested_lr=lr_finder.suggest_lr(lrs, smoothed),
            best_lr=float(lrs[np.argmin(smoothed)]))

    def test_csv_round_trip(self):
        result, path = self.result(), os.path.join(self.get_temp_dir(), "a", "lr.csv")
        lr_finder.write_csv(result, path)
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.readline().strip(), "lr,loss,smoothed")
        lrs, raw, smoothed = lr_finder.read_csv(path)
        np.testing.assert_array_equal(lrs, result.lrs)  # repr keeps every bit
        np.testing.assert_array_equal(raw, result.losses)
        np.testing.assert_array_equal(smoothed, result.smoothed)

    def test_png_is_valid(self):
        path = os.path.join(self.get_temp_dir(), "lr.png")
        self.assertTrue(lr_finder.write_png(self.result(), path))
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        image = iio.imread(path)
        self.assertEqual(image.shape[:2], (450, 700))
        self.assertGreater(np.ptp(image[..., :3]), 100)  # something is drawn

    def test_png_without_matplotlib_warns_and_skips(self):
        path = os.path.join(self.get_temp_dir(), "none.png")
        with self.assertWarnsRegex(UserWarning, "matplotlib"):
            with mock.patch.dict(sys.modules, {"matplotlib": None}):
                self.assertFalse(lr_finder.write_png(self.result(), path))
        self.assertFalse(os.path.exists(path))

    def test_tensorboard_scalars(self):
        result, logdir = self.result(), self.get_temp_dir() + "/tb"
        lr_finder.write_tensorboard(result, logdir)
        found = {}
        for name in tf.io.gfile.listdir(logdir):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
                for value in event.summary.value:
                    found.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor)
        self.assertAllClose([found["lr_find/smoothed_loss"][i] for i in range(12)],
                            result.smoothed)
        self.assertAllClose([found["lr_find/lr"][i] for i in range(12)], result.lrs)
        self.assertIn(b"suggested max lr", found["lr_find/suggested_lr"][0].item())


if __name__ == "__main__":
    tf.test.main()
