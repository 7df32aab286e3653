"""Training-time augmentation: one joint spatial warp, then colour on the image.

Spatial (image and label together): flips, 90-degree rotations, arbitrary
rotation, scale and a random crop are all affine maps about the patch centre,
so they are composed into ONE matrix per patch and applied in a single
resampling: bilinear for the image, nearest for the label with fill 255 so
pixels coming from outside the patch are ignored by losses and metrics. The
sampling is `tf.raw_ops.ImageProjectiveTransformV3`'s (same matrix
convention, CONSTANT fill), written as gathers that XLA fuses, which is ~4x
faster on CPU than that op. Flip and quarter-turn entries are exact
integers, so without rotation/scale they move pixels exactly. The whole
batch augmentation is one `jit_compile=True` function.

Photometric (image only, after the warp): contrast and brightness on the
`optical_channels`, saturation and hue on the `rgb_channels` triple (a 3x3
map in YIQ space: chroma scaled and rotated, luma kept) all compose into ONE
per-patch linear map `A x + b` applied in one fused pass; gamma and
Gaussian noise on the optical channels. Elevation channels are in neither
list, so colour ops never touch heights (their rows are the identity, and
they come out bit-exact). Values are raw band values in [0, value_range].

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

from core.data.labels import IGNORE_INDEX

# Philox explicitly: "auto_select" may pick another algorithm under XLA or
# on another device, and results must not depend on where they run.
PHILOX = "philox"


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
      brightness: additive delta uniform in +-brightness (fraction of range).
      contrast: factor uniform in [1-contrast, 1+contrast].
      saturation: factor uniform in [1-saturation, 1+saturation] (RGB).
      hue: hue shift uniform in +-hue (fraction of a turn, RGB).
      gamma: exponent uniform in [1-gamma, 1+gamma].
      noise_std: Gaussian noise std (fraction of range).
      rgb_channels: indices of R, G, B (saturation/hue); None: (0, 1, 2);
        (): no RGB triple, saturation and hue are skipped.
      optical_channels: channels for brightness, contrast, gamma, noise;
        None: the rgb channels. Elevation indices must be in neither.
      value_range: raw value of full intensity (255 for 8-bit bands).
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
        if self.rgb_channels is not None and len(self.rgb_channels) not in (0, 3):
            raise ValueError(f"rgb_channels needs 3 indices (or () for no RGB "
                             f"triple), got {self.rgb_channels}.")

    @property
    def spatial(self) -> bool:
        return (self.flips or self.rot90 or self.rotate_deg > 0
                or self.scale_range != (1.0, 1.0) or self.crop < 1.0)

    @property
    def photometric(self) -> bool:
        return any(getattr(self, n) > 0 for n in (
            "brightness", "contrast", "saturation", "hue", "gamma", "noise_std"))


def _unit(shape, seed):
    """Stateless uniform floats in [0, 1), 24-bit resolution.

    Built from integer draws: TF's float stateless_uniform gives different
    numbers under XLA than on the CPU kernels, its integer draws do not.
    """
    bits = tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=1 << 24,
                                       dtype=tf.int32, alg=PHILOX)
    return tf.cast(bits, tf.float32) * (1.0 / (1 << 24))


def _uniform(seed, batch, lo, hi):
    return lo + (hi - lo) * _unit([batch], seed)


def affine_transforms(seed, batch: int, height: int, width: int,
                      cfg: AugmentConfig, continuous=None) -> tf.Tensor:
    """Random output->input maps for ImageProjectiveTransformV3.

    For output pixel p (x, y) the input position is c + A (p - c) + t with c
    the patch centre, A = (crop / zoom) * R(angle) * R90^k * diag(fx, fy) and
    t a crop offset that keeps the crop inside the patch. `continuous`
    (bool [batch], default all) says which patches get angle/zoom/crop; the
    others get only their flips and quarter turn.

    Returns:
      float32 [batch, 8]: (a0, a1, a2, b0, b1, b2, 0, 0).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=7, alg=PHILOX)
    ones = tf.ones([batch])
    zeros = tf.zeros([batch])
    if cfg.flips:
        fx = tf.where(_uniform(seeds[0], batch, 0., 1.) < 0.5, -1.0, 1.0)
        fy = tf.where(_uniform(seeds[1], batch, 0., 1.) < 0.5, -1.0, 1.0)
    else:
        fx = fy = ones
    if cfg.rot90:
        k = tf.random.stateless_uniform([batch], seed=seeds[2], minval=0,
                                        maxval=4, dtype=tf.int32, alg=PHILOX)
        # Exact quarter-turn cos/sin (tf.cos(pi/2) is not exactly 0).
        cos_k = tf.gather([1.0, 0.0, -1.0, 0.0], k)
        sin_k = tf.gather([0.0, 1.0, 0.0, -1.0], k)
    else:
        cos_k, sin_k = ones, zeros
    if cfg.rotate_deg > 0:
        angle = _uniform(seeds[3], batch, -cfg.rotate_deg, cfg.rotate_deg)
        angle = angle * (math.pi / 180.0)
        cos_a, sin_a = tf.cos(angle), tf.sin(angle)
    else:
        cos_a, sin_a = ones, zeros
    lo, hi = cfg.scale_range
    zoom = _uniform(seeds[4], batch, lo, hi) if (lo, hi) != (1.0, 1.0) else ones
    if cfg.crop < 1.0:
        frac = _uniform(seeds[5], batch, cfg.crop, 1.0)
        shift = 2.0 * _unit([batch, 2], seeds[6]) - 1.0
        tx = shift[:, 0] * (1.0 - frac) * (width - 1) / 2.0
        ty = shift[:, 1] * (1.0 - frac) * (height - 1) / 2.0
    else:
        frac, tx, ty = ones, zeros, zeros
    if continuous is not None:
        on = tf.cast(continuous, tf.float32)
        cos_a, sin_a = on * cos_a + (1 - on), on * sin_a
        zoom, frac = on * zoom + (1 - on), on * frac + (1 - on)
        tx, ty = on * tx, on * ty
    # Rotation total: R(angle) R90^k, then column scaling by the flips.
    cos_t = cos_a * cos_k - sin_a * sin_k
    sin_t = sin_a * cos_k + cos_a * sin_k
    s = frac / zoom
    a00, a01 = s * cos_t * fx, -s * sin_t * fy
    a10, a11 = s * sin_t * fx, s * cos_t * fy
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx - a00 * cx - a01 * cy + tx
    b2 = cy - a10 * cx - a11 * cy + ty
    return tf.stack([a00, a01, a2, a10, a11, b2, zeros, zeros], axis=1)


