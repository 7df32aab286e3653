"""tf.data pipelines over a prepared store v2 (see `core.data.prepare`).

Training (`train_dataset`), one element per step:

    tile ids -shuffle-> repeat -> interleave(read tile, cut windows)   [1]
      -> shuffle(patches) -> batch(per replica) -> augment(batch) -> prefetch

[1] `cycle_length` tiles are open at a time: a tile is read whole with
`tf.io.read_file` + `tf.io.decode_raw` from its `.npy` (`core.data.store`;
no py_function, so the iterator is checkpointable), optionally downscaled
(`scale`, the talk's scaled variant) and padded, then cut into grid windows
(`sampling="grid"`) or random windows (`sampling="random"`), as many per
tile as its share of the split's pixels (`patches.random_counts`).

Epochs are not barriers: while the last tiles of an epoch are being cut, the
interleave already opens the next epoch's (reshuffled) tiles, so the cores
never idle at epoch ends; over any stretch each window comes equally often
(+-1), and `num_patches` is the length of one pass for epochs->steps maths.

Memory is bounded by design: without cache, at most about `2 * cycle_length`
decoded tiles, `shuffle_buffer` compact patches (optical bands in the
store's dtype) and `prefetch` batches are alive, whatever the number of
tiles (an INRIA tile is 75 MB). `cache="memory"` keeps every decoded (and
scaled) tile in RAM (the whole train split), `cache="<path>"` writes them to
a file cache (the talk's options); the cache holds tiles rather than the
talk's unbatched patches, so overlapping windows (stride < patch) cost
nothing extra.

Augmentation runs on whole batches in one XLA-compiled function (see
`core.data.augment`) with a stateless seed made of `cfg.seed` and the batch's
index in the stream, so with `deterministic=True` the stream is a pure
function of the seed, and `tf.train.Checkpoint(iterator=iterator)` restores
the exact position. (The checkpoint then holds the shuffle buffer and the
open tiles, tens to hundreds of MB; with a cache it also holds the cache.)

Elements are `{"image": [b,H,W,C] raw band values, "label": [b,H,W] uint8}`.
The image is uint8 when the store's optical bands are uint8 and no
elevation band is fed: augmented uint8 bands are rounded back to uint8 (half
a grey level, far below the noise the augmentation adds), which quarters the
bytes every stage after the augmentation moves. Otherwise it is float32:
with an elevation band (heights in metres do not fit in 8 bits), and for
uint16 / int16 / float32 optical bands (every uint16 and int16 value is
exact in float32, so an unaugmented batch holds the stored values). Those
bands stay in their dtype through reading, cutting, caching and shuffling
(2 bytes per value for 16-bit data) and become float32 once per batch (in
the augmentation's compiled function when there is one). Photometric
augmentation scales by each band's full scale (see `core.data.augment`):
255 for uint8, the train max from info.json band_stats otherwise.
Normalisation is the model's job (band_stats mean/std of the fed channels,
`dataset_info`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from core.data import patches as patches_lib
from core.data.augment import AugmentConfig, augment, channels_for_bands
from core.data.store import Store, channel_plan, load_info
from core.data.warp import PHILOX

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What the tf.data pipelines read and how.

    Attributes:
      data_dir: store written by `core.data.prepare.prepare`.
      patch_size: window side (pixels, after scaling).
      stride: grid step; None = patch_size (no overlap).
      scale: tiles are resized by this factor before cutting (0.5: half
        resolution, twice the context per patch).
      batch_size: GLOBAL batch (split over replicas with an InputContext).
      sampling: "grid" (every window each epoch) or "random" (random
        windows, each tile's share in proportion to its pixels).
      patches_per_epoch: random sampling: windows per pass over the tiles
        (0: as many as the grid).
      cache: "none", "memory" or a cache file path (decoded tiles).
      augment: training augmentation; None disables it.
      shuffle_buffer: patches in the shuffle buffer.
      seed: seeds tile order, patch shuffle, random windows, augmentation.
      deterministic: fixed element order (needed for exact resume).
      num_parallel_calls: reads/augment in parallel (-1: autotune).
      cycle_length: tiles cut at the same time.
      prefetch: batches prepared ahead.
      bands: optical bands to feed, a subset of the store's in any order
        ("IRRG", "B04,B03,B02" or a list; None: all, in stored order).
      elevation: None: the store's elevation kind ("ndsm" when it has both,
        none when it has none); False or "none" drops it; "dsm"/"ndsm" must
        be stored; True: the default kind, which must exist.
    """
    data_dir: str
    patch_size: int = 256
    stride: int | None = None
    scale: float = 1.0
    batch_size: int = 16
    sampling: str = "grid"
    patches_per_epoch: int = 0
    cache: str = "none"
    augment: AugmentConfig | None = dataclasses.field(default_factory=AugmentConfig)
    shuffle_buffer: int = 1000
    seed: int = 0
    deterministic: bool = False
    num_parallel_calls: int = -1
    cycle_length: int = 4
    prefetch: int = 2
    bands: str | tuple[str, ...] | None = None
    elevation: bool | str | None = None

    def __post_init__(self):
        checks = [(self.patch_size >= 1, "patch_size must be >= 1"),
                  (self.stride is None or self.stride >= 1, "stride must be >= 1"),
                  (self.scale > 0, "scale must be > 0"),
                  (self.batch_size >= 1, "batch_size must be >= 1"),
                  (self.sampling in ("grid", "random"),
                   "sampling must be 'grid' or 'random'"),
                  (self.patches_per_epoch >= 0, "patches_per_epoch must be >= 0"),
                  (self.shuffle_buffer >= 1, "shuffle_buffer must be >= 1"),
                  (self.cycle_length >= 1, "cycle_length must be >= 1"),
                  (bool(self.cache), "cache must be 'none', 'memory' or a path")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"PipelineConfig: {msg} (got {self}).")


