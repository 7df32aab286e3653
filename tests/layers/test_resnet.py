"""ResNet-50 encoder: pyramid shapes and dtypes, truncation, weight-decay
roles, graph equals eager, the batch norms' freeze switch, and the U-Net on
top of it. Equality with Keras' ResNet50 is in tests/tools/test_import_encoder.py."""
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from layers import UNet, count_parameters
from layers.norm import BatchNorm
from layers.resnet import ResNet50
from tests.distribute import two_replica_strategy
from train_loop.bn_recompute import recompute_batch_norm


def images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


class ResNet50Test(tf.test.TestCase, parameterized.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.full = ResNet50()
        cls.full(tf.zeros([1, 32, 32, 3]))

    def test_pyramid_strides_channels_and_parameter_count(self):
        features = self.full(images([2, 64, 96, 3]))
        self.assertEqual(sorted(features), [2, 4, 8, 16, 32])
        for stride, channels in zip(ResNet50.STRIDES, ResNet50.CHANNELS):
            self.assertEqual(features[stride].shape, (2, 64 // stride, 96 // stride, channels))
        # Keras' ResNet50(include_top=False) has 23,587,712 parameters
        # (23,534,592 trainable); ours lacks the 26,560 conv biases that sit
        # before a batch norm (folded into the moving means on import).
        trainable, frozen = count_parameters(self.full)
        self.assertEqual(trainable, 23_534_592 - 26_560)
        self.assertEqual(trainable + frozen, 23_587_712 - 26_560)

    def test_every_convolution_kernel_is_decayed_nothing_else(self):
        kernels = self.full.decay_variables
        self.assertLen(kernels, 53)  # 1 stem + 16 blocks x 3 + 4 projections
        self.assertTrue(all(v.name.endswith("/w:0") for v in kernels))

    def test_truncated_encoder_builds_only_what_it_returns(self):
        small = ResNet50(max_stride=8)
        features = small(images([1, 32, 32, 5]))
        self.assertEqual(sorted(features), [2, 4, 8])
        self.assertEqual(features[8].shape, (1, 4, 4, 512))
        self.assertLen(small.stages, 2)
        self.assertEqual(small.first_conv.w.shape, (7, 7, 5, 64))
        with self.assertRaisesRegex(ValueError, "max_stride must be one of"):
            ResNet50(max_stride=64)

    @parameterized.parameters("mixed_bfloat16", "mixed_float16")
    def test_features_in_the_compute_dtype(self, policy):
        enc = ResNet50(max_stride=4, policy=policy)
        features = enc(images([1, 16, 16, 3]), training=True)
        self.assertEqual({f.dtype for f in features.values()},
                         {tf.as_dtype(policy.split("_")[1])})
        self.assertTrue(all(v.dtype == tf.float32 for v in enc.variables))

    def test_graph_equals_eager_at_inference(self):
        enc = ResNet50(max_stride=8)
        x = images([2, 32, 32, 3])
        eager = enc(x)
        graph = tf.function(lambda t: enc(t))(x)
        for s in eager:
            scale = float(np.abs(eager[s]).max())
            self.assertAllClose(graph[s], eager[s], rtol=0, atol=1e-5 * scale)

    def test_frozen_switch_is_inference_and_leaves_statistics_alone(self):
        flag = tf.Variable(1.0, trainable=False)
        enc = ResNet50(max_stride=4, frozen=flag)
        x = images([2, 16, 16, 3])
        enc(x)
        bns = [m for m in enc.submodules if isinstance(m, BatchNorm)]
        before = [b.moving_mean.numpy().copy() for b in bns]
        train_frozen = enc(x, training=True)
        inference = enc(x, training=False)
        for s in train_frozen:
            self.assertAllEqual(train_frozen[s], inference[s])
        for b, old in zip(bns, before):
            self.assertAllEqual(b.moving_mean, old)
        # The recompute skips frozen layers, leaving their statistics as they are.
        done = recompute_batch_norm(enc, [x], 1)
        self.assertEqual(done["layers"], 0)
        for b, old in zip(bns, before):
            self.assertAllEqual(b.moving_mean, old)
        flag.assign(0.0)
        live = enc(x, training=True)
        self.assertGreater(float(np.abs(live[4] - inference[4]).max()), 1e-3)
        self.assertGreater(float(np.abs(bns[0].moving_mean.numpy() - before[0]).max()), 0.0)
        self.assertEqual(recompute_batch_norm(enc, [x], 1)["layers"], len(bns))

    def test_frozen_cross_replica_batch_norm_under_two_replicas(self):
        # The frozen switch is a select, not a tf.cond: the all_reduce of the
        # synchronised batch norm still runs on both replicas.
        strategy = two_replica_strategy()
        x = images([4, 4, 4, 3]) * 2 + 1
        with strategy.scope():
            flag = tf.Variable(1.0, trainable=False,
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            bn = BatchNorm(cross_replica=True, frozen=flag)
            bn(x[:1])

        @tf.function
        def run(batch):
            return strategy.run(lambda b: bn(b, training=True), args=(batch,))

        dist = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(x).repeat())
        frozen = tf.concat(strategy.experimental_local_results(run(next(iter(dist)))), 0)
        self.assertAllClose(frozen, bn(x, training=False), atol=1e-5)
        self.assertAllEqual(bn.moving_mean.values[0], np.zeros(3))
        flag.assign(0.0)
        live = tf.concat(strategy.experimental_local_results(run(next(iter(dist)))), 0)
        x64 = x.astype(np.float64)
        expected = (x64 - x64.mean((0, 1, 2))) / np.sqrt(x64.var((0, 1, 2)) + 1e-3)
        self.assertAllClose(live, expected, atol=1e-4)  # global-batch statistics


class UNetResNetTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((3, "conv"), (4, "parallel_dilated"))
    def test_logits_and_skips(self, depth, center):
        model = UNet(3, in_channels=4, filters=4, depth=depth, center=center,
                     encoder="resnet50")
        logits = model(images([1, 32, 32, 4]) * 50 + 100, training=True)
        self.assertEqual(logits.shape, (1, 32, 32, 3))
        self.assertEqual(logits.dtype, tf.float32)
        self.assertEqual(model.encoder.strides[-1], 2 ** depth)
        self.assertEqual(model.config["encoder"], "resnet50")
        # Decoder level i takes the encoder's stride-2**i feature (none at stride 1).
        for i, block in enumerate(model.decoder):
            skip = ResNet50.CHANNELS[i - 1] if i else 0
            self.assertEqual(block.unit1.conv.w.shape[2], 4 * 2 ** i + skip)
        self.assertLen(model.encoder_variables, len(model.encoder.trainable_variables))
        self.assertEqual(UNet(2, in_channels=3).encoder_variables, ())

    def test_unknown_encoder(self):
        with self.assertRaisesRegex(ValueError, "unknown encoder 'vgg'"):
            UNet(2, in_channels=3, encoder="vgg")