def _warp_impl(image, label, transforms, bilinear=True, projective=True):
    height, width = image.shape[1], image.shape[2]
    batch = tf.shape(image)[0]
    yy, xx = tf.meshgrid(tf.range(height, dtype=tf.float32),
                         tf.range(width, dtype=tf.float32), indexing="ij")
    t = transforms[:, :, None, None]
    sx = t[:, 0] * xx + t[:, 1] * yy + t[:, 2]
    sy = t[:, 3] * xx + t[:, 4] * yy + t[:, 5]
    if projective:  # affine maps (c0 = c1 = 0, the augmentation's) skip the divide
        k = t[:, 6] * xx + t[:, 7] * yy + 1.0
        sx, sy = sx / k, sy / k
    # Clamped so the int casts stay small; anything past the border is fill.
    sx = tf.clip_by_value(sx, -2.0, width + 1.0)
    sy = tf.clip_by_value(sy, -2.0, height + 1.0)
    # Label: nearest input pixel, IGNORE_INDEX when it is outside.
    # Round half away from zero (std::round, as the TF op): -0.5 is outside.
    nx = tf.sign(sx) * tf.floor(tf.abs(sx) + 0.5)
    ny = tf.sign(sy) * tf.floor(tf.abs(sy) + 0.5)
    inside = (nx >= 0) & (nx <= width - 1) & (ny >= 0) & (ny <= height - 1)
    index = (tf.cast(tf.clip_by_value(ny, 0, height - 1), tf.int32) * width
             + tf.cast(tf.clip_by_value(nx, 0, width - 1), tf.int32))
    flat_label = tf.reshape(label, [batch, height * width])
    label = tf.where(inside, tf.gather(flat_label, index, batch_dims=1),
                     tf.cast(IGNORE_INDEX, label.dtype))
    if not bilinear:
        # Flips / quarter turns only: integer maps, one gather is exact.
        flat = tf.reshape(image, [batch, height * width, image.shape[-1]])
        image = tf.where(inside[..., None],
                         tf.cast(tf.gather(flat, index, batch_dims=1), tf.float32), 0.0)
        return image, label
    # Image: bilinear over a 1-pixel zero border (taps outside read 0).
    padded = tf.reshape(tf.pad(image, [[0, 0], [1, 1], [1, 1], [0, 0]]),
                        [batch, (height + 2) * (width + 2), image.shape[-1]])
    x0, y0 = tf.floor(sx), tf.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    xi, yi = tf.cast(x0, tf.int32) + 1, tf.cast(y0, tf.int32) + 1

    def tap(dy, dx):
        row = tf.clip_by_value(yi + dy, 0, height + 1)
        col = tf.clip_by_value(xi + dx, 0, width + 1)
        return tf.cast(tf.gather(padded, row * (width + 2) + col, batch_dims=1), tf.float32)
    image = ((tap(0, 0) * (1.0 - wx) + tap(0, 1) * wx) * (1.0 - wy)
             + (tap(1, 0) * (1.0 - wx) + tap(1, 1) * wx) * wy)
    return image, label


