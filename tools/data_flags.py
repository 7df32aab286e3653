"""Data flags shared by tools.train, tools.time_pipeline and tools.prepare.

Importing this module defines the flags once (so one flag file drives every
binary); `pipeline_config_from_flags(FLAGS)` turns them into the frozen
`core.data.pipeline.PipelineConfig` the library takes. Library code never
imports absl.flags.
"""
from __future__ import annotations

from absl import flags

from tools import prepare_flags  # noqa: F401  (--prepare_*: one flag file prepares and trains)
from tools import store_flags  # noqa: F401  (--data_dir)

# --- store ---
flags.DEFINE_string("bands", None, "Optical bands fed to the model, in channel order, e.g. "
                    "IRRGB, RGB, IRRG: any of the store's (which keeps every source band). "
                    "Default: all, in source order.")
flags.DEFINE_enum("elevation", None, ["none", "dsm", "ndsm"],
                  "Elevation band fed as the last channel, from those the store keeps "
                  "(prepare keeps every kind the archive has; naming one makes prepare "
                  "require it). Default: the store's only kind, nDSM when it has both.")
# --- patches ---
flags.DEFINE_integer("patch_size", 256, "Patch side in pixels (after --scale).")
flags.DEFINE_integer("stride", 0, "Grid step between windows; 0: --patch_size (no overlap).")
flags.DEFINE_float("scale", 1.0, "Resize tiles by this factor before cutting "
                   "(the talk's scaled variant, e.g. 0.5).")
flags.DEFINE_integer("batch_size", 16, "Global batch size (split over replicas).")
flags.DEFINE_enum("sampling", "grid", ["grid", "random"],
                  "grid: every window each epoch; random: random windows, each "
                  "image's share in proportion to its pixels.")
flags.DEFINE_integer("patches_per_epoch", 0, "random sampling: windows per epoch "
                     "(0: as many as the grid).")
# --- tf.data ---
flags.DEFINE_string("cache", "none", "none | memory | a cache file path (decoded tiles).")
flags.DEFINE_integer("shuffle_buffer", 1000, "Patches in the shuffle buffer.")
flags.DEFINE_integer("seed", 0, "Seed of the data order, sampling, augmentation and "
                     "model initialisation.")
flags.DEFINE_boolean("deterministic", False, "Fixed data order for a seed (exact resume, "
                     "reproducible runs); a little slower.")
flags.DEFINE_integer("num_parallel_calls", -1, "Parallel reads/augmentations "
                     "(-1: autotune).")
flags.DEFINE_integer("cycle_length", 4, "Tiles cut at the same time (memory: about "
                     "twice this many decoded tiles).")
# --- augmentation (training only) ---
flags.DEFINE_boolean("augment", True, "Augment training patches.")
flags.DEFINE_boolean("aug_flips", True, "Random horizontal/vertical flips.")
flags.DEFINE_boolean("aug_rot90", True, "Random quarter turns.")
flags.DEFINE_float("aug_rotate_deg", 0.0, "Random rotation in +-degrees.")
flags.DEFINE_float("aug_scale_min", 1.0, "Random zoom, lower bound.")
flags.DEFINE_float("aug_scale_max", 1.0, "Random zoom, upper bound.")
flags.DEFINE_float("aug_crop", 1.0, "Random crop of at least this side fraction, "
                   "resized back (1: off).")
# Brightness and contrast are on by default (0.15, 0.3): on real imagery whose
# held-out areas are darker than the training areas, with --weight_decay's
# default, they kept the held-out mIoU from 400 to 2000 steps (0.574, 0.576)
# where the previous defaults lost 0.03 (one seed); their cost at 150 and 400
# steps is within the spread between seeds and not settled (README "Defaults
# and how they were chosen", benchmarks/quality/sweep.md).
flags.DEFINE_float("aug_brightness", 0.15, "Brightness delta, a fraction of each band's full "
                   "scale (255 for 8-bit bands, the train max otherwise); 0: off.")
