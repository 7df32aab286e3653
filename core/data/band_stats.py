"""Per-band statistics of a store's train split: mean, std, min, max.

`prepare` computes one `BandSums` per tile and band (sums in float64 over the
pixels that hold data), adds those of the train tiles, and writes the result
to info.json's `band_stats`, which the model's first op uses to normalise and
the export records as each band's training range.

Integer bands are counted with a histogram (`np.bincount`: exact, no
float64 copy of the tile; 65536 bins for 16-bit), float bands are summed in
row blocks so temporaries stay small on a 6000x6000 tile.
"""
from __future__ import annotations

import math

import numpy as np

_BLOCK_ROWS = 512


def _empty() -> dict:
    return {"sum": 0.0, "sumsq": 0.0, "count": 0, "min": math.inf, "max": -math.inf}


def _histogram_sums(values: np.ndarray, offset: int, bins: int) -> dict:
    hist = np.bincount(values.ravel(), minlength=bins).astype(np.float64)
    nonzero = np.flatnonzero(hist)
    if not nonzero.size:
        return _empty()
    levels = np.arange(bins, dtype=np.float64) - offset
    return {"sum": float(hist @ levels), "sumsq": float(hist @ (levels * levels)),
            "count": int(hist.sum()), "min": float(nonzero[0] - offset),
            "max": float(nonzero[-1] - offset)}


def _float_sums(band: np.ndarray, valid: np.ndarray | None) -> dict:
    out = _empty()
    for r in range(0, band.shape[0], _BLOCK_ROWS):
        block = band[r:r + _BLOCK_ROWS]
        if valid is not None:
            block = block[valid[r:r + _BLOCK_ROWS]]
        block = block[np.isfinite(block)].astype(np.float64)
        if not block.size:
            continue
        out["sum"] += float(block.sum())
        out["sumsq"] += float((block * block).sum())
        out["count"] += int(block.size)
        out["min"] = min(out["min"], float(block.min()))
        out["max"] = max(out["max"], float(block.max()))
    return out


def tile_sums(image: np.ndarray, valid: np.ndarray | None) -> list[dict]:
    """Sums of each band of one tile over its valid pixels.

    Args:
      image: [H,W,C] uint8, uint16, int16 or float32 ([H,W] is one band).
      valid: [H,W] bool (False: no data, left out), or None for all pixels.

    Returns:
      C dicts {"sum", "sumsq", "count", "min", "max"} (JSON-ready floats).
    """
    if image.ndim == 2:
        image = image[..., None]
    out = []
    for c in range(image.shape[-1]):
        band = image[..., c]
        if image.dtype in (np.uint8, np.uint16, np.int16):
            values = band if valid is None else band[valid]
            if image.dtype == np.int16:
                values = (values.astype(np.int32) + 32768).astype(np.uint16)
                out.append(_histogram_sums(values, 32768, 65536))
            else:
                bins = 256 if image.dtype == np.uint8 else 65536
                out.append(_histogram_sums(values, 0, bins))
        else:
            out.append(_float_sums(band, valid))
    return out


def add(total: dict, part: dict) -> dict:
    """Sums of two disjoint pixel sets."""
    return {"sum": total["sum"] + part["sum"], "sumsq": total["sumsq"] + part["sumsq"],
            "count": total["count"] + part["count"],
            "min": min(total["min"], part["min"]), "max": max(total["max"], part["max"])}


def finish(sums: dict) -> dict:
    """{"mean", "std", "min", "max"} (population std) from added sums."""
    n = max(sums["count"], 1)
    mean = sums["sum"] / n
    var = max(sums["sumsq"] / n - mean * mean, 0.0)
    # Relative round-off of sumsq/n - mean^2 is ~1e-16 * mean^2: a band whose
    # spread is below that is constant for every purpose here.
    if var <= 1e-12 * max(mean * mean, 1e-30):
        var = 0.0
    return {"mean": mean, "std": math.sqrt(var),
            "min": sums["min"] if sums["count"] else 0.0,
            "max": sums["max"] if sums["count"] else 0.0,
            "count": sums["count"]}


def combine(tiles: list[list[dict]]) -> list[dict]:
    """Per-band totals over tiles, each a list of `tile_sums` dicts."""
    totals = [_empty() for _ in tiles[0]]
    for sums in tiles:
        totals = [add(t, s) for t, s in zip(totals, sums)]
    return [finish(t) for t in totals]