def dataset_info(cfg: PipelineConfig) -> dict:
    """info.json plus what the model needs of cfg's fed channels.

    Returns:
      info.json's fields with `bands` replaced by the fed channel names and
      in_channels, mean, std (per fed channel), dtype (of the optical bands,
      the model's input_dtype) and band_ranges {fed name: [min, max]} added.
    """
    info = load_info(cfg.data_dir)
    plan = channel_plan(info, cfg.bands, cfg.elevation)
    return {**info, "bands": plan["bands"], "in_channels": len(plan["bands"]),
            "mean": plan["mean"], "std": plan["std"], "dtype": plan["dtype"],
            "band_ranges": plan["band_ranges"]}


def _seed(base: int, k) -> tf.Tensor:
    """Stateless seed [2] int32 from a config seed and a stream position."""
    return tf.stack([tf.constant(base % 2**31, tf.int32), tf.cast(k, tf.int32)])


def _batch_dtype(store: Store) -> tf.DType:
    """uint8 for uint8 optical bands alone, else float32 (see the docstring)."""
    if store.dtype == tf.uint8 and not store.plan["elevation"]:
        return tf.uint8
    return tf.float32


def _to_batch(image, label, elevation, dtype=tf.uint8):
    """Batch dict: optical bands in `dtype`, elevation appended as float32
    (then `dtype` is float32). With uint8 the uint8 bands pass untouched."""
    if elevation.shape[-1]:
        image = tf.concat([tf.cast(image, tf.float32), elevation], axis=-1)
    elif image.dtype != dtype:
        image = tf.cast(image, dtype)
    return {"image": image, "label": label}


def _options(cfg: PipelineConfig) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = cfg.deterministic
    return options


def _per_replica(cfg, input_context) -> int:
    if input_context is None:
        return cfg.batch_size
    return input_context.get_per_replica_batch_size(cfg.batch_size)


def num_patches(cfg: PipelineConfig, split: str = "train") -> int:
    """Patches in one pass over `split` (train: one epoch; for steps math)."""
    store_info = load_info(cfg.data_dir)
    names = store_info["splits"].get(split)
    if names is None:
        raise ValueError(f"split {split!r} not in {cfg.data_dir}/info.json.")
    if split == "train" and cfg.sampling == "random" and cfg.patches_per_epoch:
        return cfg.patches_per_epoch
    total = 0
    for n in names:
        t = store_info["tiles"][n]
        h, w = patches_lib.scaled_shape(t["height"], t["width"], cfg.scale)
        total += patches_lib.num_grid_windows(h, w, cfg.patch_size, cfg.stride)
    return total


