"""tf.Module building blocks and the U-Net family of the talk (no Keras).

    from layers import UNet, count_parameters
    model = UNet(6, in_channels=4, filters=32, depth=4, residual=True,
                 center="serial_dilated", policy="mixed_bfloat16",
                 mean=band_mean, std=band_std)
    logits = model(images, training=True)   # [B,H,W,6] float32
    model.decay_variables                     # the conv kernels, for SGD

Pretrained encoders under the same decoder: `UNet(..., encoder="resnet50")`
or `"convnext_tiny"` (layers/resnet.py, layers/convnext.py; weights from
tools.import_encoder, loaded by `load_encoder_weights`).

Variables are created on the first call (float32, named w, b, scale, offset,
moving_mean, moving_variance); `UNet.mean`/`std` exist from construction.
"""
from layers.activations import ACTIVATIONS, dropout, get_activation
from layers.base import Module, count_parameters, once
from layers.blocks import ConvBlock, ConvBNAct, ResidualBlock
from layers.centers import (CENTERS, ParallelDilatedCenter, SerialDilatedCenter,
                            make_center)
from layers.conv import (Conv2D, ConvTranspose2x, DepthwiseConv2D, ResizeConv2x,
                         make_upsampler)
from layers.convnext import ConvNeXtTiny
from layers.norm import BatchNorm, LayerNorm, LayerScale
from layers.pretrained import ENCODERS, load_encoder_weights
from layers.resnet import ResNet50
from layers.unet import DEPTHS, UNet

__all__ = [
    "ACTIVATIONS", "BatchNorm", "CENTERS", "ConvNeXtTiny", "Conv2D", "ConvBNAct",
    "ConvBlock", "ConvTranspose2x", "DEPTHS", "DepthwiseConv2D", "ENCODERS",
    "LayerNorm", "LayerScale", "Module", "ParallelDilatedCenter", "ResNet50",
    "ResidualBlock", "ResizeConv2x", "SerialDilatedCenter", "UNet",
    "count_parameters", "dropout", "get_activation", "load_encoder_weights",
    "make_center", "make_upsampler", "once",
]