# XLA fuses the coordinate maths, the four gathers and the blend into one
# loop: ~4x faster on CPU than tf.raw_ops.ImageProjectiveTransformV3, which
# recomputes the mapping for every channel of every pixel.
_warp_xla = tf.function(_warp_impl, jit_compile=True)  # static shapes: one trace each


def warp(image: tf.Tensor, label: tf.Tensor, transforms: tf.Tensor, *,
         xla: bool = True):
    """Applies per-patch output->input maps (ImageProjectiveTransformV3's
    convention): image bilinear with 0 outside, label nearest with
    IGNORE_INDEX outside (the same sampling as that op in CONSTANT mode).

    Args:
      image: [B,H,W,C] any real dtype (gathered in its dtype, returned
        float32); label: [B,H,W] integer;
      transforms: [B,8] float32 (a0, a1, a2, b0, b1, b2, c0, c1).
    """
    return (_warp_xla if xla else _warp_impl)(image, label, transforms)


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


def colour_matrices(seed, batch, num_channels: int, cfg: AugmentConfig):
    """Random per-patch colour parameters (all linear in raw values).

    Contrast: factor f about the per-channel mean m (f x + (1-f) m) on the
    optical channels. Saturation and hue: a 3x3 map H of the RGB triple that
    scales and rotates the chroma plane of YIQ and keeps the luma Y.
    Brightness: + delta * value_range on the optical channels. Rows and
    columns of the other channels are the identity, so elevation passes
    through bit-exact.

    Returns:
      h: float32 [batch, C, C] (y_d = sum_c h[d, c] x_c), f: [batch] contrast
      factors, delta: [batch] brightness deltas (fractions of the range).
    """
    rgb, _ = _channels(cfg, num_channels)
    seeds = tf.random.experimental.stateless_split(seed, num=4, alg=PHILOX)
    h = tf.eye(num_channels, batch_shape=[batch])
    f = (_uniform(seeds[0], batch, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast)
         if cfg.contrast > 0 else tf.ones([batch]))
    if (cfg.saturation > 0 or cfg.hue > 0) and len(rgb) == 3:
        sat = _uniform(seeds[1], batch, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation)
        theta = _uniform(seeds[2], batch, -cfg.hue, cfg.hue) * (2 * math.pi)
        c, s = tf.cos(theta) * sat, tf.sin(theta) * sat
        z, o = tf.zeros([batch]), tf.ones([batch])
        chroma = tf.reshape(tf.stack([o, z, z, z, c, -s, z, s, c], 1), [batch, 3, 3])
        yiq = tf.constant(_YIQ, tf.float32)
        yiq_inv = tf.constant(np.linalg.inv(_YIQ), tf.float32)
        rgb_map = yiq_inv[None] @ chroma @ yiq[None]                      # [B,3,3]
        select = tf.one_hot(list(rgb), num_channels)                      # [3,C]
        # Embed the 3x3 block at the RGB rows/columns, identity elsewhere.
        h = h + tf.einsum("ic,bij,jd->bcd", select, rgb_map - tf.eye(3)[None], select)
    delta = (_uniform(seeds[3], batch, -cfg.brightness, cfg.brightness)
             if cfg.brightness > 0 else tf.zeros([batch]))
    return h, f, delta


