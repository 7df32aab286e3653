"""Predicting rasters larger than memory: blocks of the whole raster's grid.

`core.inference.TilePredictor` holds the tile and [H,W,K+1] float32
accumulators. `StreamPredictor` gives the same probabilities (the same
window grid over the whole raster, the same reflected borders, blending
weights, TTA and order of summation) while holding only one block of
`block x block` output pixels at a time: the raster is read by window from
any raster GDAL opens (a VRT mosaic of many files included) and the
probabilities are handed to a writer block by block (core/cog.py writes
them by window).

Per block [r0,r1) x [c0,c1), in row-major order: the windows of the global
grid that reach into the block are predicted, the input region they need
(reflected indices at the raster's borders) read once, and their weighted
probabilities summed into block accumulators. A window that also reaches
into the next block to the right is kept for it (at most
ceil((T+S-1)/s) x ceil((S-1)/s) windows), so along a row of blocks no window
is predicted twice; windows reaching across a block row's lower edge are
predicted again for the block row below: (T + S) / T times the windows of the
in-memory prediction (1.25 for T=2048, S=512).

Peak memory beyond the process baseline (Python, TensorFlow, the model's
variables and its activations for one batch), with T the block, S the window,
s the stride, B windows per call, C input bands, K classes,
R = T + 2S (the side of an input region, at most):
  input region   R^2 * (12 C + 2)   float32 model input, one float32 and the
                                    raw copy while converting, masks
  accumulators   T^2 * (K + 1) * 4
  block outputs  T^2 * (2K + 2)     uint8 probabilities (+ a transposed copy
                                    for GDAL), classes, mask
  kept windows   ceil((T+S-1)/s) * ceil((S-1)/s) * S^2 * K * 4
  batch          B * S^2 * 4 * (2C + 3K)    (as core.inference.peak_memory_bytes)
  GDAL cache     core.cog.GDAL_CACHE_MB (64 MiB, or GDAL_CACHEMAX in MB)
None of it depends on the raster's size (`peak_memory_bytes`). For T=2048,
S=512, s=384, B=4, C=4, K=6: 0.45 + 0.12 + 0.06 + 0.09 + 0.11 + 0.07 =
0.90 GiB.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from core import inference
from core.data import raster as raster_lib

# float32 model input + one float32 transient + raw copy (<= 4 bytes) per band.
_REGION_BYTES_PER_BAND = 12

Reader = Callable[[int, int, int, int], "tuple[np.ndarray, np.ndarray | None]"]
Writer = Callable[[int, int, np.ndarray, "np.ndarray | None"], None]


def peak_memory_bytes(*, window: int, overlap: float, batch_size: int, channels: int,
                      num_classes: int, block: int, gdal_cache_mb: int | None = None) -> dict:
    """The module docstring's bound, by part (bytes) and its "total";
    gdal_cache_mb defaults to core.cog.GDAL_CACHE_MB."""
    if gdal_cache_mb is None:
        from core import cog  # pylint: disable=import-outside-toplevel
        gdal_cache_mb = cog.GDAL_CACHE_MB
    stride, _ = inference._stride_margin(window, overlap)  # pylint: disable=protected-access
    region = (block + 2 * window) ** 2
    kept = (math.ceil((block + window - 1) / stride) * math.ceil((window - 1) / stride)
            * window * window * num_classes * 4)
    parts = {
        "input_region": region * (_REGION_BYTES_PER_BAND * channels + 2),
        "accumulators": block * block * (num_classes + 1) * 4,
        "block_outputs": block * block * (2 * num_classes + 2),
        "kept_windows": kept,
        "batch": batch_size * window * window * 4 * (2 * channels + 3 * num_classes),
        "gdal_cache": gdal_cache_mb << 20,
    }
    parts["total"] = sum(parts.values())
    return parts


class StreamPredictor:
    """Predicts a raster block by block with a TilePredictor's model and maths.

    Args:
      predictor: the TilePredictor (window, overlap, TTA, windows per call).
      block: output block side T (pixels); memory grows with T^2, the
        recomputed windows fall as (T + S) / T.
    """

    def __init__(self, predictor: inference.TilePredictor, block: int = 2048):
        if block < 1:
            raise ValueError(f"block must be >= 1 pixel, got {block}")
        self.predictor, self.block = predictor, int(block)

    def _plan(self, height: int, width: int):
        """[(r0, r1, c0, c1, ys, xs)] per block: the grid windows reaching it."""
        p, size = self.predictor, self.predictor.window
        grid_y = inference.window_grid(height, size, p.overlap)
        grid_x = inference.window_grid(width, size, p.overlap)
        plan = []
        for r0 in range(0, height, self.block):
            r1 = min(r0 + self.block, height)
            # A window adds to rows [max(y,0), min(y+S,H)) (inference._accumulate).
            ys = [y for y in grid_y if max(y, 0) < r1 and min(y + size, height) > r0]
            for c0 in range(0, width, self.block):
                c1 = min(c0 + self.block, width)
                xs = [x for x in grid_x if max(x, 0) < c1 and min(x + size, width) > c0]
                plan.append((r0, r1, c0, c1, ys, xs))
        return plan

    def num_windows(self, height: int, width: int) -> int:
        """Windows predicted for a raster (what a progress bar counts)."""
        total = 0
        for _, _, c0, _, ys, xs in self._plan(height, width):
            kept = sum(1 for x in xs if x < c0) if c0 else 0  # from the block on the left
            total += len(ys) * (len(xs) - kept)
        return total

    def __call__(self, read: Reader, height: int, width: int, write: Writer,
                 progress: Callable[[int], None] | None = None) -> None:
        """Predicts the raster.

        Args:
          read: read(r0, r1, c0, c1) -> (model input [r1-r0, c1-c0, C]
            float32, valid [r1-r0, c1-c0] bool or None).
          height, width: the raster's size.
          write: write(r0, c0, probabilities [h,w,K] float32, valid [h,w] bool
            or None), called once per block in row-major order.
          progress: optional callback(windows predicted since the last call).
        """
        p, size = self.predictor, self.predictor.window
        kept: dict = {}
        for r0, r1, c0, c1, ys, xs in self._plan(height, width):
            if c0 == 0:
                kept = {}
            rows = inference.reflect_indices(np.arange(ys[0], ys[-1] + size), height)
            cols = inference.reflect_indices(np.arange(xs[0], xs[-1] + size), width)
            rr0, cc0 = int(rows.min()), int(cols.min())
            image, valid = read(rr0, int(rows.max()) + 1, cc0, int(cols.max()) + 1)
            starts = [(y, x) for y in ys for x in xs]
            todo = [s for s in starts if s not in kept]
            outputs = dict(kept)
            batch = None
            for first in range(0, len(todo), p.batch_size):
                chunk = todo[first:first + p.batch_size]
                if batch is None:
                    batch = np.empty((p.batch_size, size, size, image.shape[-1]), np.float32)
                for i, (y, x) in enumerate(chunk):
                    wr = inference.reflect_indices(np.arange(y, y + size), height) - rr0
                    wc = inference.reflect_indices(np.arange(x, x + size), width) - cc0
                    batch[i] = image[wr[:, None], wc[None, :]]
                out = p.weighted_windows(batch[:len(chunk)])
                for i, start in enumerate(chunk):
                    outputs[start] = out[i]
                if progress is not None:
                    progress(len(chunk))
            acc = weight_acc = None
            for y, x in starts:  # the in-memory order of summation
                out = outputs[(y, x)]
                if acc is None:
                    acc = np.zeros((r1 - r0, c1 - c0, out.shape[-1]), np.float32)
                    weight_acc = np.zeros((r1 - r0, c1 - c0), np.float32)
                y0, y1 = max(y, 0, r0), min(y + size, height, r1)
                x0, x1 = max(x, 0, c0), min(x + size, width, c1)
                acc[y0 - r0:y1 - r0, x0 - c0:x1 - c0] += out[y0 - y:y1 - y, x0 - x:x1 - x]
                weight_acc[y0 - r0:y1 - r0, x0 - c0:x1 - c0] += p.weights[y0 - y:y1 - y,
                                                                           x0 - x:x1 - x]
            kept = {s: outputs[s] for s in starts if s[1] + size > c1 and c1 < width}
            del outputs
            acc /= weight_acc[..., None]
            if valid is not None:
                valid = valid[r0 - rr0:r1 - rr0, c0 - cc0:c1 - cc0]
            write(r0, c0, acc, valid)


class GdalRaster:
    """Windowed reads of any raster GDAL opens (rasterio, the `geo` extra).

    The same bands and no-data rules as core.data.raster.read_raster: bands
    GDAL tags alpha are not data bands; a pixel has no data where the
    dataset mask (nodata on every band, internal mask, alpha == 0) says so;
    a palette raster reads as its colours. Pixel types: uint8, uint16,
    int16, float32 as they are; bool -> uint8, int8 -> int16, others ->
    float32.

    Attributes: height, width, count (data bands), dtype (numpy, after the
    rules above), crs, transform, path.
    """

    def __init__(self, path: str):
        from core import cog  # pylint: disable=import-outside-toplevel
        rasterio = cog.require_rasterio(f"{path}: streamed reading (--stream)")
        from rasterio.enums import ColorInterp  # pylint: disable=import-outside-toplevel
        self.path = str(path)
        self._env = cog.gdal_env()
        self._env.__enter__()
        try:
            self._ds = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as err:
            self._env.__exit__(None, None, None)
            raise ValueError(f"{path}: GDAL cannot open it ({err})") from None
        ds = self._ds
        interp = list(ds.colorinterp)
        self._bands = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
        self._palette = None
        if interp and interp[0] == ColorInterp.palette:
            table = ds.colormap(1)
            self._palette = np.zeros((max(256, max(table) + 1), 3), np.uint8)
            for index, rgba in table.items():
                self._palette[index] = rgba[:3]
        self.height, self.width = ds.height, ds.width
        self.count = 3 if self._palette is not None else len(self._bands)
        raw = np.dtype(ds.dtypes[self._bands[0] - 1])
        self.dtype = (np.dtype(np.uint8) if self._palette is not None else
                      raw if raw.name in ("uint8", "uint16", "int16", "float32") else
                      np.dtype(np.uint8) if raw == bool else
                      np.dtype(np.int16) if raw == np.int8 else np.dtype(np.float32))
        self.crs, self.transform = ds.crs, ds.transform
        from rasterio.enums import MaskFlags  # pylint: disable=import-outside-toplevel
        self._masked = any(MaskFlags.all_valid not in flags for flags in ds.mask_flag_enums)

    def read(self, r0: int, r1: int, c0: int, c1: int):
        """([h,w,C] pixels in `dtype`, [h,w] bool valid or None) of a window."""
        from rasterio.windows import Window  # pylint: disable=import-outside-toplevel
        window = Window(c0, r0, c1 - c0, r1 - r0)
        data = self._ds.read(self._bands, window=window)
        array = np.moveaxis(data, 0, -1)
        if self._palette is not None:
            array = self._palette[array[..., 0]]
        elif array.dtype != self.dtype:
            array = array.astype(self.dtype)
        valid = None
        if self._masked:
            valid = self._ds.dataset_mask(window=window) != 0
            valid = None if valid.all() else valid
        # NaN/inf are no data as read_raster says, also where GDAL's mask does not.
        return array, raster_lib.and_valid(valid, raster_lib.finite_pixels(array))

    def blocks(self, size: int = 2048):
        """(r0, r1, c0, c1) windows covering the raster (passes over it)."""
        for r0 in range(0, self.height, size):
            for c0 in range(0, self.width, size):
                yield r0, min(r0 + size, self.height), c0, min(c0 + size, self.width)

    def close(self) -> None:
        self._ds.close()
        self._env.__exit__(None, None, None)

    def __enter__(self) -> "GdalRaster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def valid_mean(raster: GdalRaster) -> float:
    """Mean of a 1-band raster's finite, valid values (0 when none), in one
    windowed pass: how core.data.tiles.read_elevation fills missing heights."""
    total, count = 0.0, 0
    for r0, r1, c0, c1 in raster.blocks():
        values, valid = raster.read(r0, r1, c0, c1)
        values = values[..., 0].astype(np.float64)
        keep = np.isfinite(values) if valid is None else np.isfinite(values) & valid
        total, count = total + values[keep].sum(), count + int(keep.sum())
    return total / count if count else 0.0
