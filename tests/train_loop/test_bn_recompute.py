"""Batch-norm statistics re-estimated exactly: a planted U-Net whose moving
averages are stale (raw 0..255 bands, no input normalisation, so every
layer's batch statistics are far from the initial 0 and 1), checked against
the NumPy mean and variance of every layer's input, against training-mode
output, under two replicas, through a checkpoint and through the trainer."""
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from core import losses
from layers import UNet
from layers.norm import BatchNorm
from train_loop import controller, recompute_batch_norm, workdir as workdir_lib
from train_loop import evaluator as evaluator_lib
from train_loop.bn_recompute import batch_norm_layers
from train_loop.config import BatchNormConfig, LoopConfig, ModelConfig, TrainConfig
from tests.distribute import two_replica_strategy

SIZE, CHANNELS, CLASSES = 16, 3, 3


def images(seed, n=4):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0, 255, [n, SIZE, SIZE, CHANNELS]), tf.float32)


def build(seed=5, **kwargs):
    """depth 3 at 16x16: the center sees 2x2 maps, 16 pixels a batch, so the
    batch means and variances differ between batches."""
    tf.random.set_seed(seed)
    model = UNet(CLASSES, in_channels=CHANNELS, filters=4, depth=3,
                 center="serial_dilated", **kwargs)
    model(tf.zeros([1, SIZE, SIZE, CHANNELS]), training=False)
    return model


def moving_stats(model):
    return [(layer.moving_mean.numpy(), layer.moving_variance.numpy())
            for layer in batch_norm_layers(model)]


def training_output_and_inputs(model, batch):
    """The training-mode logits and every BatchNorm's input (float64 NumPy,
    keyed by layer), with the moving averages left as they were."""
    saved = [v.numpy() for v in model.variables]
    inputs = {}
    original = BatchNorm.__call__

    def spy(layer, x, training=False):
        inputs.setdefault(id(layer), []).append(np.asarray(x, np.float64))
        return original(layer, x, training=training)

    with mock.patch.object(BatchNorm, "__call__", spy):
        logits = model(batch, training=True).numpy()
    for var, value in zip(model.variables, saved):
        var.assign(value)
    return logits, inputs


