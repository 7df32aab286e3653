"""Band values of one bit depth mapped onto another's (tools.predict --rescale_input).

A model learns raw band values of one dtype (model_info.json "input_dtype",
with the train split's "band_ranges"). An input of another dtype holds the
same scene on another scale: 8-bit RGB against the 16-bit imagery a model was
trained on, or a float export. `rescale` maps it onto the training values:

- "none":  values as they are (a float32 copy of 8-bit data, say).
- "dtype": the input dtype's full range linearly onto the training dtype's:
           integer dtypes span their min..max (uint16 0..65535, int16
           -32768..32767), float dtypes 0..1. uint16 -> uint8: x * 255/65535;
           uint8 -> uint16: x * 65535/255.
- "range": each band's min..max over the input's valid pixels linearly onto
           that band's training [min, max] (band_ranges): for inputs that use
           only part of their dtype (12-bit data in uint16, a stretched
           export).

Towards an integer training dtype the result is rounded to the nearest
integer and clipped to that dtype, as the training values were. Returned as
float32, which holds every uint8, uint16 and int16 value exactly.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

MODES = ("none", "dtype", "range")


def dtype_range(dtype) -> tuple[float, float]:
    """Full range of a dtype: integers their min..max, floats 0..1."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if np.issubdtype(dtype, np.floating):
        return 0.0, 1.0
    raise ValueError(f"no value range for dtype {dtype}")


def rescale(array: np.ndarray, mode: str, to_dtype, *,
            bands: Sequence[str] | None = None,
            band_ranges: Mapping[str, Sequence[float]] | None = None,
            valid: np.ndarray | None = None, path: str = "") -> np.ndarray:
    """Maps band values onto the training dtype's (see the module docstring).

    Args:
      array: [H,W,C] band values, any real dtype.
      mode: "none", "dtype" or "range".
      to_dtype: the training dtype (model_info input_dtype).
      bands: the C band names ("range": keys of band_ranges).
      band_ranges: {band: [min, max]} of the training bands ("range").
      valid: [H,W] bool, pixels with data ("range" ignores the others when it
        takes each band's min and max); None: all.
      path: the input file, for messages.

    Returns:
      [H,W,C] float32.

    Raises:
      ValueError: an unknown mode, or "range" without a range for a band
        (one line naming the file).
    """
    if mode not in MODES:
        raise ValueError(f"rescale mode {mode!r}: expected one of {', '.join(MODES)}")
    array = np.asarray(array)
    if mode == "none":
        return array.astype(np.float32)
    to_dtype = np.dtype(to_dtype)
    if mode == "dtype":
        src, dst = dtype_range(array.dtype), dtype_range(to_dtype)
        maps = [(src, dst)] * array.shape[-1]
    else:
        bands = list(bands or [])
        missing = [b for b in bands if b not in (band_ranges or {})]
        if len(bands) != array.shape[-1] or missing:
            raise ValueError(f"{path}: --rescale_input=range needs the training range of "
                             f"each band; the model records {sorted(band_ranges or {})}")
        maps = []
        for c, band in enumerate(bands):
            values = array[..., c] if valid is None else array[..., c][valid]
            low, high = ((float(values.min()), float(values.max())) if values.size
                         else (0.0, 1.0))
            maps.append(((low, high), tuple(float(v) for v in band_ranges[band])))
    out = np.empty(array.shape, np.float32)
    for c, ((s0, s1), (d0, d1)) in enumerate(maps):
        gain = (d1 - d0) / (s1 - s0) if s1 > s0 else 0.0  # a constant band -> d0
        # y = d0 + (x - s0) * gain, in float64 one band at a time.
        out[..., c] = d0 + (array[..., c].astype(np.float64) - s0) * gain
    if np.issubdtype(to_dtype, np.integer):
        low, high = dtype_range(to_dtype)
        np.clip(np.round(out, out=out), low, high, out=out)
    return out
