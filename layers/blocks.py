"""The U-Net's building blocks: conv-BN-activation, plain and residual blocks.

  ConvBNAct      conv (no bias) -> batch norm -> activation; at inference in
                 a graph, the batch norm folded into the conv
  ConvBlock      ConvBNAct -> ConvBNAct                      (the plain U-Net)
  ResidualBlock  ConvBNAct -> conv -> BN, plus the shortcut, -> activation;
                 the shortcut is the input itself, or a 1x1 conv + BN
                 projection when the channel count changes (ResNet's option B)

Convolutions feeding a batch norm have no bias: the norm's offset plays that
role, so a bias would be a redundant parameter and an extra elementwise pass.
All blocks take `x` [B,H,W,C] and return [B,H,W,filters] in the compute dtype.
"""
from __future__ import annotations

import tensorflow as tf

from core.precision import Policy
from layers.activations import get_activation
from layers.base import Module
from layers.conv import Conv2D
from layers.norm import BatchNorm


class ConvBNAct(Module):
    """conv(kernel, dilation, no bias) -> BatchNorm -> activation.

    Args:
      filters: output channels.
      kernel_size, dilation: of the convolution.
      activation: a name from `layers.activations` ("linear" for none).
      cross_replica_bn: synchronised batch norm under tf.distribute.
      bn_momentum: the batch norm's moving-average momentum.
      stride, padding: of the convolution (pretrained encoders: ResNet's
        strided "VALID" convolutions).
      bn_epsilon, bn_frozen: the batch norm's epsilon and freeze switch
        (`layers.norm.BatchNorm`).
    """

    def __init__(self, filters: int, kernel_size: int = 3, *, dilation: int = 1,
                 activation: str = "relu", cross_replica_bn: bool = False,
                 bn_momentum: float = 0.99, stride: int = 1, padding: str = "SAME",
                 bn_epsilon: float = 1e-3, bn_frozen=None,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = filters
        self.activation = get_activation(activation)
        with self.name_scope:
            self.conv = Conv2D(filters, kernel_size, dilation=dilation, stride=stride,
                               padding=padding, use_bias=False, policy=policy, name="conv")
            self.bn = BatchNorm(momentum=bn_momentum, epsilon=bn_epsilon,
                                cross_replica=cross_replica_bn, frozen=bn_frozen,
                                policy=policy, name="bn")

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        # At inference the batch norm is a fixed affine map, folded into the
        # conv's kernel and bias: same result up to rounding, and in a graph
        # grappler fuses conv, bias and ReLU into one oneDNN convolution (a
        # U-Net window 13 % faster here). Eagerly nothing fuses and the folding
        # only adds work, so eager calls (and the first, building call) don't.
        if training or tf.executing_eagerly() or not hasattr(self.bn, "scale"):
            return self.activation(self.bn(self.conv(x), training=training))
        return self.activation(self.conv.scaled(x, *self.bn.inference_affine()))


class ConvBlock(Module):
    """Two 3x3 ConvBNAct: the block of the plain U-Net."""

    def __init__(self, filters: int, *, activation: str = "relu",
                 cross_replica_bn: bool = False, bn_momentum: float = 0.99,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = filters
        with self.name_scope:
            self.unit1 = ConvBNAct(filters, 3, activation=activation,
                                   cross_replica_bn=cross_replica_bn,
                                   bn_momentum=bn_momentum, policy=policy, name="unit1")
            self.unit2 = ConvBNAct(filters, 3, activation=activation,
                                   cross_replica_bn=cross_replica_bn,
                                   bn_momentum=bn_momentum, policy=policy, name="unit2")

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.unit2(self.unit1(x, training=training), training=training)


class ResidualBlock(Module):
    """A ResNet basic block: act(BN(conv(act(BN(conv(x))))) + shortcut(x)).

    The projection shortcut (1x1 conv, no bias, then BN) is created only when
    the input channels differ from `filters`; it is decided on the first call,
    when the input channel count is known.
    """

    def __init__(self, filters: int, *, activation: str = "relu",
                 cross_replica_bn: bool = False, bn_momentum: float = 0.99,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = filters
        self._activation_name = activation
        self.activation = get_activation(activation)
        self._cross_replica_bn = cross_replica_bn
        self._bn_momentum = bn_momentum
        with self.name_scope:
            self.unit1 = ConvBNAct(filters, 3, activation=activation,
                                   cross_replica_bn=cross_replica_bn,
                                   bn_momentum=bn_momentum, policy=policy, name="unit1")
            self.unit2 = ConvBNAct(filters, 3, activation="linear",
                                   cross_replica_bn=cross_replica_bn,
                                   bn_momentum=bn_momentum, policy=policy, name="unit2")
        self.projection = None

    def _shortcut(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        if self.projection is None and x.shape[-1] != self.filters:
            with self.name_scope:
                self.projection = ConvBNAct(
                    self.filters, 1, activation="linear",
                    cross_replica_bn=self._cross_replica_bn, bn_momentum=self._bn_momentum,
                    policy=self.policy, name="projection")
        if self.projection is None:
            return tf.cast(x, self.compute_dtype)
        return self.projection(x, training=training)

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        shortcut = self._shortcut(x, training)
        y = self.unit2(self.unit1(x, training=training), training=training)
        return self.activation(y + shortcut)
