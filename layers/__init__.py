"""tf.Module building blocks and the U-Net family of the talk (no Keras).

    from layers import UNet, count_parameters
    model = UNet(6, in_channels=4, filters=32, depth=4, residual=True,
                 center="serial_dilated", policy="mixed_bfloat16",
                 mean=band_mean, std=band_std)
    logits = model(images, training=True)   # [B,H,W,6] float32
    model.decay_variables                     # the conv kernels, for SGD

Variables are created on the first call (float32, named w, b, scale, offset,
moving_mean, moving_variance); `UNet.mean`/`std` exist from construction.
"""
from layers.activations import ACTIVATIONS, dropout, get_activation
from layers.base import Module, count_parameters, once
from layers.blocks import ConvBlock, ConvBNAct, ResidualBlock
from layers.centers import (CENTERS, ParallelDilatedCenter, SerialDilatedCenter,
                            make_center)
from layers.conv import Conv2D, ConvTranspose2x, ResizeConv2x, make_upsampler
from layers.norm import BatchNorm
from layers.unet import DEPTHS, UNet

__all__ = [
    "ACTIVATIONS", "BatchNorm", "CENTERS", "Conv2D", "ConvBNAct", "ConvBlock",
    "ConvTranspose2x", "DEPTHS", "Module", "ParallelDilatedCenter",
    "ResidualBlock", "ResizeConv2x", "SerialDilatedCenter", "UNet",
    "count_parameters", "dropout", "get_activation", "make_center",
    "make_upsampler", "once",
]
