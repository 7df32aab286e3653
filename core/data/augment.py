"""Training-time augmentation: one joint spatial warp, then colour on the image.

Spatial (image and label together, `core.data.warp`): flips, 90-degree
rotations, arbitrary rotation, scale and a random crop compose into ONE
affine map per patch, applied in a single resampling (bilinear image,
nearest label, 255 outside the patch). Flips and quarter turns alone move
pixels exactly, without resampling. Compiled with XLA: a resampling warp
and the colour ops below form one function; pure moves and the colour ops
form two (see `_augment_xla`).

Photometric (image only, after the warp): contrast and brightness on the
`optical_channels`, saturation and hue on the `rgb_channels` triple (a 3x3
map in YIQ space: chroma scaled and rotated, luma kept) all compose into ONE
per-patch linear map `A x + b` applied in one fused pass; gamma and
Gaussian noise on the optical channels. Elevation channels are in neither
list, so colour ops never touch heights (their rows are the identity, and
they come out bit-exact). Values are raw band values in [0, value_range], or
in each channel's [lo, hi] of `intensity_ranges`.

Bit depth: brightness and noise are fractions of a channel's full scale,
gamma acts on x / full scale: `brightness=0.1` moves an 8-bit band by 25.5
and a 12-bit band in uint16 (train max 4095) by 409.5. The pipeline keeps
[0, 255] for uint8 bands and passes `intensity_ranges` from the store
otherwise (`core.data.store.channel_plan`).

Gamma runs right after the warp, on the raw values (the warp only
resamples them), as exp(g log x): placed before the warp, XLA would fuse and
so repeat it in each of the four bilinear taps. The tf.data pipeline feeds
uint8 batches straight into the compiled function; the warp gathers the
uint8 pixels (a quarter of the float32 bytes) and casts after the gather,
and with `output_dtype=tf.uint8` the result is rounded back to uint8 in the
same compiled loop, so no float32 batch is ever written to memory.

Randomness comes only from `tf.random.stateless_*` with seeds split from the
`seed` argument, so a seed fully determines the result (the pipeline derives
one seed per batch from its position in the stream, which keeps the
checkpointed `tf.data` iterator reproducible).

Works on one patch ([H,W,C] / [H,W]) or a batch ([B,H,W,C] / [B,H,W]); every
patch of a batch draws its own parameters.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from core.data.datasets import ELEVATION_BANDS
from core.data.warp import PHILOX, affine_transforms, dihedral_moves, uniform, warp_impl

@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation knobs (0 / False / (1, 1) / 1.0 disables each).

    Attributes:
      flips: random left-right and up-down flips (each p=0.5).
      rot90: random quarter turns k in 0..3 (square patches only).
      rotate_deg: rotation angle uniform in [-rotate_deg, rotate_deg].
      scale_range: zoom factor uniform in [lo, hi] (>1 zooms in).
      crop: smallest side fraction of a random crop resized back to the
        patch size (1.0: no crop).
      brightness: additive delta uniform in +-brightness (of the full scale).
      contrast: factor uniform in [1-contrast, 1+contrast].
      saturation: factor uniform in [1-saturation, 1+saturation] (RGB).
      hue: hue shift uniform in +-hue (fraction of a turn, RGB).
      gamma: exponent uniform in [1-gamma, 1+gamma].
      noise_std: Gaussian noise std (fraction of the full scale).
      rgb_channels: indices of R, G, B (saturation/hue); None: (0, 1, 2);
        (): no RGB triple, saturation and hue are skipped.
      optical_channels: channels for brightness, contrast, gamma, noise;
        None: the rgb channels. Elevation indices must be in neither.
      value_range: raw value of full intensity of every channel, with 0 as
        zero intensity (255 for 8-bit bands); used when intensity_ranges is
        None.
      intensity_ranges: per channel (lo, hi) raw values of zero and full
        intensity, for bands that are not 8-bit: brightness adds
        delta * (hi - lo), noise has std noise_std * (hi - lo), gamma maps
        lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g, results are clipped to
        [lo, hi]. The pipeline passes [min(0, train min), train max] per
        uint16/int16/float32 band (info.json band_stats), so brightness=0.1
        moves a 12-bit band whose train max is 4095 by up to 409.5 as it
        moves an 8-bit band by up to 25.5; non-optical (elevation) entries
        are ignored. None: [0, value_range] for every channel.
      affine_prob: share of each batch that gets the rotation/zoom/crop.
      xla: compile the batch augmentation with XLA (several times faster on
        CPU; False runs the same maths as plain TensorFlow ops, e.g. to
        avoid compile time in short tests).
    """
    flips: bool = True
    rot90: bool = True
    rotate_deg: float = 0.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    crop: float = 1.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    gamma: float = 0.0
    noise_std: float = 0.0
    rgb_channels: tuple[int, int, int] | None = None
    optical_channels: tuple[int, ...] | None = None
    value_range: float = 255.0
    intensity_ranges: tuple[tuple[float, float], ...] | None = None
    affine_prob: float = 1.0
    xla: bool = True

    def __post_init__(self):
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be 0 < lo <= hi, got "
                             f"{self.scale_range}.")
        if not 0 <= self.affine_prob <= 1:
            raise ValueError(f"affine_prob must be in [0, 1], got {self.affine_prob}.")
        if not 0 < self.crop <= 1:
            raise ValueError(f"crop must be in (0, 1], got {self.crop}.")
        for name in ("rotate_deg", "brightness", "contrast", "saturation",
                     "hue", "gamma", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got "
                                 f"{getattr(self, name)}.")
        if self.intensity_ranges is not None and not all(
                len(r) == 2 and r[1] > r[0] for r in self.intensity_ranges):
            raise ValueError(f"intensity_ranges needs one (lo, hi) with hi > lo per "
                             f"channel, got {self.intensity_ranges}.")
        if self.rgb_channels is not None and len(self.rgb_channels) not in (0, 3):
            raise ValueError(f"rgb_channels needs 3 indices (or () for no RGB "
                             f"triple), got {self.rgb_channels}.")

    @property
    def spatial(self) -> bool:
        return self.flips or self.rot90 or self.continuous

    @property
    def continuous(self) -> bool:
        """Maps that resample (angle, zoom, crop), not only move pixels."""
        return self.rotate_deg > 0 or self.scale_range != (1.0, 1.0) or self.crop < 1.0

    @property
    def photometric(self) -> bool:
        return any(getattr(self, n) > 0 for n in (
            "brightness", "contrast", "saturation", "hue", "gamma", "noise_std"))


