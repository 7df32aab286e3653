"""The four U-Net centers (bottlenecks) of the talk, chosen by name.

  conv              two 3x3 ConvBNAct (the plain U-Net center)
  residual          a residual block (projection shortcut: the center doubles
                    the channels of the last encoder level)
  serial_dilated    3x3 ConvBNAct at dilations 1, 2, 4, 8, each applied to the
                    previous one's output; the four outputs are summed, so the
                    sum mixes receptive fields from 3 to 31 pixels (serial
                    context, like DeepLab v3's cascaded atrous convolutions)
  parallel_dilated  branches on the same input: a 1x1 ConvBNAct and 3x3
                    ConvBNAct at dilations 2, 4, 8; concatenated and fused by
                    a 1x1 ConvBNAct (DeepLab's atrous spatial pyramid pooling,
                    without the image-pooling branch)

Every center maps [B,h,w,C_in] to [B,h,w,filters] in the compute dtype. At a
256-pixel input and depth 4 the center sees 16x16 maps, so dilation 8 spans
the whole map; larger dilations would only read padding.
"""
from __future__ import annotations

import tensorflow as tf

from core.precision import Policy
from layers.base import Module
from layers.blocks import ConvBlock, ConvBNAct, ResidualBlock

SERIAL_DILATIONS = (1, 2, 4, 8)
PARALLEL_DILATIONS = (2, 4, 8)


class SerialDilatedCenter(Module):
    """Stacked dilated 3x3 ConvBNAct at `SERIAL_DILATIONS`, outputs summed."""

    def __init__(self, filters: int, *, activation: str = "relu",
                 cross_replica_bn: bool = False, bn_momentum: float = 0.99,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = filters
        with self.name_scope:
            self.units = [
                ConvBNAct(filters, 3, dilation=d, activation=activation,
                          cross_replica_bn=cross_replica_bn, bn_momentum=bn_momentum,
                          policy=policy, name=f"dilated{d}")
                for d in SERIAL_DILATIONS]

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        outputs = []
        for unit in self.units:
            x = unit(x, training=training)
            outputs.append(x)
        return tf.add_n(outputs)


class ParallelDilatedCenter(Module):
    """A 1x1 branch and dilated 3x3 branches, concatenated, fused by a 1x1."""

    def __init__(self, filters: int, *, activation: str = "relu",
                 cross_replica_bn: bool = False, bn_momentum: float = 0.99,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = filters
        common = dict(activation=activation, cross_replica_bn=cross_replica_bn,
                      bn_momentum=bn_momentum, policy=policy)
        with self.name_scope:
            self.branches = [ConvBNAct(filters, 1, name="branch1x1", **common)] + [
                ConvBNAct(filters, 3, dilation=d, name=f"dilated{d}", **common)
                for d in PARALLEL_DILATIONS]
            self.fuse = ConvBNAct(filters, 1, name="fuse", **common)

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        branches = [branch(x, training=training) for branch in self.branches]
        return self.fuse(tf.concat(branches, axis=-1), training=training)


CENTERS = {
    "conv": ConvBlock,
    "residual": ResidualBlock,
    "serial_dilated": SerialDilatedCenter,
    "parallel_dilated": ParallelDilatedCenter,
}


def check_center(name: str) -> str:
    """Returns `name` if it is a known center, else raises one clear error."""
    if name not in CENTERS:
        raise ValueError(f"unknown center {name!r}; expected one of "
                         f"{sorted(CENTERS)}")
    return name


def make_center(name: str, filters: int, *, activation: str = "relu",
                cross_replica_bn: bool = False, bn_momentum: float = 0.99,
                policy: "str | Policy" = "float32",
                module_name: str = "center") -> Module:
    """The center called `name` with `filters` output channels."""
    return CENTERS[check_center(name)](
        filters, activation=activation, cross_replica_bn=cross_replica_bn,
        bn_momentum=bn_momentum, policy=policy, name=module_name)
