"""ConvNeXt-Tiny (Liu et al., 2022) as Keras applications builds it, as a
U-Net encoder that returns its feature pyramid.

Keras' `keras.applications.ConvNeXtTiny` (depths 3, 3, 9, 3; widths 96,
192, 384, 768):

  stem        4x4 conv stride 4 (bias), LayerNorm      -> stage 0, stride 4
  downsample  LayerNorm, 2x2 conv stride 2 (bias)      before stages 1, 2, 3
  block       7x7 depthwise conv (bias), LayerNorm, 1x1 to 4C (bias), GELU,
              1x1 to C (bias), layer scale, + input
  out_norm    the LayerNorm Keras applies to the last stage when
              include_top=False: the stride-32 feature is the Keras model's
              own output

Features: stride 4, 8, 16 are the stage outputs (the inputs of Keras'
downsampling blocks), stride 32 after `out_norm`. There is no stride-2
feature: the stem jumps to stride 4. LayerNorm epsilon 1e-6, GELU exact
(erf). Keras' Dense layers are 1x1 convolutions here (the same product);
its drop-path rate defaults to 0, i.e. the identity, so it is left out.
The input is what the weights expect after the U-Net's in-graph
normalisation (`layers.pretrained`), RGB.
"""
from __future__ import annotations

import tensorflow as tf

from core.precision import Policy
from layers.base import Module
from layers.conv import Conv2D, DepthwiseConv2D
from layers.norm import LayerNorm, LayerScale

LN_EPSILON = 1e-6
DEPTHS = (3, 3, 9, 3)
WIDTHS = (96, 192, 384, 768)


class ConvNeXtBlock(Module):
    """x + scale * pw2(gelu(pw1(norm(dwconv(x)))))."""

    def __init__(self, width: int, *, policy: "str | Policy" = "float32",
                 name: str | None = None):
        super().__init__(policy=policy, name=name)
        with self.name_scope:
            self.depthwise = DepthwiseConv2D(7, policy=policy, name="depthwise")
            self.norm = LayerNorm(epsilon=LN_EPSILON, policy=policy, name="norm")
            self.pointwise1 = Conv2D(4 * width, 1, policy=policy, name="pointwise1")
            self.pointwise2 = Conv2D(width, 1, policy=policy, name="pointwise2")
            self.layer_scale = LayerScale(1e-6, policy=policy, name="layer_scale")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(x, self.compute_dtype)
        y = self.pointwise1(self.norm(self.depthwise(x)))
        y = self.pointwise2(tf.nn.gelu(y, approximate=False))
        return x + self.layer_scale(y)


class ConvNeXtTiny(Module):
    """ConvNeXt-Tiny encoder: features at strides 4, 8, 16, 32.

    Args:
      max_stride: the deepest feature built and returned (4 to 32).
      cross_replica_bn, bn_momentum, frozen: accepted for the common encoder
        interface; ConvNeXt has no batch norm (its LayerNorms keep no
        statistics), so freezing is the optimizer's alone.

    Call: `x` [B,H,W,C] normalised input, H and W multiples of max_stride,
    `training` (no effect: no batch norm, no dropout) ->
    {stride: [B,H/stride,W/stride,channels] compute dtype}.

    Attributes:
      strides, channels: of the returned features, shallowest first.
      first_conv: the stem's `Conv2D` (its kernel takes the input bands).
    """

    STRIDES = (4, 8, 16, 32)
    CHANNELS = WIDTHS

    def __init__(self, *, max_stride: int = 32, cross_replica_bn: bool = False,
                 bn_momentum: float = 0.99, frozen: tf.Variable | None = None,
                 policy: "str | Policy" = "float32", name: str | None = "convnext_tiny"):
        super().__init__(policy=policy, name=name)
        del cross_replica_bn, bn_momentum, frozen
        if max_stride not in self.STRIDES:
            raise ValueError(f"ConvNeXtTiny max_stride must be one of {self.STRIDES}; "
                             f"got {max_stride!r}")
        levels = self.STRIDES.index(max_stride) + 1
        self.strides = self.STRIDES[:levels]
        self.channels = self.CHANNELS[:levels]
        with self.name_scope:
            self.stem = Conv2D(WIDTHS[0], 4, stride=4, padding="VALID", policy=policy,
                               name="stem")
            self.stem_norm = LayerNorm(epsilon=LN_EPSILON, policy=policy, name="stem_norm")
            self.downsample_norms = [LayerNorm(epsilon=LN_EPSILON, policy=policy,
                                               name=f"downsample{i}_norm")
                                     for i in range(1, levels)]
            self.downsamples = [Conv2D(WIDTHS[i], 2, stride=2, padding="VALID",
                                       policy=policy, name=f"downsample{i}")
                                for i in range(1, levels)]
            self.stages = [[ConvNeXtBlock(WIDTHS[i], policy=policy, name=f"stage{i}_block{j}")
                            for j in range(DEPTHS[i])] for i in range(levels)]
            self.out_norm = (LayerNorm(epsilon=LN_EPSILON, policy=policy, name="out_norm")
                             if levels == len(self.STRIDES) else None)

    @property
    def first_conv(self):
        return self.stem

    def __call__(self, x: tf.Tensor, training: bool = False) -> dict:
        del training
        x = self.stem_norm(self.stem(x))
        features = {}
        for i, stride in enumerate(self.strides):
            if i:
                x = self.downsamples[i - 1](self.downsample_norms[i - 1](x))
            for block in self.stages[i]:
                x = block(x)
            features[stride] = x
        if self.out_norm is not None:
            features[32] = self.out_norm(x)
        return features