# RGB -> YIQ (NTSC); a hue shift is a rotation of the (I, Q) chroma plane,
# saturation a scaling of it towards the luma Y: both are 3x3 matrices.
_YIQ = np.array([[0.299, 0.587, 0.114],
                 [0.596, -0.274, -0.322],
                 [0.211, -0.523, 0.312]], np.float64)
_NOISE_FIELDS = 16


@functools.lru_cache(maxsize=8)
def _noise_bank(height: int, width: int) -> np.ndarray:
    """float32 [16,H,W] unit Gaussian fields (fixed: seed 0)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((_NOISE_FIELDS, height, width), dtype=np.float32)


def _channels(cfg: AugmentConfig, num_channels: int):
    rgb = tuple(cfg.rgb_channels) if cfg.rgb_channels is not None else (0, 1, 2)
    optical = (tuple(cfg.optical_channels) if cfg.optical_channels is not None
               else rgb)
    for c in set(rgb) | set(optical):
        if not 0 <= c < num_channels:
            raise ValueError(f"Augment channel {c} out of range for "
                             f"{num_channels} channels.")
    return rgb, optical


def _intensity(cfg: AugmentConfig, num_channels: int):
    """(lo, hi, span) of the channels: Python floats 0, value_range,
    value_range (the 8-bit maths), or float32 [C] constants from
    intensity_ranges."""
    if cfg.intensity_ranges is None:
        return 0.0, float(cfg.value_range), float(cfg.value_range)
    if len(cfg.intensity_ranges) != num_channels:
        raise ValueError(f"intensity_ranges has {len(cfg.intensity_ranges)} entries "
                         f"for {num_channels} channels.")
    lo, hi = np.asarray(cfg.intensity_ranges, np.float64).T
    return (tf.constant(lo, tf.float32), tf.constant(hi, tf.float32),
            tf.constant(hi - lo, tf.float32))


def colour_matrices(seed, batch, num_channels: int, cfg: AugmentConfig):
    """Random per-patch colour parameters (all linear in raw values).

    Contrast: factor f about the per-channel mean m (f x + (1-f) m) on the
    optical channels. Saturation and hue: a 3x3 map H of the RGB triple that
    scales and rotates the chroma plane of YIQ and keeps the luma Y.
    Brightness: + delta * full scale on the optical channels. Rows and
    columns of the other channels are the identity, so elevation passes
    through bit-exact.

    Returns:
      h: float32 [batch, C, C] (y_d = sum_c h[d, c] x_c), f: [batch] contrast
      factors, delta: [batch] brightness deltas (fractions of the range).
    """
    rgb, _ = _channels(cfg, num_channels)
    seeds = tf.random.experimental.stateless_split(seed, num=4, alg=PHILOX)
    h = tf.eye(num_channels, batch_shape=[batch])
    f = (uniform(seeds[0], batch, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast)
         if cfg.contrast > 0 else tf.ones([batch]))
    if (cfg.saturation > 0 or cfg.hue > 0) and len(rgb) == 3:
        sat = uniform(seeds[1], batch, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation)
        theta = uniform(seeds[2], batch, -cfg.hue, cfg.hue) * (2 * math.pi)
        c, s = tf.cos(theta) * sat, tf.sin(theta) * sat
        z, o = tf.zeros([batch]), tf.ones([batch])
        chroma = tf.reshape(tf.stack([o, z, z, z, c, -s, z, s, c], 1), [batch, 3, 3])
        yiq = tf.constant(_YIQ, tf.float32)
        yiq_inv = tf.constant(np.linalg.inv(_YIQ), tf.float32)
        rgb_map = yiq_inv[None] @ chroma @ yiq[None]                      # [B,3,3]
        select = tf.one_hot(list(rgb), num_channels)                      # [3,C]
        # Embed the 3x3 block at the RGB rows/columns, identity elsewhere.
        h = h + tf.einsum("ic,bij,jd->bcd", select, rgb_map - tf.eye(3)[None], select)
    delta = (uniform(seeds[3], batch, -cfg.brightness, cfg.brightness)
             if cfg.brightness > 0 else tf.zeros([batch]))
    return h, f, delta


def _photometric(image, seed, cfg: AugmentConfig):
    num_channels = image.shape[-1]
    _, optical = _channels(cfg, num_channels)
    batch = tf.shape(image)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=3, alg=PHILOX)
    opt_mask = tf.constant([1.0 if c in optical else 0.0 for c in range(num_channels)])
    lo, hi, span = _intensity(cfg, num_channels)
    if cfg.contrast > 0 or cfg.saturation > 0 or cfg.hue > 0 or cfg.brightness > 0:
        h, f, delta = colour_matrices(seeds[1], batch, num_channels, cfg)
        # y = H (f x + (1-f) m) + delta = A x + b, one pass over the pixels.
        fcol = 1.0 + (f[:, None] - 1.0) * opt_mask[None]                  # [B,C]
        a = h * fcol[:, None, :]
        mean = tf.reduce_mean(image, axis=[1, 2])                          # [B,C]
        b = tf.einsum("bdc,bc->bd", h, (1.0 - fcol) * mean) + (
            delta[:, None] * span * opt_mask[None])
        # C is small (3-5): a sum of broadcast products fuses with the rest
        # under XLA, where an einsum would be a separate dot pass.
        a = tf.transpose(a, [0, 2, 1])[:, None, None]                      # [B,1,1,C,D]
        image = tf.add_n([image[..., c:c + 1] * a[..., c, :]
                          for c in range(num_channels)]) + b[:, None, None, :]
    if cfg.noise_std > 0:
        # Fresh Philox normals cost more than the rest of the augmentation;
        # each patch channel takes one of 16 fixed unit Gaussian fields with
        # a random sign instead (Gaussian per pixel, independent channels).
        height, width = image.shape[1], image.shape[2]
        bank = tf.constant(_noise_bank(height, width))
        pick = tf.random.stateless_uniform([batch, num_channels], seed=seeds[2],
                                           minval=0, maxval=2 * _NOISE_FIELDS,
                                           dtype=tf.int32, alg=PHILOX)
        sign = tf.cast(pick % 2, tf.float32) * 2.0 - 1.0
        noise = tf.gather(bank, pick // 2)                                 # [B,C,H,W]
        scale = sign * (cfg.noise_std * span) * opt_mask[None]
        image = image + tf.transpose(noise * scale[:, :, None, None], [0, 2, 3, 1])
    # Clip optical channels to their range; +-inf leaves the others.
    lo = tf.where(opt_mask > 0, lo, -np.inf)
    hi = tf.where(opt_mask > 0, hi, np.inf)
    return tf.clip_by_value(image, lo, hi)


def augment(image: tf.Tensor, label: tf.Tensor, cfg: AugmentConfig,
            seed, output_dtype=tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """Joint random augmentation of patches.

    Args:
      image: [H,W,C] or [B,H,W,C], any real dtype (raw band values).
      label: [H,W] or [B,H,W] integer class ids (uint8 expected).
      cfg: what to apply.
      seed: int32/int64 [2] stateless seed; same seed, same output.
      output_dtype: of the returned image; an integer dtype rounds to the
        nearest value and clips to its range (the pipeline passes uint8 for
        uint8 bands).

    Returns:
      image of `output_dtype` and label of the input dtype, same shapes as
      the inputs.
    """
    image = tf.convert_to_tensor(image)
    label = tf.convert_to_tensor(label)
    single = image.shape.rank == 3
    if single:
        image, label = image[None], label[None]
    if image.shape.rank != 4 or label.shape.rank != 3:
        raise ValueError(f"augment expects image [H,W,C]/[B,H,W,C] and label "
                         f"[H,W]/[B,H,W], got {image.shape} and {label.shape}.")
    if not image.dtype.is_floating and not image.dtype.is_integer:
        raise ValueError(f"augment expects a real image, got dtype {image.dtype}.")
    # int32 seeds: with int64 seeds XLA's Philox stream differs from the
    # CPU kernels', with int32 they agree (tested).
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    height, width = image.shape[1], image.shape[2]
    if cfg.spatial:
        if height is None or width is None:
            raise ValueError("augment needs a static patch size for the warp.")
        if cfg.rot90 and height != width:
            raise ValueError(f"rot90 needs square patches, got {height}x{width}.")
    _channels(cfg, image.shape[-1])  # channel indices checked before tracing
    _intensity(cfg, image.shape[-1])
    if cfg.spatial or cfg.photometric:
        image, label = _run(image, label, seed, cfg, output_dtype)
    else:
        image = tf.cast(image, output_dtype)
    if single:
        image, label = image[0], label[0]
    return image, label


def _gamma(image, seed, cfg: AugmentConfig):
    """x -> lo + s * ((x - lo) / s) ** g on the optical channels, s = hi - lo
    the full scale (lo = 0, s = value_range for 8-bit bands), one g per patch
    ((x - lo) / s clipped to [0, 1]; lo stays lo). Returns float32."""
    num_channels = image.shape[-1]
    _, optical = _channels(cfg, num_channels)
    opt = tf.constant([c in optical for c in range(num_channels)])
    batch = tf.shape(image)[0]
    lo, _, span = _intensity(cfg, num_channels)
    g = uniform(seed, batch, max(0.05, 1 - cfg.gamma), 1 + cfg.gamma)
    x = tf.cast(image, tf.float32)
    # exp(g log x) rather than pow or a per-patch table for uint8: under XLA
    # it is one vectorised loop, ~3x faster than the table's gather
    # (measured on 50x256x256x4 uint8: 0.30 against 0.92 ms per patch).
    g = g[:, None, None, None]
    shifted = x if cfg.intensity_ranges is None else x - lo  # 8-bit: lo = 0
    unit = tf.clip_by_value(shifted * (1.0 / span), 0.0, 1.0)
    powered = tf.where(unit > 0, span * tf.exp(g * tf.math.log(tf.maximum(unit, 1e-30))), 0.0)
    return tf.where(opt, powered if cfg.intensity_ranges is None else lo + powered, x)


def _seeds(seed):
    """(spatial, colour, gamma) seeds of one batch."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=3, alg=PHILOX))