class RecomputeTest(tf.test.TestCase):

    def test_planted_stale_averages_then_exact_statistics(self):
        model = build()
        batch = images(0)
        want, _ = training_output_and_inputs(model, batch)
        # Stale averages: inference is far from the training-mode output.
        stale = model(batch, training=False).numpy()
        self.assertGreater(np.abs(stale - want).max(), 10 * np.abs(want).max())

        weights = [v.numpy() for v in model.trainable_variables]
        done = recompute_batch_norm(model, tf.data.Dataset.from_tensors({"image": batch}), 5)
        self.assertEqual(done["batches"], 1)  # the dataset ran out first
        self.assertEqual(done["layers"], len(batch_norm_layers(model)))
        # On the evaluated batch itself, inference now equals training-mode
        # output: eagerly and in a graph, where the BN is folded into the conv.
        scale = np.abs(want).max()
        self.assertAllClose(model(batch, training=False), want, rtol=0, atol=2e-5 * scale)
        folded = tf.function(lambda x: model(x, training=False))(batch)
        self.assertAllClose(folded, want, rtol=0, atol=2e-5 * scale)
        for got, before in zip(model.trainable_variables, weights):
            self.assertAllEqual(got.numpy(), before, msg=got.name)

    def test_moving_statistics_are_the_pooled_numpy_moments_of_the_layer_inputs(self):
        model = build()
        batches = [images(s) for s in range(3)]
        per_batch = [training_output_and_inputs(model, b)[1] for b in batches]
        # A list of plain image tensors, more than asked for: only 3 are used.
        done = recompute_batch_norm(model, batches + [images(9)], 3)
        self.assertEqual(done["batches"], 3)
        layers = batch_norm_layers(model)
        self.assertLen(layers, 22)  # every ConvBNAct and projection
        between = 0.0
        for layer in layers:
            x = np.concatenate([np.concatenate(b[id(layer)]) for b in per_batch])
            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
            self.assertAllClose(layer.moving_mean.numpy(), mean, rtol=1e-5,
                                atol=1e-5 * np.sqrt(var).max(), msg=layer.name)
            self.assertAllClose(layer.moving_variance.numpy(), var, rtol=1e-5, msg=layer.name)
            batch_vars = np.mean([np.concatenate(b[id(layer)]).var(axis=(0, 1, 2))
                                  for b in per_batch], axis=0)
            between = max(between, float(np.max(var / batch_vars)))
        # The pooled variance is not the mean of the batch variances here
        # (the spread of the batch means at the 2x2 center is not small).
        self.assertGreater(between, 1.05)

    def test_two_replicas_equal_one_device(self):
        batches = [images(s) for s in range(2)]
        single = build(seed=3)
        initial = [v.numpy() for v in single.variables]
        recompute_batch_norm(single, batches, 2)

        strategy = two_replica_strategy()
        with strategy.scope():
            model = build(seed=3, cross_replica_bn=True)
            for var, value in zip(model.variables, initial):
                var.assign(value)
        # Each global batch of 4 is split 2 + 2 over the replicas.
        data = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices({"image": tf.concat(batches, 0)}).batch(4))
        done = recompute_batch_norm(model, data, 2, strategy)
        self.assertEqual(done["batches"], 2)
        for layer, (mean, var) in zip(batch_norm_layers(model), moving_stats(single)):
            for replica_mean in strategy.experimental_local_results(layer.moving_mean):
                self.assertAllClose(replica_mean, mean, rtol=1e-5, atol=1e-5, msg=layer.name)
            for replica_var in strategy.experimental_local_results(layer.moving_variance):
                self.assertAllClose(replica_var, var, rtol=1e-5, msg=layer.name)

    def test_checkpoint_holds_the_recomputed_statistics(self):
        model = build()
        recompute_batch_norm(model, [images(1)], 1)
        expected = moving_stats(model)
        path = tf.train.Checkpoint(model=model).write(os.path.join(self.get_temp_dir(), "bn"))
        restored = build(seed=11)
        tf.train.Checkpoint(model=restored).read(path).assert_consumed()
        for (mean, var), (want_mean, want_var) in zip(moving_stats(restored), expected):
            self.assertAllEqual(mean, want_mean)
            self.assertAllEqual(var, want_var)
        self.assertNotAllClose(expected[0][1], np.ones_like(expected[0][1]))

    def test_bn_momentum_reaches_every_layer(self):
        for center in ("conv", "residual", "serial_dilated", "parallel_dilated"):
            model = UNet(CLASSES, in_channels=CHANNELS, filters=4, depth=3, center=center,
                         bn_momentum=0.7)
            model(tf.zeros([1, SIZE, SIZE, CHANNELS]), training=False)
            momenta = {layer.momentum for layer in batch_norm_layers(model)}
            self.assertEqual(momenta, {0.7}, center)
            self.assertEqual(model.config["bn_momentum"], 0.7)
        # One training step moves the first layer 30 % of the way to the
        # batch mean of its input.
        model = build(bn_momentum=0.7)
        batch = images(2)
        _, inputs = training_output_and_inputs(model, batch)
        first = batch_norm_layers(model)[0]
        model(batch, training=True)
        self.assertAllClose(first.moving_mean.numpy(),
                            0.3 * inputs[id(first)][0].mean(axis=(0, 1, 2)), rtol=1e-5)
        with self.assertRaisesRegex(ValueError, "bn_momentum must be in"):
            UNet(CLASSES, in_channels=CHANNELS, bn_momentum=1.5)

    def test_bad_arguments_are_one_clear_error(self):
        model = build()
        with self.assertRaisesRegex(ValueError, "num_batches must be >= 1"):
            recompute_batch_norm(model, [images(0)], 0)
        with self.assertRaisesRegex(ValueError, "yielded no batch"):
            recompute_batch_norm(model, [], 3)
        unbuilt = UNet(CLASSES, in_channels=CHANNELS, filters=4, depth=3)
        with self.assertRaisesRegex(ValueError, "call the model once first"):
            recompute_batch_norm(unbuilt, [images(0)], 1)


def _dataset(seed, count=None):
    rng = np.random.default_rng(seed)
    n = 8 if count is None else count
    data = {"image": rng.uniform(0, 255, [n, SIZE, SIZE, CHANNELS]).astype(np.float32),
            "label": rng.integers(0, CLASSES, [n, SIZE, SIZE]).astype(np.uint8)}
    ds = tf.data.Dataset.from_tensor_slices(data)
    return (ds.repeat() if count is None else ds).batch(4)


