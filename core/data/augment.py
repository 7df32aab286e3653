"""Training-time augmentation: one joint spatial warp, then colour on the image.

Spatial (image and label together): flips, 90-degree rotations, arbitrary
rotation, scale and a random crop are all affine maps about the patch centre,
so they are composed into ONE matrix per patch and applied with a single
`tf.raw_ops.ImageProjectiveTransformV3` call for the image (bilinear) and one
for the label (nearest, fill 255 so pixels coming from outside the patch are
ignored by losses and metrics). Composing first means one resampling (no
accumulated blur) and two kernel calls per batch whatever the number of
enabled transforms. Flip and quarter-turn entries are exact integers, so
without rotation/scale they move pixels exactly.

Photometric (image only, after the warp): brightness and contrast on the
`optical_channels`, saturation and hue on the `rgb_channels` triple, gamma
and Gaussian noise on the optical channels. Elevation channels are in
neither list, so colour ops never touch heights. Values are raw band values
in [0, value_range]; colour ops work on x / value_range and scale back.

Randomness comes only from `tf.random.stateless_*` with seeds split from the
`seed` argument, so a seed fully determines the result (the pipeline derives
one seed per batch from its position in the stream, which keeps the
checkpointed `tf.data` iterator reproducible).

Works on one patch ([H,W,C] / [H,W]) or a batch ([B,H,W,C] / [B,H,W]); every
patch of a batch draws its own parameters.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import tensorflow as tf

from core.data.labels import IGNORE_INDEX


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

    def __post_init__(self):
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be 0 < lo <= hi, got "
                             f"{self.scale_range}.")
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


def _uniform(seed, batch, lo, hi):
    return tf.random.stateless_uniform([batch], seed=seed, minval=lo, maxval=hi)


def affine_transforms(seed, batch: int, height: int, width: int,
                      cfg: AugmentConfig) -> tf.Tensor:
    """Random output->input maps for ImageProjectiveTransformV3.

    For output pixel p (x, y) the input position is c + A (p - c) + t with c
    the patch centre, A = (crop / zoom) * R(angle) * R90^k * diag(fx, fy) and
    t a crop offset that keeps the crop inside the patch.

    Returns:
      float32 [batch, 8]: (a0, a1, a2, b0, b1, b2, 0, 0).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=7)
    ones = tf.ones([batch])
    zeros = tf.zeros([batch])
    if cfg.flips:
        fx = tf.where(_uniform(seeds[0], batch, 0., 1.) < 0.5, -1.0, 1.0)
        fy = tf.where(_uniform(seeds[1], batch, 0., 1.) < 0.5, -1.0, 1.0)
    else:
        fx = fy = ones
    if cfg.rot90:
        k = tf.random.stateless_uniform([batch], seed=seeds[2], minval=0,
                                        maxval=4, dtype=tf.int32)
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
        shift = tf.random.stateless_uniform([batch, 2], seed=seeds[6],
                                            minval=-1.0, maxval=1.0)
        tx = shift[:, 0] * (1.0 - frac) * (width - 1) / 2.0
        ty = shift[:, 1] * (1.0 - frac) * (height - 1) / 2.0
    else:
        frac, tx, ty = ones, zeros, zeros
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