def _photometric(image, seed, cfg: AugmentConfig):
    num_channels = image.shape[-1]
    _, optical = _channels(cfg, num_channels)
    batch = tf.shape(image)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=3, alg=PHILOX)
    opt_mask = tf.constant([1.0 if c in optical else 0.0 for c in range(num_channels)])
    vr = cfg.value_range
    if cfg.contrast > 0 or cfg.saturation > 0 or cfg.hue > 0 or cfg.brightness > 0:
        h, f, delta = colour_matrices(seeds[1], batch, num_channels, cfg)
        # y = H (f x + (1-f) m) + delta = A x + b, one pass over the pixels.
        fcol = 1.0 + (f[:, None] - 1.0) * opt_mask[None]                  # [B,C]
        a = h * fcol[:, None, :]
        mean = tf.reduce_mean(image, axis=[1, 2])                          # [B,C]
        b = tf.einsum("bdc,bc->bd", h, (1.0 - fcol) * mean) + (
            delta[:, None] * vr * opt_mask[None])
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
        scale = sign * (cfg.noise_std * vr) * opt_mask[None]
        image = image + tf.transpose(noise * scale[:, :, None, None], [0, 2, 3, 1])
    # Clip optical channels to the value range; +-inf leaves the others.
    lo = tf.where(opt_mask > 0, 0.0, -np.inf)
    hi = tf.where(opt_mask > 0, vr, np.inf)
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
    if cfg.spatial or cfg.photometric:
        fn = _augment_xla if cfg.xla else _augment_batch
        image, label = fn(image, label, seed, cfg, output_dtype)
    else:
        image = tf.cast(image, output_dtype)
    if single:
        image, label = image[0], label[0]
    return image, label


def _gamma(image, seed, cfg: AugmentConfig):
    """x -> value_range * (x / value_range) ** g on the optical channels, one
    g per patch (x clipped to [0, value_range]; 0 stays 0). Returns float32."""
    num_channels = image.shape[-1]
    _, optical = _channels(cfg, num_channels)
    opt = tf.constant([c in optical for c in range(num_channels)])
    batch = tf.shape(image)[0]
    vr = cfg.value_range
    g = _uniform(seed, batch, max(0.05, 1 - cfg.gamma), 1 + cfg.gamma)
    x = tf.cast(image, tf.float32)
    # exp(g log x) rather than pow or a per-patch table for uint8: under XLA
    # it is one vectorised loop, ~3x faster than the table's gather
    # (measured on 50x256x256x4 uint8: 0.30 against 0.92 ms per patch).
    unit = tf.clip_by_value(x * (1.0 / vr), 0.0, 1.0)
    g = g[:, None, None, None]
    powered = tf.where(unit > 0, vr * tf.exp(g * tf.math.log(tf.maximum(unit, 1e-30))), 0.0)
    return tf.where(opt, powered, x)


def _augment_batch(image, label, seed, cfg: AugmentConfig, output_dtype=tf.float32):
    spatial_seed, colour_seed, gamma_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3, alg=PHILOX))
    if cfg.spatial:
        height, width = image.shape[1], image.shape[2]
        batch = tf.shape(image)[0]
        # The first round(affine_prob * B) patches get the continuous part
        # (the pipeline's batches are shuffled, so that is a random subset).
        n = tf.cast(tf.round(cfg.affine_prob * tf.cast(batch, tf.float32)), tf.int32)
        transforms = affine_transforms(spatial_seed, batch, height, width, cfg,
                                       continuous=tf.range(batch) < n)
        continuous = cfg.rotate_deg > 0 or cfg.scale_range != (1.0, 1.0) or cfg.crop < 1.0
        image, label = _warp_impl(image, label, transforms, bilinear=continuous,
                                  projective=False)
    image = tf.cast(image, tf.float32)
    # Gamma after the warp, on the raw values: before it, XLA would fuse
    # (and so repeat) its exp/log into each of the four bilinear taps.
    if cfg.gamma > 0:
        image = _gamma(image, gamma_seed, cfg)
    if cfg.photometric:
        image = _photometric(image, colour_seed, cfg)
    if output_dtype.is_integer:  # round to nearest, clip to the dtype's range
        image = tf.saturate_cast(tf.round(image), output_dtype)
    return image, label


# One XLA cluster for the whole batch augmentation (cfg is a static,
# hashable argument: one compilation per config and patch shape).
_augment_xla = tf.function(_augment_batch, jit_compile=True)


def channels_for_bands(bands: Sequence[str]) -> dict:
    """rgb_channels / optical_channels for a band list like
    ["IR","R","G","B","nDSM"]: elevation bands (DSM, nDSM) are excluded."""
    optical = tuple(i for i, b in enumerate(bands) if b in ("IR", "R", "G", "B"))
    rgb = ()
    if all(b in bands for b in ("R", "G", "B")):
        rgb = tuple(list(bands).index(b) for b in ("R", "G", "B"))
    return {"rgb_channels": rgb, "optical_channels": optical}