class TrainerTest(tf.test.TestCase):

    def _run(self, workdir, recompute_batches):
        self.bn_datasets_built = 0

        def bn_dataset_fn(ctx):
            self.bn_datasets_built += 1
            return _dataset(7)

        config = TrainConfig(
            model=ModelConfig(filters=4, depth=3),
            loop=LoopConfig(train_steps=4, steps_per_loop=2, eval_every=2, checkpoint_every=2),
            batch_norm=BatchNormConfig(recompute_batches=recompute_batches))
        lines = []
        summary = controller.train(
            config, workdir=workdir, model_fn=lambda: build(seed=2),
            train_dataset_fn=lambda ctx: _dataset(0), eval_dataset_fn=lambda ctx: _dataset(1, 4),
            bn_dataset_fn=bn_dataset_fn, class_names=["a", "b", "c"],
            palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]], log=lines.append)
        return summary, lines

    def test_best_and_latest_hold_statistics_recomputed_for_their_weights(self):
        workdir = os.path.join(self.get_temp_dir(), "run")
        summary, lines = self._run(workdir, recompute_batches=2)
        self.assertLen([l for l in lines if "batch-norm statistics re-estimated on 2" in l], 2)
        self.assertGreater(summary["bn_recompute_seconds"], 0.0)
        # Two recomputes, one pipeline: the batches were kept in memory.
        self.assertEqual(self.bn_datasets_built, 1)
        self._check_recomputed_checkpoints(workdir)

    def test_batches_too_big_to_keep_are_drawn_again_with_the_same_result(self):
        # At the Evaluator: the trainer test above covers the kept batches.
        built = []

        def bn_dataset_fn(ctx):
            built.append(ctx)
            return _dataset(7)

        model = build(seed=3)
        expected = build(seed=3)
        recompute_batch_norm(expected, _dataset(7), 2)
        with mock.patch.object(evaluator_lib, "RECOMPUTE_CACHE_BYTES", 1):
            evaluator = evaluator_lib.Evaluator(
                model, losses.cross_entropy, tf.distribute.get_strategy(),
                eval_dataset_fn=lambda ctx: _dataset(1, 4), bn_dataset_fn=bn_dataset_fn,
                bn_batches=2, class_names=["a", "b", "c"], palette=[[0, 0, 0]] * 3,
                rgb_channels=[0, 1, 2], exclude_from_means=(), summary_batch={},
                summary_images=0, writer=None, log=lambda line: None)
            for step in (1, 2):
                for layer in batch_norm_layers(model):  # stale again before each
                    layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
                    layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
                evaluator.recompute_statistics(step)
                self.assertLen(built, step)  # drawn afresh each time
                for (mean, var), (want_mean, want_var) in zip(moving_stats(model),
                                                               moving_stats(expected)):
                    self.assertAllClose(mean, want_mean, rtol=1e-6, atol=1e-6)
                    self.assertAllClose(var, want_var, rtol=1e-6)

    def _check_recomputed_checkpoints(self, workdir):
        for which in ("latest", "best"):
            path = tf.train.latest_checkpoint(workdir_lib.checkpoint_dir(workdir, which))
            saved = build(seed=9)
            tf.train.Checkpoint(model=saved).read(path).expect_partial()
            expected = build(seed=9)
            for var, value in zip(expected.variables, saved.variables):
                var.assign(value)
            # Recompute independently on the same two batches of bn_dataset_fn.
            recompute_batch_norm(expected, _dataset(7), 2)
            for (mean, var), (want_mean, want_var) in zip(moving_stats(saved),
                                                           moving_stats(expected)):
                self.assertAllClose(mean, want_mean, rtol=1e-6, atol=1e-6, msg=which)
                self.assertAllClose(var, want_var, rtol=1e-6, msg=which)

    def test_zero_keeps_the_moving_averages(self):
        workdir = os.path.join(self.get_temp_dir(), "off")
        summary, lines = self._run(workdir, recompute_batches=0)
        self.assertFalse(any("re-estimated" in l for l in lines))
        self.assertEqual(summary["bn_recompute_seconds"], 0.0)
        path = tf.train.latest_checkpoint(workdir_lib.checkpoint_dir(workdir, "latest"))
        saved = build(seed=9)
        tf.train.Checkpoint(model=saved).read(path).expect_partial()
        # The moving averages after four EMA steps (momentum 0.99): 96 % of
        # the initial values still in them, far from the statistics.
        exact = build(seed=9)
        for var, value in zip(exact.variables, saved.variables):
            var.assign(value)
        recompute_batch_norm(exact, _dataset(7), 2)
        for (_, var), (_, exact_var) in zip(moving_stats(saved), moving_stats(exact)):
            self.assertAllClose(var, 0.96 + 0.04 * exact_var, rtol=0.5)
            self.assertNotAllClose(var, exact_var, rtol=0.5)


if __name__ == "__main__":
    tf.test.main()