flags.DEFINE_float("aug_contrast", 0.3, "Contrast factor range 1 +- this; 0: off.")
flags.DEFINE_float("aug_saturation", 0.0, "Saturation factor range 1 +- this (RGB).")
flags.DEFINE_float("aug_hue", 0.0, "Hue shift range +- this (fraction of a turn, RGB).")
flags.DEFINE_float("aug_gamma", 0.0, "Gamma range 1 +- this.")
flags.DEFINE_float("aug_noise_std", 0.0, "Gaussian noise std, a fraction of each band's "
                   "full scale (as --aug_brightness).")

flags.register_validator("patch_size", lambda v: v >= 1, "--patch_size must be >= 1")
flags.register_validator("stride", lambda v: v >= 0, "--stride must be >= 0")
flags.register_validator("scale", lambda v: v > 0, "--scale must be > 0")
flags.register_validator("batch_size", lambda v: v >= 1, "--batch_size must be >= 1")
flags.register_validator("shuffle_buffer", lambda v: v >= 1, "--shuffle_buffer must be >= 1")
flags.register_validator("aug_crop", lambda v: 0 < v <= 1, "--aug_crop must be in (0, 1]")
flags.register_validator("patches_per_epoch", lambda v: v >= 0,
                         "--patches_per_epoch must be >= 0 (0: as many as the grid)")
flags.register_validator("num_parallel_calls", lambda v: v == -1 or v >= 1,
                         "--num_parallel_calls must be >= 1, or -1 (autotune)")
flags.register_validator("cycle_length", lambda v: v >= 1, "--cycle_length must be >= 1")
for _name in ("aug_rotate_deg", "aug_brightness", "aug_contrast", "aug_saturation", "aug_hue",
              "aug_gamma", "aug_noise_std"):
    flags.register_validator(_name, lambda v: v >= 0, f"--{_name} must be >= 0 (0: off)")


@flags.multi_flags_validator(["aug_scale_min", "aug_scale_max"],
                             message="need 0 < --aug_scale_min <= --aug_scale_max")
def _scale_range(values):
    return 0 < values["aug_scale_min"] <= values["aug_scale_max"]


def augment_config_from_flags(f):
    """AugmentConfig from the aug_* flags, or None when --noaugment."""
    from core.data.augment import AugmentConfig  # pylint: disable=import-outside-toplevel
    if not f.augment:
        return None
    return AugmentConfig(
        flips=f.aug_flips, rot90=f.aug_rot90, rotate_deg=f.aug_rotate_deg,
        scale_range=(f.aug_scale_min, f.aug_scale_max), crop=f.aug_crop,
        brightness=f.aug_brightness, contrast=f.aug_contrast,
        saturation=f.aug_saturation, hue=f.aug_hue, gamma=f.aug_gamma,
        noise_std=f.aug_noise_std)


def pipeline_config_from_flags(f):
    """The frozen PipelineConfig for the parsed flags `f` (absl FLAGS)."""
    from core.data.pipeline import PipelineConfig  # pylint: disable=import-outside-toplevel
    if not f.data_dir:
        raise flags.ValidationError("--data_dir is required (a store written by "
                                    "python -m tools.prepare).")
    elevation = None if f.elevation is None else f.elevation
    return PipelineConfig(
        data_dir=f.data_dir, patch_size=f.patch_size, stride=f.stride or None,
        scale=f.scale, batch_size=f.batch_size, sampling=f.sampling,
        patches_per_epoch=f.patches_per_epoch, cache=f.cache,
        augment=augment_config_from_flags(f), shuffle_buffer=f.shuffle_buffer,
        seed=f.seed, deterministic=f.deterministic,
        num_parallel_calls=f.num_parallel_calls, cycle_length=f.cycle_length,
        bands=f.bands or None, elevation=elevation)
