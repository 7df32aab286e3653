"""Whole-tile prediction: sliding windows, smooth blending, test-time augmentation.

A model sees windows of `window x window` pixels; a tile of any size (a
6000x6000 Potsdam tile with 5 bands, or a 100x100 crop) is covered by a grid of
windows that overlap by `overlap` (a fraction of the window). Every window's
softmax probabilities are multiplied by a weight window that falls off towards
its edges (a 2-D Hann window clipped to `min_weight`), summed into an
accumulator, and divided by the summed weights: pixels near a window edge,
which saw little context, count little, so no seams show.

Borders: the tile is extended by reflection (numpy's "reflect" mode, any size)
by at least half the overlap on every side and the grid is centred on it, so
the tile's own edge pixels sit inside windows, with mirrored context, instead
of on a window edge. A tile smaller than a window is handled the same way: it
is reflected up to one window (repeatedly, if it is less than half a window).

Test-time augmentation (TTA) averages the probabilities over a subset of the
8 symmetries of the square (`DIHEDRAL`): each window is transformed, predicted,
and transformed back.

Two implementations of the same maths:
  * `TilePredictor` (NumPy accumulation, the model in one `tf.function` per
    batch of windows): for the tools; memory bounded, see `peak_memory_bytes`.
  * `predict_tile_graph` (all TensorFlow ops, for a SavedModel signature;
    windows framed and folded with `tf.signal`).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

# Dihedral transform k: flip left-right if k >= 4, then rotate by 90 * (k % 4)
# degrees counter-clockwise. 0 is the identity, 4 a horizontal flip, 6 a
# vertical flip.
DIHEDRAL = tuple(range(8))
TTA_PRESETS = {
    "none": (0,),
    "flips": (0, 4, 6),
    "rot90": (0, 1, 2, 3),
    "d4": DIHEDRAL,
}

ModelFn = Callable[..., tf.Tensor]
Progress = Callable[[int, int], None]


def parse_tta(tta: "bool | str | Sequence[int] | None") -> tuple[int, ...]:
    """Returns the dihedral indices for a TTA setting.

    Args:
      tta: False/None/"none" (no TTA), True or "d4" (all 8), "flips",
        "rot90", a comma-separated string of indices "0,4,6", or a sequence
        of indices in 0..7.
    Raises:
      ValueError: naming the accepted values.
    """
    if tta is None or tta is False:
        return TTA_PRESETS["none"]
    if tta is True:
        return DIHEDRAL
    if isinstance(tta, str):
        if tta in TTA_PRESETS:
            return TTA_PRESETS[tta]
        try:
            tta = [int(part) for part in tta.split(",")]
        except ValueError:
            raise ValueError(
                f"unknown test-time augmentation {tta!r}; expected one of "
                f"{sorted(TTA_PRESETS)} or indices like '0,4,6'") from None
    indices = tuple(int(k) for k in tta)
    if not indices or any(k not in DIHEDRAL for k in indices):
        raise ValueError(f"test-time augmentation indices must be in 0..7, got {tta!r}")
    return tuple(dict.fromkeys(indices))


def dihedral(images: tf.Tensor, k: int) -> tf.Tensor:
    """Applies dihedral transform k to square images [B,S,S,C] (any dtype)."""
    if k >= 4:
        images = tf.reverse(images, axis=[2])
    return tf.image.rot90(images, k % 4) if k % 4 else images


def inverse_dihedral(images: tf.Tensor, k: int) -> tf.Tensor:
    """Undoes `dihedral(., k)` on [B,S,S,C]."""
    if k % 4:
        images = tf.image.rot90(images, 4 - k % 4)
    return tf.reverse(images, axis=[2]) if k >= 4 else images


def window_weights(window: int, min_weight: float = 1e-3) -> np.ndarray:
    """A 2-D Hann window [window, window] float32, peak 1, clipped below.

    w[i, j] = h(i) h(j), h(i) = sin^2(pi (i + 0.5) / window): symmetric, near 0
    at the edges, 1 in the middle; the clip keeps every pixel's weight
    positive so the normalisation never divides by zero.
    """
    h = np.sin(np.pi * (np.arange(window) + 0.5) / window) ** 2
    return np.maximum(np.outer(h, h), min_weight).astype(np.float32)


def _stride_margin(window: int, overlap: float) -> tuple[int, int]:
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be a fraction in [0, 1), got {overlap}")
    stride = max(1, window - int(round(window * overlap)))
    return stride, (window - stride) // 2


def window_grid(length: int, window: int, overlap: float) -> list[int]:
    """Window starts along one axis, in tile coordinates (may be < 0 or overrun).

    The grid covers [-margin, length + margin) with margin = half the overlap
    and is centred on the tile; positions outside the tile are reflected.
    """
    stride, margin = _stride_margin(window, overlap)
    count = 1 + max(0, math.ceil((length + 2 * margin - window) / stride))
    offset = ((count - 1) * stride + window - length) // 2
    return [i * stride - offset for i in range(count)]


def reflect_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """Maps any integer positions into [0, size) by mirror reflection.

    Equal to numpy's pad(mode="reflect") indexing (edge not repeated), for
    arbitrarily far positions.
    """
    if size == 1:
        return np.zeros_like(indices)
    period = 2 * size - 2
    folded = np.mod(indices, period)
    return np.where(folded >= size, period - folded, folded)


def reflect_indices_tf(indices: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """`reflect_indices` in TensorFlow ops (int32)."""
    period = tf.maximum(2 * size - 2, 1)
    folded = tf.math.floormod(indices, period)
    return tf.where(folded >= size, period - folded, folded)


def peak_memory_bytes(height: int, width: int, channels: int, num_classes: int,
                      window: int = 512, batch_size: int = 4,
                      num_tta: int = 1) -> dict[str, int]:
    """The memory `TilePredictor` holds beyond the input tile and the model.

    accumulators: probabilities*weight [H,W,K] and weights [H,W], float32 (the
      probability accumulator is normalised in place and returned);
    batch: one batch of windows in float32 (input [B,S,S,C], transformed copy,
      probabilities of the current transform, their running sum and the
      weighted output, [B,S,S,K] each).
    The model's own activations for one batch come on top (for a U-Net with
    32 filters: about B*S*S*32*4 bytes per live full-resolution tensor).

    For a 6000x6000x5 tile, K=6, window 512, batch 4: accumulators
    1,008,000,000 B (0.94 GiB) + batch 92,274,688 B (88 MiB) = 1.03 GiB.
    """
    accumulators = height * width * (num_classes + 1) * 4
    per_window = window * window * 4
    batch = batch_size * per_window * (2 * channels + (3 if num_tta > 1 else 2) * num_classes)
    return {"accumulators": accumulators, "batch": batch, "total": accumulators + batch}


class TilePredictor:
    """Predicts whole tiles with a model of windows (the tf.function is reused).

    Windows are cast to float32 one batch at a time, so the tile stays in its
    own dtype (uint8 for 5 bands of 6000x6000: 180 MB). Peak memory beyond the
    tile and the model's activations: the float32 accumulators [H,W,K] and
    [H,W] plus one batch (`peak_memory_bytes`): 1.03 GiB for a 6000x6000x5
    tile, K=6, window 512, batch 4 (measured by benchmarks/bench_inference.py).
    A tile smaller than a window is reflected up to the window (module
    docstring); its output has the tile's own size.

    Args:
      model: callable `model(images [N,S,S,C] float32, training=False)` ->
        logits [N,S,S,K] (float32 or any float; softmax runs in float32).
      window: square window side S; a multiple of 2**model.depth if the model
        has a `depth` attribute.
      overlap: fraction of the window shared by neighbouring windows [0, 1).
      tta: see `parse_tta`.
      batch_size: windows per model call.
      min_weight: floor of the blending window.
    """

    def __init__(self, model: ModelFn, *, window: int = 512, overlap: float = 0.25,
                 tta: "bool | str | Sequence[int] | None" = None, batch_size: int = 4,
                 min_weight: float = 1e-3):
        multiple = 2 ** int(getattr(model, "depth", 0))
        if window <= 0 or window % multiple:
            raise ValueError(f"window must be a positive multiple of {multiple} "
                             f"(2**depth of the model), got {window}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _stride_margin(window, overlap)
        self.model, self.window, self.overlap = model, window, overlap
        self.batch_size, self.tta = batch_size, parse_tta(tta)
        self.weights = window_weights(window, min_weight)
        self._fn = self._channels = None

    def _window_fn(self, channels: int):
        """The traced per-batch function: windows -> weighted probabilities."""
        if self._fn is None or self._channels != channels:
            weights, tta = tf.constant(self.weights[None, :, :, None]), self.tta

            @tf.function(input_signature=[tf.TensorSpec(
                [None, self.window, self.window, channels], tf.float32)])
            def fn(images):
                total = None
                for k in tta:
                    logits = self.model(dihedral(images, k), training=False)
                    probs = inverse_dihedral(tf.nn.softmax(tf.cast(logits, tf.float32)), k)
                    total = probs if total is None else total + probs
                return total * (weights / len(tta))

            self._fn, self._channels = fn, channels
        return self._fn

    def weighted_windows(self, windows: np.ndarray) -> np.ndarray:
        """[N,S,S,C] float32 windows -> TTA-averaged probabilities times the
        blending weights, [N,S,S,K] float32: what the accumulators sum (the
        streamed prediction of core/streaming.py sums the same)."""
        return self._window_fn(windows.shape[-1])(windows).numpy()

    def _window(self, image: np.ndarray, y: int, x: int) -> np.ndarray:
        height, width = image.shape[:2]
        s = self.window
        if y >= 0 and x >= 0 and y + s <= height and x + s <= width:
            return image[y:y + s, x:x + s]
        rows = reflect_indices(np.arange(y, y + s), height)
        cols = reflect_indices(np.arange(x, x + s), width)
        return image[rows[:, None], cols[None, :]]

    def __call__(self, image: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Probabilities for one tile.

        Args:
          image: [H,W,C] raw band values (any numeric dtype; cast per window).
          progress: optional callback(done_windows, total_windows).
        Returns:
          probabilities [H,W,K] float32 (rows sum to 1).
        """
        image = np.asarray(image)
        if image.ndim != 3:
            raise ValueError(f"a tile must be [H,W,C], got shape {image.shape}")
        height, width, channels = image.shape
        fn = self._window_fn(channels)
        starts = [(y, x) for y in window_grid(height, self.window, self.overlap)
                  for x in window_grid(width, self.window, self.overlap)]
        acc = weight_acc = None
        batch = np.empty((self.batch_size, self.window, self.window, channels), np.float32)
        for first in range(0, len(starts), self.batch_size):
            chunk = starts[first:first + self.batch_size]
            for i, (y, x) in enumerate(chunk):
                batch[i] = self._window(image, y, x)
            out = fn(batch[:len(chunk)]).numpy()
            if acc is None:
                acc = np.zeros((height, width, out.shape[-1]), np.float32)
                weight_acc = np.zeros((height, width), np.float32)
            for i, (y, x) in enumerate(chunk):
                self._accumulate(acc, weight_acc, out[i], y, x)
            if progress is not None:
                progress(min(first + self.batch_size, len(starts)), len(starts))
        # Normalise in place, in row blocks (no second [H,W,K] array).
        for row in range(0, height, 256):
            acc[row:row + 256] /= weight_acc[row:row + 256, :, None]
        return acc

    def _accumulate(self, acc, weight_acc, out, y, x):
        """Adds one weighted window, clipped to the tile, to the accumulators.

        Reflected parts of a window that fall outside the tile are dropped;
        for a tile smaller than half a window a window can cover a tile pixel
        twice through reflection, and only its direct position counts.
        """
        height, width = acc.shape[:2]
        y0, y1 = max(y, 0), min(y + self.window, height)
        x0, x1 = max(x, 0), min(x + self.window, width)
        acc[y0:y1, x0:x1] += out[y0 - y:y1 - y, x0 - x:x1 - x]
        weight_acc[y0:y1, x0:x1] += self.weights[y0 - y:y1 - y, x0 - x:x1 - x]