def _spatial(image, label, seed, cfg: AugmentConfig):
    """The joint spatial transform. Returns float32 pixels when the maps
    resample (angle, zoom, crop), else the input's pixels moved exactly."""
    height, width = image.shape[1], image.shape[2]
    batch = tf.shape(image)[0]
    # The first round(affine_prob * B) patches get the continuous part
    # (the pipeline's batches are shuffled, so that is a random subset).
    n = tf.cast(tf.round(cfg.affine_prob * tf.cast(batch, tf.float32)), tf.int32)
    transforms = affine_transforms(_seeds(seed)[0], batch, height, width, cfg,
                                   continuous=tf.range(batch) < n)
    if cfg.continuous:
        return warp_impl(image, label, transforms, projective=False)
    return dihedral_moves(image, label, transforms)


def _colour(image, seed, cfg: AugmentConfig, output_dtype):
    """Gamma, then the colour map and noise; the result in `output_dtype`."""
    _, colour_seed, gamma_seed = _seeds(seed)
    image = tf.cast(image, tf.float32)
    # Gamma after the warp, on the raw values: before it, XLA would fuse
    # (and so repeat) its exp/log into each of the four bilinear taps.
    if cfg.gamma > 0:
        image = _gamma(image, gamma_seed, cfg)
    if cfg.photometric:
        image = _photometric(image, colour_seed, cfg)
    if output_dtype.is_integer:  # round to nearest, clip to the dtype's range
        return tf.saturate_cast(tf.round(image), output_dtype)
    return tf.cast(image, output_dtype)


