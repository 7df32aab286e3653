"""Windows over a tile: grids with overlap, random windows, the scaled variant.

A window is the top-left corner (y, x) of a `size` x `size` square. The grid
along one axis starts at 0 and steps by `stride`; when the last step does not
reach the end, one more window aligned to the far edge is added, so every
pixel of the tile is covered and nothing at the right or bottom border is
dropped (unlike `tf.image.extract_patches` with VALID padding, which the talk
used). Tiles smaller than a window are padded first (`pad_to_window`): image
with 0, label with the ignore index.

The talk's "scaled" variant downsamples the whole tile before cutting
(`scaled_shape`, and `resize_tile` in TensorFlow), so a patch of the same
size sees more context at a coarser resolution.

Python functions compute the window tables once from tile sizes stored in
info.json (so `num_patches` and the tf.data graph agree by construction); the
TensorFlow helpers cut and resize inside the tf.data graph, without
py_function.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from core.data.labels import IGNORE_INDEX
from core.data.warp import PHILOX


def _check(size: int, stride: int) -> None:
    if int(size) < 1:
        raise ValueError(f"patch size must be >= 1, got {size}.")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}.")


def grid_starts(length: int, size: int, stride: int) -> np.ndarray:
    """Start offsets of windows covering [0, length) along one axis.

    Args:
      length: tile extent (pixels), already padded to >= size.
      size: window extent.
      stride: step between windows (< size for overlap).

    Returns:
      int64 [n]: 0, stride, 2*stride, ... and, if the last window stops short
      of `length`, `length - size` (a border window overlapping its neighbour).
    """
    _check(size, stride)
    if length < size:
        raise ValueError(f"length {length} < window {size}; pad the tile first.")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return np.asarray(starts, dtype=np.int64)


def padded_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """[H,W] after `pad_to_window`: each side at least `size`."""
    return max(int(height), int(size)), max(int(width), int(size))


def scaled_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """[H,W] of a tile resized by `scale` (rounded, at least 1 pixel)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    return (max(1, int(round(height * scale))),
            max(1, int(round(width * scale))))


def grid_windows(height: int, width: int, size: int,
                 stride: int | None = None) -> np.ndarray:
    """Top-left corners of a grid covering a (padded) tile.

    Args:
      height, width: tile size before padding.
      size: window side; stride: step (default `size`, no overlap).

    Returns:
      int32 [N,2] rows (y, x), row-major order.
    """
    stride = size if stride is None else stride
    h, w = padded_shape(height, width, size)
    ys, xs = grid_starts(h, size, stride), grid_starts(w, size, stride)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.int32)


def num_grid_windows(height: int, width: int, size: int,
                     stride: int | None = None) -> int:
    stride = size if stride is None else stride
    h, w = padded_shape(height, width, size)
    return len(grid_starts(h, size, stride)) * len(grid_starts(w, size, stride))


def random_windows(seed, height, width, size: int, count: int) -> tf.Tensor:
    """`count` uniformly random window corners in a (padded) tile.

    Args:
      seed: stateless seed, int [2] tensor.
      height, width: padded tile size (scalars, Python or tensors).
      size: window side.
      count: number of windows.

    Returns:
      int32 [count,2] rows (y, x), each within [0, H-size] x [0, W-size].
    """
    limits = tf.stack([tf.cast(height, tf.int32) - size + 1,
                       tf.cast(width, tf.int32) - size + 1])
    u = tf.random.stateless_uniform([count, 2], seed=tf.cast(seed, tf.int32), alg=PHILOX)
    # floor(u * n) with u in [0,1) is uniform on 0..n-1.
    return tf.minimum(tf.cast(u * tf.cast(limits, tf.float32), tf.int32),
                      limits - 1)


def pad_to_window(image: tf.Tensor, label: tf.Tensor, size: int,
                  elevation: tf.Tensor | None = None):
    """Pads bottom/right so both sides are >= size.

    Args:
      image: [H,W,C]; label: [H,W] uint8; elevation: optional [H,W,E].

    Returns:
      the same tensors, padded with 0 (image, elevation) and IGNORE_INDEX
      (label), so padding never counts in the loss or the metrics.
    """
    shape = tf.shape(label)
    pad_h = tf.maximum(size - shape[0], 0)
    pad_w = tf.maximum(size - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w]]
    image = tf.pad(image, paddings + [[0, 0]])
    label = tf.pad(label, paddings, constant_values=IGNORE_INDEX)
    if elevation is not None:
        elevation = tf.pad(elevation, paddings + [[0, 0]])
    return image, label, elevation


def resize_tile(image: tf.Tensor, label: tf.Tensor, new_hw: tuple[int, int],
                elevation: tf.Tensor | None = None):
    """Downscales a tile for the scaled variant.

    Args:
      image: [H,W,C] uint8 (area-averaged, rounded back to uint8 so the
        cached tile stays 1 byte per band).
      label: [H,W] uint8 (nearest neighbour: no invented classes).
      new_hw: (H', W') from `scaled_shape`.
      elevation: optional [H,W,E] float32 (area-averaged).
    """
    dtype = image.dtype
    image = tf.image.resize(image, new_hw, method="area")
    if dtype == tf.uint8:
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    else:
        image = tf.cast(image, dtype)
    label = tf.image.resize(label[..., None], new_hw, method="nearest")[..., 0]
    if elevation is not None:
        if elevation.shape[-1] == 0:  # no band: resize would reject it
            elevation = tf.zeros(tf.concat([new_hw, [0]], 0), elevation.dtype)
        else:
            elevation = tf.image.resize(elevation, new_hw, method="area")
    return image, label, elevation


def cut_window(tensor: tf.Tensor, corner: tf.Tensor, size: int) -> tf.Tensor:
    """tensor[y:y+size, x:x+size, ...] for a corner (y, x); static shape set."""
    begin = tf.concat([tf.cast(corner, tf.int32),
                       tf.zeros([tensor.shape.rank - 2], tf.int32)], axis=0)
    extent = tf.concat([[size, size], tf.fill([tensor.shape.rank - 2], -1)],
                       axis=0)
    window = tf.slice(tensor, begin, extent)
    return tf.ensure_shape(window, [size, size] + tensor.shape[2:].as_list())


def random_counts(total: int, areas, offset) -> tf.Tensor:
    """Random windows per tile for one epoch of `total`, in proportion to area.

    Tiles of a real archive differ in size (a 1000 px image beside a 2000 px
    one has a quarter of its pixels); the same count for every tile would
    show a small image's pixels four times as often as a large one's.
    Systematic sampling: tile i gets floor(c_i + u) - floor(c_{i-1} + u),
    where c_i = total * (areas of tiles 0..i) / (all areas) and u =
    offset / (all areas). So an epoch holds exactly `total` windows, each
    tile floor or ceil of its share, and over random offsets (a new one
    each epoch) exactly its share on average: a tile whose share is below
    one window still comes up, in some epochs.

    Args:
      total: windows in the epoch.
      areas: pixels per tile (Python ints).
      offset: int tensor in [0, sum(areas)): a scalar, or a column [N, 1]
        for N epochs at once.

    Returns:
      int32 [num_tiles], or [N, num_tiles].
    """
    cumulative = np.concatenate([[0], np.cumsum(np.asarray(areas, np.int64))])
    edges = (tf.constant(cumulative * int(total), tf.int64) + tf.cast(offset, tf.int64)
             ) // int(cumulative[-1])
    return tf.cast(edges[..., 1:] - edges[..., :-1], tf.int32)