def predict_tile(model: ModelFn, image: np.ndarray, *, window: int = 512,
                 overlap: float = 0.25, tta=None, batch_size: int = 4,
                 progress: Progress | None = None) -> np.ndarray:
    """One-off `TilePredictor(model, ...)(image)`: probabilities [H,W,K] float32."""
    return TilePredictor(model, window=window, overlap=overlap, tta=tta,
                         batch_size=batch_size)(image, progress)


def probabilities_to_classes(probabilities: np.ndarray) -> np.ndarray:
    """argmax over the last axis: [H,W,K] float -> [H,W] uint8 (row blocks)."""
    out = np.empty(probabilities.shape[:-1], np.uint8)
    for row in range(0, out.shape[0], 256):
        out[row:row + 256] = np.argmax(probabilities[row:row + 256], axis=-1)
    return out


def predict_tile_graph(model: ModelFn, image: tf.Tensor, *, window: int,
                       overlap: float, tta=None, batch_size: int = 4,
                       num_classes: int | None = None,
                       min_weight: float = 1e-3) -> tf.Tensor:
    """The same prediction as `TilePredictor`, in TensorFlow ops only.

    For SavedModel signatures: traceable with an unknown H, W. The grid is
    built on a reflected canvas [Hc,Wc,C] (the tile plus a margin). Each row
    of windows is cut from its strip with `tf.signal.frame`, predicted in
    batches, weighted, and folded into a strip [S,K+1,Wc] (probabilities and
    the weight as one extra channel) with `tf.signal.overlap_and_add`; the
    strips of all rows are then folded along y the same way. No step copies
    the whole accumulator per window (as a scatter-add loop would): memory is
    about the canvas plus S/stride times the [Hc,Wc,K+1] accumulator.

    Args:
      image: [H,W,C] any real dtype (cast to float32).
      num_classes: K; default `model.num_classes`.
    Returns:
      probabilities [H,W,K] float32.
    """
    tta = parse_tta(tta)
    num_classes = num_classes or getattr(model, "num_classes", None)
    if not num_classes:
        raise ValueError("predict_tile_graph needs num_classes (the model has no "
                         "num_classes attribute)")
    stride, margin = _stride_margin(window, overlap)
    weights = tf.constant(window_weights(window, min_weight)[:, :, None])
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    height, width, channels = shape[0], shape[1], image.shape[-1]

    def axis(length):  # window count, canvas length, offset of the tile in it
        count = 1 + tf.maximum(0, (length + 2 * margin - window + stride - 1) // stride)
        canvas = (count - 1) * stride + window
        return count, canvas, (canvas - length) // 2

    ny, canvas_h, off_y = axis(height)
    nx, canvas_w, off_x = axis(width)
    rows = reflect_indices_tf(tf.range(canvas_h) - off_y, height)
    cols = reflect_indices_tf(tf.range(canvas_w) - off_x, width)
    canvas = tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)
    num_batches = (nx + batch_size - 1) // batch_size

    def predict_batch(windows):                                    # [B,S,S,C]
        probs = None
        for k in tta:
            logits = model(dihedral(windows, k), training=False)
            p = inverse_dihedral(tf.nn.softmax(tf.cast(logits, tf.float32)), k)
            probs = p if probs is None else probs + p
        probs = probs / len(tta)
        return tf.concat([probs, tf.ones_like(probs[..., :1])], -1) * weights[None]

    def predict_row(y):
        strip = canvas[y * stride:y * stride + window]              # [S,Wc,C]
        windows = tf.transpose(tf.signal.frame(strip, window, stride, axis=1),
                               [1, 0, 2, 3])                       # [nx,S,S,C]
        padded = tf.pad(windows, [[0, num_batches * batch_size - nx], [0, 0], [0, 0],
                                  [0, 0]])
        batches = tf.reshape(padded, [num_batches, batch_size, window, window, channels])
        out = tf.map_fn(predict_batch, batches, parallel_iterations=1,
                        fn_output_signature=tf.TensorSpec(
                            [batch_size, window, window, num_classes + 1], tf.float32))
        out = tf.reshape(out, [-1, window, window, num_classes + 1])[:nx]
        # [nx,Sy,Sx,K+1] -> [Sy,K+1,nx,Sx] -> fold x -> [Sy,K+1,Wc]
        return tf.signal.overlap_and_add(tf.transpose(out, [1, 3, 0, 2]), stride)

    strips = tf.map_fn(predict_row, tf.range(ny), parallel_iterations=1,
                       fn_output_signature=tf.TensorSpec([window, num_classes + 1, None],
                                                         tf.float32))
    # [ny,Sy,K+1,Wc] -> [K+1,Wc,ny,Sy] -> fold y -> [K+1,Wc,Hc] -> [Hc,Wc,K+1]
    acc = tf.transpose(tf.signal.overlap_and_add(tf.transpose(strips, [2, 3, 0, 1]), stride),
                       [2, 1, 0])
    acc = acc[off_y:off_y + height, off_x:off_x + width]
    return acc[..., :-1] / acc[..., -1:]