def warp(image: tf.Tensor, label: tf.Tensor, transforms: tf.Tensor):
    """Applies per-patch transforms: image bilinear (fill 0), label nearest
    (fill IGNORE_INDEX). image [B,H,W,C] float32, label [B,H,W] uint8."""
    shape = tf.shape(image)[1:3]
    image = tf.raw_ops.ImageProjectiveTransformV3(
        images=image, transforms=transforms, output_shape=shape,
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    label = tf.raw_ops.ImageProjectiveTransformV3(
        images=label[..., None], transforms=transforms, output_shape=shape,
        fill_value=float(IGNORE_INDEX), interpolation="NEAREST",
        fill_mode="CONSTANT")[..., 0]
    return image, label


def _photometric(image, seed, cfg: AugmentConfig):
    num_channels = image.shape[-1]
    rgb = tuple(cfg.rgb_channels) if cfg.rgb_channels is not None else (0, 1, 2)
    optical = (tuple(cfg.optical_channels) if cfg.optical_channels is not None
               else rgb)
    for c in set(rgb) | set(optical):
        if not 0 <= c < num_channels:
            raise ValueError(f"Augment channel {c} out of range for "
                             f"{num_channels} channels.")
    batch = tf.shape(image)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    # Only the channels colour ops touch are scaled to [0, 1] (and back), so
    # the others (elevation) come out bit-identical.
    touched = sorted(set(rgb) | set(optical))
    channels = tf.unstack(image, num=num_channels, axis=-1)
    for c in touched:
        channels[c] = channels[c] / cfg.value_range

    def per_image(values):
        return values[:, None, None]

    def over(indices, fn):
        x = tf.stack([channels[c] for c in indices], axis=-1)
        x = fn(x)
        for i, c in enumerate(indices):
            channels[c] = x[..., i]

    if cfg.brightness > 0:
        delta = per_image(_uniform(seeds[0], batch, -cfg.brightness,
                                   cfg.brightness))
        over(optical, lambda x: x + delta[..., None])
    if cfg.contrast > 0:
        factor = per_image(_uniform(seeds[1], batch, max(0.0, 1 - cfg.contrast),
                                    1 + cfg.contrast))[..., None]
        over(optical, lambda x: (x - tf.reduce_mean(x, axis=[1, 2], keepdims=True))
             * factor + tf.reduce_mean(x, axis=[1, 2], keepdims=True))
    if (cfg.saturation > 0 or cfg.hue > 0) and len(rgb) == 3:
        sat = _uniform(seeds[2], batch, max(0.0, 1 - cfg.saturation),
                       1 + cfg.saturation)
        hue = _uniform(seeds[3], batch, -cfg.hue, cfg.hue)

        def hsv_shift(x):
            hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
            h = tf.math.floormod(hsv[..., 0] + per_image(hue), 1.0)
            s = tf.clip_by_value(hsv[..., 1] * per_image(sat), 0.0, 1.0)
            return tf.image.hsv_to_rgb(tf.stack([h, s, hsv[..., 2]], axis=-1))
        over(rgb, hsv_shift)
    if cfg.gamma > 0:
        g = per_image(_uniform(seeds[4], batch, max(0.05, 1 - cfg.gamma),
                               1 + cfg.gamma))[..., None]
        over(optical, lambda x: tf.pow(tf.clip_by_value(x, 0.0, 1.0), g))
    if cfg.noise_std > 0:
        def noise(x):
            return x + cfg.noise_std * tf.random.stateless_normal(
                tf.shape(x), seed=seeds[5])
        over(optical, noise)
    for c in touched:
        channels[c] = tf.clip_by_value(channels[c], 0.0, 1.0) * cfg.value_range
    return tf.stack(channels, axis=-1)


def augment(image: tf.Tensor, label: tf.Tensor, cfg: AugmentConfig,
            seed) -> tuple[tf.Tensor, tf.Tensor]:
    """Joint random augmentation of patches.

    Args:
      image: [H,W,C] or [B,H,W,C], any real dtype (raw band values).
      label: [H,W] or [B,H,W] integer class ids (uint8 expected).
      cfg: what to apply.
      seed: int32/int64 [2] stateless seed; same seed, same output.

    Returns:
      image float32 and label of the input dtype, same shapes as the inputs.
    """
    image = tf.convert_to_tensor(image)
    label = tf.convert_to_tensor(label)
    single = image.shape.rank == 3
    if single:
        image, label = image[None], label[None]
    if image.shape.rank != 4 or label.shape.rank != 3:
        raise ValueError(f"augment expects image [H,W,C]/[B,H,W,C] and label "
                         f"[H,W]/[B,H,W], got {image.shape} and {label.shape}.")
    image = tf.cast(image, tf.float32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    spatial_seed, colour_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2))
    if cfg.spatial:
        height, width = image.shape[1], image.shape[2]
        if height is None or width is None:
            raise ValueError("augment needs a static patch size for the warp.")
        if cfg.rot90 and height != width:
            raise ValueError(f"rot90 needs square patches, got {height}x{width}.")
        transforms = affine_transforms(spatial_seed, tf.shape(image)[0],
                                       height, width, cfg)
        image, label = warp(image, label, transforms)
    if cfg.photometric:
        image = _photometric(image, colour_seed, cfg)
    if single:
        image, label = image[0], label[0]
    return image, label


def channels_for_bands(bands: Sequence[str]) -> dict:
    """rgb_channels / optical_channels for a band list like
    ["IR","R","G","B","nDSM"]: elevation bands (DSM, nDSM) are excluded."""
    optical = tuple(i for i, b in enumerate(bands) if b in ("IR", "R", "G", "B"))
    rgb = ()
    if all(b in bands for b in ("R", "G", "B")):
        rgb = tuple(list(bands).index(b) for b in ("R", "G", "B"))
    return {"rgb_channels": rgb, "optical_channels": optical}
