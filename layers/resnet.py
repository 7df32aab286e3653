"""ResNet-50 (He et al., 2015) as Keras applications builds it, as a U-Net
encoder that returns its feature pyramid.

Keras' `keras.applications.ResNet50` ("v1", stride in the first 1x1
convolution of a stage, as in Caffe's original):

  stem     pad 3, 7x7 conv stride 2, BN, ReLU            -> stride 2, 64 ch
           pad 1, 3x3 max pool stride 2
  conv2    3 bottlenecks, 64 -> 256 channels             -> stride 4, 256
  conv3    4 bottlenecks, 128 -> 512, first stride 2     -> stride 8, 512
  conv4    6 bottlenecks, 256 -> 1024, first stride 2    -> stride 16, 1024
  conv5    3 bottlenecks, 512 -> 2048, first stride 2    -> stride 32, 2048

  bottleneck: 1x1 (stride) -> 3x3 -> 1x1 (4x channels, no ReLU), each
  conv-BN; plus the shortcut (1x1 conv-BN with the stride in the first block
  of a stage, the identity otherwise); ReLU.

Built from `layers.blocks.ConvBNAct`. Keras' convolutions have a bias before
each batch norm; ours do not (as everywhere in this project): a bias before
a batch norm is cancelled by the mean in training and equals a shift of the
moving mean at inference, so `tools.import_encoder` folds it into
`moving_mean` and the outputs are the same. Batch norms use Keras'
epsilon 1.001e-5. The input is what the weights expect after the U-Net's
in-graph normalisation (`layers.pretrained`), RGB channel order.
"""
from __future__ import annotations

import tensorflow as tf

from core.precision import Policy
from layers.base import Module
from layers.blocks import ConvBNAct

BN_EPSILON = 1.001e-5
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride)


class Bottleneck(Module):
    """1x1 -> 3x3 -> 1x1 (4 * filters) conv-BN units plus a shortcut, ReLU.

    `projection` makes the shortcut a strided 1x1 conv-BN (first block of a
    stage); otherwise it is the input.
    """

    def __init__(self, filters: int, *, stride: int = 1, projection: bool = False,
                 unit_args: dict, policy: "str | Policy" = "float32",
                 name: str | None = None):
        super().__init__(policy=policy, name=name)
        common = dict(unit_args, policy=policy)
        with self.name_scope:
            self.shortcut = (ConvBNAct(4 * filters, 1, stride=stride, padding="VALID",
                                       activation="linear", name="shortcut", **common)
                             if projection else None)
            self.unit1 = ConvBNAct(filters, 1, stride=stride, padding="VALID",
                                   name="unit1", **common)
            self.unit2 = ConvBNAct(filters, 3, name="unit2", **common)
            self.unit3 = ConvBNAct(4 * filters, 1, padding="VALID", activation="linear",
                                   name="unit3", **common)

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        shortcut = (tf.cast(x, self.compute_dtype) if self.shortcut is None
                    else self.shortcut(x, training=training))
        y = self.unit3(self.unit2(self.unit1(x, training=training), training=training),
                       training=training)
        return tf.nn.relu(y + shortcut)


class ResNet50(Module):
    """ResNet-50 encoder: features at strides 2, 4, 8, 16, 32.

    Args:
      max_stride: the deepest feature built and returned (2 to 32); the
        stages below it are not built (a depth-3 U-Net uses strides 2-8).
      cross_replica_bn, bn_momentum: of every batch norm.
      frozen: optional float32 variable shared by the batch norms
        (`layers.norm.BatchNorm`), 1 while the encoder is frozen.

    Call: `x` [B,H,W,C] normalised input, H and W multiples of max_stride ->
    {stride: [B,H/stride,W/stride,channels] compute dtype}.

    Attributes:
      strides, channels: of the returned features, shallowest first.
      first_conv: the stem's `Conv2D` (its kernel takes the input bands).
    """

    STRIDES = (2, 4, 8, 16, 32)
    CHANNELS = (64, 256, 512, 1024, 2048)

    def __init__(self, *, max_stride: int = 32, cross_replica_bn: bool = False,
                 bn_momentum: float = 0.99, frozen: tf.Variable | None = None,
                 policy: "str | Policy" = "float32", name: str | None = "resnet50"):
        super().__init__(policy=policy, name=name)
        if max_stride not in self.STRIDES:
            raise ValueError(f"ResNet50 max_stride must be one of {self.STRIDES}; "
                             f"got {max_stride!r}")
        levels = self.STRIDES.index(max_stride) + 1
        self.strides = self.STRIDES[:levels]
        self.channels = self.CHANNELS[:levels]
        unit_args = dict(cross_replica_bn=cross_replica_bn, bn_momentum=bn_momentum,
                         bn_epsilon=BN_EPSILON, bn_frozen=frozen)
        with self.name_scope:
            self.stem = ConvBNAct(64, 7, stride=2, padding="VALID", policy=policy,
                                  name="stem", **unit_args)
            self.stages = [
                [Bottleneck(width, stride=stride if b == 0 else 1, projection=b == 0,
                            unit_args=unit_args, policy=policy, name=f"conv{s + 2}_block{b + 1}")
                 for b in range(blocks)]
                for s, (width, blocks, stride) in enumerate(STAGES[:levels - 1])]

    @property
    def first_conv(self):
        return self.stem.conv

    def __call__(self, x: tf.Tensor, training: bool = False) -> dict:
        # Keras pads symmetrically (ZeroPadding2D) where "SAME" would pad
        # 2 before and 3 after: explicit padding keeps its alignment.
        x = tf.pad(tf.cast(x, self.compute_dtype), [[0, 0], [3, 3], [3, 3], [0, 0]])
        x = self.stem(x, training=training)
        features = {2: x}
        if len(self.stages):
            # Zero padding equals -inf padding here: the input is post-ReLU.
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
            x = tf.nn.max_pool2d(x, ksize=3, strides=2, padding="VALID")
        for stride, stage in zip(self.strides[1:], self.stages):
            for block in stage:
                x = block(x, training=training)
            features[stride] = x
        return features
