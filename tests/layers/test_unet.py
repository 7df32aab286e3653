"""UNet: shapes over the whole family, graph/eager agreement, unknown sizes,
gradients, mixed precision, parameter counts, checkpoints, SavedModel and
the errors a user can cause."""
import itertools
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from layers import CENTERS, UNet, count_parameters
from layers.unet import PARAMETER_COUNT_NOTE

TINY = dict(filters=4, depth=3)


def images(shape=(2, 32, 32, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype(np.float32)


def assert_close(test, got, expected, rel=1e-5):
    """Equal up to float32 round-off, relative to the largest logit (graph
    and eager runs pick different oneDNN kernels, so bits may differ)."""
    expected = np.asarray(expected)
    test.assertAllClose(got, expected, rtol=0,
                        atol=rel * max(1.0, float(np.abs(expected).max())))


def expected_parameters(k, c, f, depth, residual):
    """(trainable, non_trainable) of UNet(center="conv", upsample="transpose")
    counted by hand: bias-free 3x3 convs each followed by BN (2 trainable + 2
    moving statistics per channel), 1x1 projection + BN in residual blocks
    when channels change, 2x2 transposed convs with bias, 1x1 head with bias,
    and the per-band mean/std."""
    trainable = non_trainable = 0

    def conv_bn(cin, cout, kernel):
        nonlocal trainable, non_trainable
        trainable += kernel * kernel * cin * cout + 2 * cout
        non_trainable += 2 * cout

    def block(cin, cout, res):
        conv_bn(cin, cout, 3)
        conv_bn(cout, cout, 3)
        if res and cin != cout:
            conv_bn(cin, cout, 1)

    widths = [f * 2 ** i for i in range(depth)]
    for i, w in enumerate(widths):
        block(c if i == 0 else widths[i - 1], w, residual)
    block(widths[-1], 2 * widths[-1], False)  # the "conv" center
    for w in widths:
        trainable += 4 * (2 * w) * w + w  # upsampler from 2w channels
        block(2 * w, w, residual)         # concat [up, skip] -> w
    trainable += f * k + k
    return trainable, non_trainable + 2 * c


class UNetShapeTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(*itertools.product(sorted(CENTERS), (True, False),
                                                 (3, 4, 5)))
    def test_logit_shapes(self, center, residual, depth):
        model = UNet(3, in_channels=2, filters=2, depth=depth, residual=residual,
                     center=center)
        x = images((1, 32, 32, 2)).astype(np.uint8)  # raw bands, any dtype
        logits = model(x, training=True)
        self.assertEqual(logits.shape, (1, 32, 32, 3))
        self.assertEqual(logits.dtype, tf.float32)
        self.assertTrue(np.all(np.isfinite(logits)))
        self.assertEqual((model.in_channels, model.num_classes, model.depth),
                         (2, 3, depth))


class UNetTest(tf.test.TestCase, parameterized.TestCase):

    def test_eager_equals_tf_function(self):
        model = UNet(2, in_channels=3, residual=True, center="parallel_dilated",
                     **TINY)
        x = images()
        graph = tf.function(lambda t, training: model(t, training=training))
        for training in (True, False):
            assert_close(self, graph(x, training), model(x, training=training))

    def test_unknown_batch_and_spatial_sizes(self):
        model = UNet(2, in_channels=3, residual=True, center="serial_dilated",
                     **TINY)
        fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
            tf.TensorSpec([None, None, None, 3], tf.float32))
        for shape in [(1, 16, 24, 3), (3, 40, 8, 3)]:
            x = images(shape)
            assert_close(self, fn(tf.constant(x)), model(x))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    r"multiples of 2\*\*depth=8"):
            fn(tf.constant(images((1, 12, 16, 3))))

    @parameterized.parameters(*sorted(CENTERS))
    def test_gradient_reaches_every_trainable_variable(self, center):
        model = UNet(3, in_channels=3, residual=True, center=center, **TINY)
        labels = np.random.default_rng(1).integers(0, 3, size=(2, 32, 32))
        with tf.GradientTape() as tape:
            logits = model(images(), training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        for v, g in zip(model.trainable_variables, grads):
            self.assertIsNotNone(g, v.name)
            self.assertGreater(float(tf.norm(g)), 0.0, v.name)
        self.assertNotIn("mean:0", [v.name.split("/")[-1] for v in model.trainable_variables])

    def test_normalisation_is_the_first_op(self):
        mean, std = [10.0, 100.0, 50.0], [2.0, 30.0, 5.0]
        raw = UNet(2, in_channels=3, mean=mean, std=std, **TINY)
        plain = UNet(2, in_channels=3, **TINY)
        x = images()
        raw(x)
        plain(x)
        for a, b in zip(raw.variables, plain.variables):
            if a.name.split("/")[-1] not in ("mean:0", "std:0"):
                b.assign(a)
        assert_close(self, raw(x), plain((x - np.float32(mean)) / np.float32(std)))

    @parameterized.parameters(("mixed_float16", 0.02), ("mixed_bfloat16", 0.08))
    def test_low_precision_close_to_float32(self, policy, tol):
        x = images()
        ref = UNet(3, in_channels=3, residual=True, center="residual", **TINY)
        low = UNet(3, in_channels=3, residual=True, center="residual",
                   policy=policy, **TINY)
        ref(x)
        low(x)
        for a, b in zip(ref.variables, low.variables):
            self.assertEqual(a.name, b.name)
            self.assertEqual(b.dtype, tf.float32)
            b.assign(a)
        for training in (True, False):
            expected = ref(x, training=training).numpy()
            got = low(x, training=training)
            self.assertEqual(got.dtype, tf.float32)
            scale = np.abs(expected).max()
            self.assertLess(np.abs(got.numpy() - expected).max(), tol * scale)
        # A truly different model is far outside that tolerance.
        other = UNet(3, in_channels=3, residual=True, center="residual", **TINY)
        self.assertGreater(np.abs(other(x).numpy() - expected).max(), tol * scale)

    @parameterized.parameters((3, True), (4, False))
    def test_parameter_counts_match_hand_count(self, depth, residual):
        model = UNet(5, in_channels=4, filters=3, depth=depth, residual=residual)
        model(images((1, 16, 16, 4)))
        self.assertEqual(count_parameters(model),
                         expected_parameters(5, 4, 3, depth, residual))

    def test_talk_configuration_count_is_the_documented_one(self):
        model = UNet(2, in_channels=3, filters=32, depth=4, residual=True)
        model(images((1, 16, 16, 3)))
        trainable, non_trainable = count_parameters(model)
        self.assertEqual((trainable, non_trainable),
                         expected_parameters(2, 3, 32, 4, True))
        self.assertIn(f"{trainable + non_trainable:,} total = {trainable:,} "
                      f"trainable + {non_trainable:,} non-trainable",
                      PARAMETER_COUNT_NOTE)

    def test_decay_variables_are_exactly_the_kernels(self):
        model = UNet(2, in_channels=3, residual=True, center="parallel_dilated",
                     upsample="resize", **TINY)
        self.assertEqual(model.decay_variables, ())  # not built yet
        model(images())
        kernels = {v.ref() for v in model.variables if v.name.endswith("/w:0")}
        self.assertEqual({v.ref() for v in model.decay_variables}, kernels)
        self.assertLen(model.decay_variables, len(kernels))
        self.assertTrue(all(v.shape.rank == 4 for v in model.decay_variables))

    def test_checkpoint_round_trip(self):
        x = images()
        model = UNet(2, in_channels=3, residual=True, center="serial_dilated",
                     mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], **TINY)
        model(x, training=True)
        model(x, training=True)  # moving statistics leave their initial values
        path = tf.train.Checkpoint(model=model).write(
            os.path.join(self.get_temp_dir(), "ckpt"))
        restored = UNet(**model.config)
        # Restored before the first call: variables built later pick their
        # values up (deferred restoration).
        tf.train.Checkpoint(model=restored).read(path).assert_existing_objects_matched()
        self.assertAllEqual(restored(x), model(x))
        self.assertAllEqual(restored.mean, [1.0, 2.0, 3.0])
        self.assertLen(restored.variables, len(model.variables))

    def test_saved_model_round_trip(self):
        model = UNet(2, in_channels=3, residual=False, center="conv", **TINY)
        x = images((1, 16, 32, 3))
        expected = model(x)
        module = tf.Module()
        module.model = model
        module.serve = tf.function(
            lambda t: model(t, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        path = os.path.join(self.get_temp_dir(), "saved")
        tf.saved_model.save(module, path)
        loaded = tf.saved_model.load(path)
        assert_close(self, loaded.serve(tf.constant(x)), expected)
        self.assertEqual(loaded.serve(tf.constant(images((2, 24, 8, 3)))).shape,
                         (2, 24, 8, 2))


class UNetErrorTest(tf.test.TestCase):

    def test_spatial_size_not_multiple(self):
        model = UNet(2, in_channels=3, **TINY)
        with self.assertRaisesRegex(ValueError,
                                    r"multiples of 2\*\*depth=8; got width 20"):
            model(images((1, 16, 20, 3)))

    def test_unknown_center_lists_names(self):
        with self.assertRaisesRegex(
                ValueError, r"unknown center 'aspp'; expected one of \['conv', "
                            r"'parallel_dilated', 'residual', 'serial_dilated'\]"):
            UNet(2, in_channels=3, center="aspp")

    def test_channels_differ_from_in_channels(self):
        model = UNet(2, in_channels=4, **TINY)
        with self.assertRaisesRegex(ValueError, "in_channels=4 bands; got images "
                                                "with 3 channels"):
            model(images())

    def test_depth_and_band_statistics(self):
        with self.assertRaisesRegex(ValueError, r"depth must be one of \(3, 4, 5\)"):
            UNet(2, in_channels=3, depth=6)
        with self.assertRaisesRegex(ValueError, "mean must have in_channels=3"):
            UNet(2, in_channels=3, mean=[0.0, 1.0])
        with self.assertRaisesRegex(ValueError, "std must be > 0"):
            UNet(2, in_channels=3, std=[1.0, 0.0, 1.0])


if __name__ == "__main__":
    tf.test.main()
