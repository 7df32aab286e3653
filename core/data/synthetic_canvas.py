"""The drawing surface of a synthetic tile and its image-wide operations.

`Canvas` holds a scene while `core.data.synthetic_scene` draws objects onto
it: the class id, R,G,B,IR reflectance and height of every pixel, where the
carriageway is, how many pixels each class has (so the object painters stop
at their target fractions), the shared texture fields and the sun. Painting
an object sets all three layers under one mask, which is what keeps the
ground truth exact.

The rest are whole-tile NumPy primitives the renderer needs and that know
nothing about towns: smooth value noise (textures, terrain), a box blur by
cumulative sums (soft shadow edges, DSM smearing) and the shadow cast by the
height field towards the sun. They are kept apart from the object painters
so that those read as a description of the town, and these can be tested
and tuned on their own.
"""
from __future__ import annotations

import math

import numpy as np

# Potsdam class ids, the values of `Canvas.labels`.
IMPERVIOUS, BUILDING, LOW_VEG, TREE, CAR, CLUTTER = range(6)


def value_noise(rng: np.random.Generator, h: int, w: int,
                cell: float) -> np.ndarray:
    """[h,w] float32 smooth noise with features ~`cell` px, unit std."""
    if cell <= 1:
        return rng.standard_normal((h, w), dtype=np.float32)
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.standard_normal((gh, gw), dtype=np.float32)

    def axis(n):
        t = np.arange(n, dtype=np.float32) / cell
        i = t.astype(np.int64)
        f = t - i
        return i, f * f * (3 - 2 * f)   # smoothstep: no grid artefacts

    iy, fy = axis(h)
    ix, fx = axis(w)
    rows = grid[iy] * (1 - fy)[:, None] + grid[iy + 1] * fy[:, None]
    out = rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx
    return out / max(float(out.std()), 1e-6)


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (edges clamped), by cumulative sums."""
    if r <= 0:
        return a
    p = np.pad(a, r, mode="edge").astype(np.float32)
    c = np.cumsum(p, axis=0)
    c = np.concatenate([c[2 * r:2 * r + 1], c[2 * r + 1:] - c[:-2 * r - 1]])
    c = np.cumsum(c, axis=1)
    c = np.concatenate([c[:, 2 * r:2 * r + 1], c[:, 2 * r + 1:] - c[:, :-2 * r - 1]],
                       axis=1)
    return c / float((2 * r + 1) ** 2)


class Canvas:
    """Mutable state of a scene while objects are drawn onto it."""

    def __init__(self, size: int, rng: np.random.Generator, scale: float):
        self.size, self.rng, self.s = size, rng, scale
        self.labels = np.full((size, size), LOW_VEG, np.uint8)
        self.height = np.zeros((size, size), np.float32)
        self.image = np.zeros((size, size, 4), np.float32)
        self.road = np.zeros((size, size), bool)   # asphalt carriageway
        self.counts = np.zeros(6, np.int64)          # pixels per class
        self.counts[LOW_VEG] = size * size
        # Shared texture fields; objects take their bounding-box slice.
        self.fine = value_noise(rng, size, size, 1.0)
        self.leaf = value_noise(rng, size, size, 3.0 * scale)
        self.patch = value_noise(rng, size, size, 40.0 * scale)
        sun_azimuth = math.radians(rng.uniform(110.0, 250.0))
        # Unit vector towards the sun in (row, col) image coordinates.
        self.sun = (-math.cos(sun_azimuth), math.sin(sun_azimuth))
        self.sun_elevation = math.radians(rng.uniform(45.0, 65.0))

    def count(self, cls: int) -> int:
        return int(self.counts[cls])

    def box(self, y: int, x: int, h: int, w: int):
        return slice(max(y, 0), min(y + h, self.size)), \
            slice(max(x, 0), min(x + w, self.size))

    def paint(self, sl, mask, cls, color, texture=None, height=None):
        """Sets label, colour (times `texture`) and height where `mask`."""
        color = np.asarray(color, np.float32)
        pix = color * (1.0 if texture is None else texture[..., None])
        self.image[sl][mask] = pix[mask] if pix.ndim == 3 else pix
        self.counts -= np.bincount(self.labels[sl][mask], minlength=6)
        self.counts[cls] += np.count_nonzero(mask)
        self.labels[sl][mask] = cls
        if height is not None:
            hgt = np.broadcast_to(np.asarray(height, np.float32), mask.shape)
            self.height[sl][mask] = hgt[mask]


def shadow_mask(cv: Canvas, gsd: float) -> np.ndarray:
    """[H,W] bool: pixels whose path to the sun is blocked by the nDSM."""
    hgt, n = cv.height, cv.size
    tan_e = math.tan(cv.sun_elevation)
    occluder = np.full_like(hgt, -np.inf)
    max_len = int(float(hgt.max()) / tan_e / gsd) + 1
    for t in range(2, max(max_len, 3), 2):
        dy, dx = int(round(cv.sun[0] * t)), int(round(cv.sun[1] * t))
        if abs(dy) >= n or abs(dx) >= n:
            break
        dst = (slice(max(0, -dy), n - max(0, dy)), slice(max(0, -dx), n - max(0, dx)))
        src = (slice(max(0, dy), n - max(0, -dy)), slice(max(0, dx), n - max(0, -dx)))
        np.maximum(occluder[dst], hgt[src] - np.float32(t * gsd * tan_e),
                   out=occluder[dst])
    return occluder > hgt + 0.3