def _augment_batch(image, label, seed, cfg: AugmentConfig, output_dtype=tf.float32):
    if cfg.spatial:
        image, label = _spatial(image, label, seed, cfg)
    return _colour(image, seed, cfg, output_dtype), label


# cfg is a static, hashable argument: one compilation per config and shape.
# A resampling warp and the colour ops run best as ONE XLA loop (no float32
# batch in memory between them). After gather-free dihedral moves the colour
# ops must be a separate function: fused behind the moves XLA does not
# vectorise exp/log, and flips + gamma took 2.4 ms per patch instead of 0.4.
_augment_xla = tf.function(_augment_batch, jit_compile=True)
_spatial_xla = tf.function(_spatial, jit_compile=True)
_colour_xla = tf.function(_colour, jit_compile=True)


def _run(image, label, seed, cfg: AugmentConfig, output_dtype):
    """The batch augmentation, compiled as explained above when cfg.xla."""
    if not cfg.xla:
        return _augment_batch(image, label, seed, cfg, output_dtype)
    if cfg.continuous or not cfg.spatial:
        return _augment_xla(image, label, seed, cfg, output_dtype)
    image, label = _spatial_xla(image, label, seed, cfg)
    if cfg.photometric or image.dtype != output_dtype:
        image = _colour_xla(image, seed, cfg, output_dtype)
    return image, label


def channels_for_bands(bands: Sequence[str]) -> dict:
    """rgb_channels / optical_channels for a band list like
    ["IR","R","G","B","nDSM"]: every band but the elevation ones (DSM, nDSM)
    is optical; R, G, B (when all there) are the RGB triple."""
    optical = tuple(i for i, b in enumerate(bands) if b not in ELEVATION_BANDS.values())
    rgb = ()
    if all(b in bands for b in ("R", "G", "B")):
        rgb = tuple(list(bands).index(b) for b in ("R", "G", "B"))
    return {"rgb_channels": rgb, "optical_channels": optical}
