"""tf.Module building blocks and the U-Net family (no Keras)."""
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
