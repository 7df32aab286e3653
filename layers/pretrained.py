"""Pretrained encoders: the registry, their weights on disk, the input
normalisation they expect, and the first-layer rule for other bands.

A weights folder (written by `tools.import_encoder`) holds

  encoder.json       {"format", "encoder", "source", "bands": ["R","G","B"],
                      "mean", "std": the normalisation the weights expect,
                      (x - mean) / std per band, on "input_range" [0, 255];
                      "pixel_std": the std of ImageNet's pixels per band on
                      that range; "checkpoint": the checkpoint prefix}
  encoder.*          a TensorFlow checkpoint of the encoder module built for
                     three input bands R, G, B (`tf.train.Checkpoint(encoder=...)`)

Normalisation rule (`input_normalisation`), per band of the data:
  - R, G or B of uint8 data: the weights' own mean and std (the values the
    network saw on ImageNet);
  - every other band (IR, nDSM, ..., or R/G/B of uint16 or float data whose
    scale is not ImageNet's): standardised by the data's own mean and std,
    then scaled to the spread a normalised ImageNet pixel has (the mean of
    pixel_std / std over R, G, B: about 57.6 for ResNet-50's caffe-style
    mean subtraction, 1.0 for ConvNeXt's), so it reaches the first layer at
    the scale the pretrained kernels were trained for. As one (x - mean) /
    std: mean = data mean, std = data std / spread.

First-layer rule (`adapt_first_kernel`), for C input bands: a band named
R, G or B takes the pretrained kernel slice of that colour (whatever its
position), any other band the mean of the three colour slices; then every
slice is multiplied by 3 / C. Why: a grey input (the same normalised value
on every band, the case the mean kernel stands for) then gives the first
layer the same response as the pretrained RGB network, whatever C; with
C = 3 and R, G, B in any order the weights are the pretrained ones, only
permuted.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from layers.convnext import ConvNeXtTiny
from layers.resnet import ResNet50

ENCODERS = {"resnet50": ResNet50, "convnext_tiny": ConvNeXtTiny}
INFO_FILE = "encoder.json"
FORMAT = "ortholoop-encoder-v1"
WEIGHT_BANDS = ("R", "G", "B")


def check_encoder(name: str) -> str:
    """`name` if it is "unet" or a known pretrained encoder, else one clear error."""
    if name != "unet" and name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of "
                         f"{['unet'] + sorted(ENCODERS)}")
    return name


def read_encoder_info(weights_dir: str, encoder: str | None = None) -> dict:
    """encoder.json of a weights folder, checked (and against `encoder`).

    Raises:
      ValueError: naming the folder, when it is not a weights folder of
        `tools.import_encoder` or holds another encoder's weights.
    """
    path = os.path.join(weights_dir, INFO_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"--encoder_weights={weights_dir}: cannot read {path} ({err}); "
                         f"expected a folder written by tools.import_encoder") from None
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: format {info.get('format')!r}, expected {FORMAT!r}")
    if encoder is not None and info.get("encoder") != encoder:
        raise ValueError(f"--encoder_weights={weights_dir} holds {info.get('encoder')!r} "
                         f"weights but the model's encoder is {encoder!r}")
    return info


def normalised_spread(info: dict) -> float:
    """The std of an ImageNet pixel after the weights' normalisation,
    averaged over the colour bands."""
    return float(np.mean(np.asarray(info["pixel_std"], np.float64)
                         / np.asarray(info["std"], np.float64)))


def input_normalisation(info: dict, bands: Sequence[str], data_mean: Sequence[float],
                        data_std: Sequence[float], input_dtype: str | None
                        ) -> tuple[list, list]:
    """Per-band (mean, std) of the U-Net's in-graph (x - mean) / std for
    pretrained weights (the rule in the module docstring).

    Args:
      info: encoder.json.
      bands: the model's input band names, in order.
      data_mean, data_std: the data's per-band statistics (info.json).
      input_dtype: the optical bands' dtype name ("uint8", "uint16", ...).
    """
    spread = normalised_spread(info)
    weight_bands = list(info["bands"])
    mean, std = [], []
    for i, band in enumerate(bands):
        if band in weight_bands and input_dtype == "uint8":
            j = weight_bands.index(band)
            mean.append(float(info["mean"][j]))
            std.append(float(info["std"][j]))
        else:
            mean.append(float(data_mean[i]))
            std.append(float(data_std[i]) / spread)
    return mean, std


def adapt_first_kernel(kernel: np.ndarray, weight_bands: Sequence[str],
                       bands: Sequence[str]) -> np.ndarray:
    """The first layer's kernel for `bands` from a pretrained one.

    Args:
      kernel: [kh, kw, 3, F] pretrained, input axis in `weight_bands` order.
      weight_bands: ("R", "G", "B").
      bands: the model's band names, C of them, any order.
    Returns:
      [kh, kw, C, F] float32 (rule in the module docstring).
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.shape[2] != len(weight_bands):
        raise ValueError(f"pretrained first kernel has {kernel.shape[2]} input bands, "
                         f"expected {len(weight_bands)} ({list(weight_bands)})")
    mean_slice = kernel.mean(axis=2)
    slices = [kernel[:, :, list(weight_bands).index(b)] if b in weight_bands else mean_slice
              for b in bands]
    return np.stack(slices, axis=2) * np.float32(len(weight_bands) / len(bands))


def load_encoder_weights(encoder, weights_dir: str, bands: Sequence[str]) -> dict:
    """Loads a weights folder into a built encoder of any band count.

    The checkpoint is read into a three-band twin of `encoder` (same class
    and max_stride, float32), every variable is checked against the target's
    shape and copied; the first convolution's kernel goes through
    `adapt_first_kernel`.

    Args:
      encoder: a built `ResNet50` / `ConvNeXtTiny` (called once).
      weights_dir: a folder of `tools.import_encoder`.
      bands: the encoder input's band names.
    Returns:
      encoder.json's content.
    Raises:
      ValueError: a folder of another encoder, a checkpoint that does not
        match, or an unbuilt encoder.
    """
    name = next(k for k, cls in ENCODERS.items() if isinstance(encoder, cls))
    info = read_encoder_info(weights_dir, name)
    if not encoder.variables:
        raise ValueError("load_encoder_weights: call the model once first (lazy variables)")
    if len(bands) != int(encoder.first_conv.w.shape[2]):
        raise ValueError(f"load_encoder_weights: {len(bands)} band names for an encoder "
                         f"built for {int(encoder.first_conv.w.shape[2])} bands")
    twin = type(encoder)(max_stride=encoder.strides[-1], name=encoder.name)
    side = encoder.strides[-1]
    twin(tf.zeros([1, side, side, len(info["bands"])]))
    prefix = os.path.join(weights_dir, info["checkpoint"])
    try:
        tf.train.Checkpoint(encoder=twin).read(prefix).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise ValueError(f"{prefix}: not a checkpoint of a {name} encoder "
                         f"({str(err).splitlines()[0][:200]})") from None
    first = encoder.first_conv.w.ref()
    for source, target in zip(twin.variables, encoder.variables):
        value = source.numpy()
        if target.ref() == first:
            value = adapt_first_kernel(value, info["bands"], bands)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{prefix}: {source.name} has shape {value.shape}, the "
                             f"model's {target.name} {tuple(target.shape)}")
        target.assign(value)
    return info
