"""bench_encoder's Keras baseline is the same network as our UNet with a
ResNet-50 encoder: equal parameter counts up to the differences the benchmark
explains (Keras' conv biases before batch norms, our stored input mean/std)."""
import numpy as np
import tensorflow as tf

from benchmarks import bench_encoder
from layers import UNet, count_parameters


class KerasTwinTest(tf.test.TestCase):

    def test_parameter_counts_match_but_for_the_explained_variables(self):
        keras_model = bench_encoder.keras_unet_resnet50(32, 5, "float32")
        self.assertEqual(tuple(keras_model.output.shape), (None, 32, 32, 5))
        keras_trainable, keras_total, biases = bench_encoder.keras_counts(keras_model)
        ours = UNet(5, in_channels=3, filters=bench_encoder.FILTERS,
                    depth=bench_encoder.DEPTH, encoder="resnet50")
        ours(np.zeros([1, 32, 32, 3], np.float32))
        trainable, frozen = count_parameters(ours)
        # conv1..conv4 of ResNet-50 (conv5 is not used at depth 4): 26,560
        # biases in the whole network minus conv5's 3 x (512 + 512 + 2048) + 2048.
        self.assertEqual(biases, 26_560 - 11_264)
        self.assertEqual(keras_trainable, trainable + biases)
        self.assertEqual(keras_total, trainable + frozen + biases - 6)
        self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")