def train_dataset(cfg: PipelineConfig,
                  input_context: tf.distribute.InputContext | None = None
                  ) -> tf.data.Dataset:
    """Infinite training batches.

    Returns:
      dataset of {"image": [b,P,P,C] uint8 for a uint8 store without an
      elevation band, else float32, "label": [b,P,P] uint8} with b =
      per-replica batch (cfg.batch_size / replicas), drop_remainder.
    """
    store = Store(cfg, "train")
    num_tiles = len(store.names)
    batch = _per_replica(cfg, input_context)
    det = cfg.deterministic
    par = cfg.num_parallel_calls
    seed = int(cfg.seed)

    ids = tf.data.Dataset.range(num_tiles)
    shard_patches = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if num_tiles >= input_context.num_input_pipelines:
            ids = ids.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
        else:
            shard_patches = True
    if cfg.cache != "none":
        tiles = ids.map(lambda i: (i, store.read(i)), num_parallel_calls=par,
                        deterministic=True)
        tiles = tiles.cache("" if cfg.cache == "memory" else cfg.cache)
        # The buffer holds every tile, but they are the cache's own tensors.
        tiles = tiles.shuffle(num_tiles, seed=seed).repeat()
    else:
        tiles = ids.shuffle(num_tiles, seed=seed).repeat()
    tiles = tiles.enumerate()

    if cfg.sampling == "grid":
        grid = store.grid(cfg.stride)
        windows = lambda k, i, hw: grid[i]  # noqa: E731
    else:
        total = num_patches(cfg, "train")
        areas = [h * w for h, w in store.scaled]
        per_epoch = int(ids.cardinality())   # this pipeline's tiles: k // per_epoch = epoch

        def windows(k, i, hw):
            offset = tf.random.stateless_uniform(
                [], _seed(seed + 3, k // per_epoch), 0, sum(areas), tf.int64, alg=PHILOX)
            count = patches_lib.random_counts(total, areas, offset)[i]
            return patches_lib.random_windows(
                _seed(seed, k), hw[0], hw[1], cfg.patch_size, count)

    aug = cfg.augment
    if aug is not None:
        # Colour ops on the optical bands only; elevation never.
        chan = channels_for_bands(store.plan["bands"])
        aug = dataclasses.replace(
            aug, rgb_channels=aug.rgb_channels if aug.rgb_channels is not None
            else chan["rgb_channels"],
            optical_channels=aug.optical_channels
            if aug.optical_channels is not None else chan["optical_channels"])
        if store.dtype != tf.uint8 and aug.intensity_ranges is None:
            # Brightness, noise and gamma relative to each band's full scale.
            aug = dataclasses.replace(aug, intensity_ranges=tuple(
                (float(lo), float(hi)) for lo, hi in store.plan["intensity_ranges"]))
    out_dtype = _batch_dtype(store)

    def open_tile(k, element):
        if cfg.cache != "none":
            i, tile = element
        else:
            i, tile = element, store.read(element)
        return store.cut(tile, windows(k, i, tf.shape(tile[1])))

    patches = tiles.interleave(open_tile, cycle_length=min(cfg.cycle_length, num_tiles),
                               block_length=1, num_parallel_calls=par,
                               deterministic=det)
    if shard_patches:
        patches = patches.shard(input_context.num_input_pipelines,
                                input_context.input_pipeline_id)
    patches = patches.shuffle(cfg.shuffle_buffer, seed=seed + 1)
    batches = patches.batch(batch, drop_remainder=True).enumerate()

    def finish(k, element):
        augmenting = aug is not None and (aug.spatial or aug.photometric)
        image, label, elevation = element
        if augmenting and not elevation.shape[-1]:
            # 16-bit bands go into the XLA function as they are (the warp
            # gathers 2-byte values and casts after the gather).
            out = {"image": image, "label": label}
        else:
            out = _to_batch(image, label, elevation, out_dtype)
        if augmenting:
            # Augmented uint8 bands are rounded back to uint8 inside the XLA
            # function: a quarter of float32's bytes to write, queue and copy
            # to the accelerator (full augmentation 0.91 -> 0.73 ms/patch).
            out["image"], out["label"] = augment(
                out["image"], out["label"], aug, _seed(seed + 2, k),
                output_dtype=out_dtype)
        return out

    batches = batches.map(finish, num_parallel_calls=par, deterministic=det)
    return batches.prefetch(cfg.prefetch).with_options(_options(cfg))


def eval_dataset(cfg: PipelineConfig, split: str = "val",
                 input_context: tf.distribute.InputContext | None = None
                 ) -> tf.data.Dataset:
    """One pass over `split`: grid windows (border windows included), in tile
    then row-major order, no augmentation, batches of cfg.batch_size (per
    replica with an InputContext), last batch possibly smaller."""
    store = Store(cfg, split)
    grid = store.grid(cfg.stride)
    ids = tf.data.Dataset.range(len(store.names))
    if input_context is not None and input_context.num_input_pipelines > 1:
        ids = ids.shard(input_context.num_input_pipelines,
                        input_context.input_pipeline_id)
    tiles = ids.map(lambda i: (i, store.read(i)),
                    num_parallel_calls=cfg.num_parallel_calls, deterministic=True)
    patches = tiles.prefetch(1).flat_map(lambda i, tile: store.cut(tile, grid[i]))
    batches = patches.batch(_per_replica(cfg, input_context))
    out_dtype = _batch_dtype(store)
    batches = batches.map(lambda *e: _to_batch(*e, out_dtype),
                          num_parallel_calls=cfg.num_parallel_calls, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return batches.prefetch(cfg.prefetch).with_options(options)


def iter_tiles(data_dir: str | os.PathLike, split: str = "val", *,
               bands: str | Sequence[str] | None = None,
               elevation: bool | str | None = None
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Whole tiles for tile-level evaluation / prediction.

    Args:
      bands, elevation: as in `PipelineConfig` (`channel_plan`).

    Yields:
      (name, image [H,W,C] float32 raw values (optical bands in the order
      asked, elevation last; uint8/uint16/int16 values exact), label [H,W]
      uint8, 255 = ignore and no data) at full resolution, one tile in
      memory at a time.
    """
    info = load_info(data_dir)
    if split not in info["splits"]:
        raise ValueError(f"split {split!r} not in {data_dir}/info.json.")
    plan = channel_plan(info, bands, elevation)
    root = Path(data_dir)
    for name in info["splits"][split]:
        files = info["tiles"][name]["files"]
        image = np.load(root / files["image"], mmap_mode="r")
        parts = [image[..., plan["optical_index"]].astype(np.float32)]
        if plan["elevation"]:
            parts.append(np.load(root / files[plan["elevation"]])[..., None]
                         .astype(np.float32))
        label = np.load(root / files["label"])
        yield name, np.concatenate(parts, axis=-1), label
