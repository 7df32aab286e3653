"""Synthetic orthophoto tiles with exact ground truth (the demo dataset).

`render_scene` draws a small town seen from above: a road grid with
sidewalks, lane markings and parked cars; buildings (rectangles and
L-shapes, gabled or flat roofs, 5-20 m tall); paved yards; trees (textured
crowns, 3-15 m); grass and hedges (low vegetation, up to 1.8 m); clutter
(containers, tarps, heaps). The class ids of
every pixel, the R,G,B,IR image and the normalised DSM come from the same
objects, so the ground truth is exact at the object level (a car is its
whole rectangle).

Each class stays separable by colour, IR, texture, height and context, as in
the real data: vegetation is bright in IR, trees are darker and rougher than
grass, roofs have ridges and gutters and cast shadows. Sun position,
illumination, colour cast and sensor noise change from tile to tile.

Objects are drawn about half the size that true 5 cm pixels imply (a car is
~43x19 px) so that a 1024 px tile holds a neighbourhood, not one roof. The
work is vectorised NumPy over object bounding boxes (no per-pixel loops).

`make_demo_dataset` writes such tiles laid out like the official ISPRS
Potsdam and INRIA archives, georeferenced, so `core.data.prepare` reads the
demo and the real data with the same code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Callable

import numpy as np

from core.data import geotiff, labels

IMPERVIOUS, BUILDING, LOW_VEG, TREE, CAR, CLUTTER = range(6)

# Reflectance (R, G, B, IR) of the materials, in 0..1 before illumination.
_ASPHALT = (0.33, 0.34, 0.36, 0.30)
_SIDEWALK = (0.55, 0.55, 0.54, 0.48)
_MARKING = (0.88, 0.88, 0.86, 0.80)
_PAVERS = ((0.60, 0.58, 0.54, 0.50), (0.64, 0.59, 0.52, 0.52))
_GRASS = (0.27, 0.45, 0.17, 0.66)
_DRY_GRASS = (0.46, 0.47, 0.25, 0.52)
_TREE = (0.11, 0.28, 0.09, 0.58)
_HEDGE = (0.17, 0.35, 0.12, 0.62)
_GABLE_ROOFS = ((0.64, 0.30, 0.21, 0.44), (0.43, 0.21, 0.17, 0.34),
                (0.23, 0.23, 0.27, 0.22), (0.52, 0.37, 0.29, 0.41))
_FLAT_ROOFS = ((0.68, 0.68, 0.70, 0.60), (0.17, 0.17, 0.19, 0.17),
               (0.55, 0.58, 0.62, 0.50))
_CAR_PAINTS = ((0.72, 0.08, 0.08, 0.50), (0.08, 0.18, 0.62, 0.30),
               (0.90, 0.90, 0.90, 0.82), (0.06, 0.06, 0.07, 0.08),
               (0.62, 0.64, 0.67, 0.56), (0.88, 0.74, 0.08, 0.70))
_GLASS = (0.09, 0.11, 0.14, 0.08)
_CLUTTER = ((0.88, 0.45, 0.08, 0.62), (0.45, 0.14, 0.52, 0.40),
            (0.08, 0.48, 0.88, 0.34), (0.45, 0.31, 0.19, 0.36),
            (0.75, 0.72, 0.20, 0.45))

# Target class fractions of a tile (ranges sampled per tile), like Potsdam.
_TARGETS = {BUILDING: (0.23, 0.29), TREE: (0.13, 0.17),
            IMPERVIOUS: (0.26, 0.31), CAR: (0.013, 0.018), CLUTTER: (0.035, 0.05)}


@dataclasses.dataclass
class Scene:
    """One rendered tile.

    Attributes:
      labels: [H,W] uint8 Potsdam class ids (0 impervious .. 5 clutter).
      rgbir: [H,W,4] uint8, bands R, G, B, IR.
      ndsm: [H,W] float32 height above ground in metres.
      dsm: [H,W] float32 surface elevation in metres (terrain + ndsm).
    """
    labels: np.ndarray
    rgbir: np.ndarray
    ndsm: np.ndarray
    dsm: np.ndarray


def _value_noise(rng: np.random.Generator, h: int, w: int,
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


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
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


def boundary_mask(ids: np.ndarray, radius: int = 3) -> np.ndarray:
    """[H,W] bool: pixels with another class within a disc of `radius` px.

    This is how the ISPRS eroded ground truth ("noBoundary") was made: the
    class boundaries eroded by a circular disc, a few pixels wide.
    """
    h, w = ids.shape
    out = np.zeros((h, w), bool)
    for dy in range(0, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius or (dy == 0 and dx <= 0):
                continue
            # Compare each pixel with its (dy, dx) neighbour; mark both sides.
            a = ids[0:h - dy, max(0, -dx):w - max(0, dx)]
            b = ids[dy:h, max(0, dx):w - max(0, -dx)]
            diff = a != b
            out[0:h - dy, max(0, -dx):w - max(0, dx)] |= diff
            out[dy:h, max(0, dx):w - max(0, -dx)] |= diff
    return out


class _Canvas:
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
        self.fine = _value_noise(rng, size, size, 1.0)
        self.leaf = _value_noise(rng, size, size, 3.0 * scale)
        self.patch = _value_noise(rng, size, size, 40.0 * scale)
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


def _jitter(rng, color, amount=0.06):
    c = np.asarray(color, np.float32)
    return np.clip(c * (1 + rng.uniform(-amount, amount)) +
                   rng.uniform(-amount / 2, amount / 2, 4), 0, 1)


def _draw_ground(cv: _Canvas) -> None:
    texture = 1 + 0.10 * cv.patch + 0.06 * cv.leaf
    np.multiply(texture[..., None], np.float32(_GRASS), out=cv.image)
    dry = cv.patch > 0.9   # sun-burnt patches: yellower, less bright in IR
    cv.image[dry] = texture[dry][:, None] * np.float32(_DRY_GRASS)
    np.clip(0.2 + 0.12 * cv.patch + 0.05 * cv.leaf, 0.0, 0.5, out=cv.height)


def _draw_roads(cv: _Canvas) -> list[tuple[str, float, float]]:
    """Road grid; returns (orientation, centre, width) of each road."""
    rng, s, n = cv.rng, cv.s, cv.size
    roads = []
    for orient in ("v", "h"):
        spacing = rng.uniform(560, 760) * s
        pos = rng.uniform(0.15, 0.85) * min(spacing, n)
        while pos < n:
            roads.append((orient, pos, rng.uniform(54, 72) * s))
            pos += spacing
    walk = 12 * s
    for orient, c, w in roads:
        # Work on the road's strip only: [n, band] for "v", [band, n] for "h".
        lo, hi = max(int(c - w / 2 - walk), 0), min(int(c + w / 2 + walk) + 1, n)
        across = np.abs(np.arange(lo, hi, dtype=np.float32) - c)
        along = np.arange(n, dtype=np.float32)
        if orient == "v":
            sl, d, a = (slice(None), slice(lo, hi)), across[None, :], along[:, None]
        else:
            sl, d, a = (slice(lo, hi), slice(None)), across[:, None], along[None, :]
        shape = cv.labels[sl].shape
        fine = cv.fine[sl]
        sidewalk = np.broadcast_to((d >= w / 2) & (d < w / 2 + walk), shape)
        joints = np.broadcast_to((a % (8 * s)) < 1, shape)
        cv.paint(sl, sidewalk, IMPERVIOUS, _SIDEWALK,
                 (1 + 0.05 * fine) * np.where(joints, 0.9, 1.0), 0.0)
        lane = np.broadcast_to(d < w / 2, shape)
        cv.paint(sl, lane, IMPERVIOUS, _ASPHALT,
                 1 + 0.07 * cv.patch[sl] + 0.05 * fine, 0.0)
        cv.road[sl] |= lane
        dash = np.broadcast_to((d < 1.5 * s) & ((a % (60 * s)) < 30 * s), shape)
        cv.paint(sl, dash, IMPERVIOUS, _MARKING, 1 + 0.04 * fine, 0.0)
    return roads


def _draw_building(cv: _Canvas, y, x, h, w, roof, gable, eave, ridge) -> None:
    sl = cv.box(y, x, h, w)
    yy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] - y
    xx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] - x
    yy, xx = np.broadcast_arrays(yy, xx)
    mask = np.ones(yy.shape, bool)
    fine = cv.fine[sl]
    edge = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))
    if gable:
        along_x = w >= h   # ridge along the long side
        across, half = (yy, h / 2) if along_x else (xx, w / 2)
        off = (across - (half - 0.5)) / half             # -1..1 across the ridge
        normal = (np.sign(off), 0.0) if along_x else (0.0, np.sign(off))
        light = 1 + 0.22 * (normal[0] * cv.sun[0] + normal[1] * cv.sun[1])
        rows = 1 + 0.07 * np.sin(2 * np.pi * across / (5 * cv.s))
        texture = light * rows * (1 + 0.04 * fine) * np.where(edge < 2 * cv.s, 0.65, 1.0)
        height = eave + ridge * (1 - np.abs(off))
    else:
        texture = (1 + 0.05 * fine) * np.where(edge < 4 * cv.s, 1.25, 1.0)
        height = np.full(yy.shape, eave, np.float32)
        for _ in range(cv.rng.integers(0, 4)):   # rooftop plant boxes
            bh, bw = cv.rng.uniform(8, 22, 2) * cv.s
            by, bx = cv.rng.uniform(6 * cv.s, [max(h - bh - 6 * cv.s, 7 * cv.s),
                                               max(w - bw - 6 * cv.s, 7 * cv.s)])
            inside = (yy >= by) & (yy < by + bh) & (xx >= bx) & (xx < bx + bw)
            texture = np.where(inside, texture * 1.3, texture)
            height = np.where(inside, height + 1.5, height)
    cv.paint(sl, mask, BUILDING, roof, texture, height)


def _draw_buildings(cv: _Canvas, target: float) -> None:
    rng, s, n = cv.rng, cv.s, cv.size
    gap = int(10 * s)
    # Rejection sampling: most random footprints hit a road or a neighbour,
    # so many cheap attempts are needed to reach ~26 % buildings.
    for _ in range(1500):
        if cv.count(BUILDING) >= target * n * n:
            break
        long_, short = rng.uniform(90, 230) * s, rng.uniform(70, 130) * s
        h, w = (int(long_), int(short)) if rng.random() < 0.5 else (int(short), int(long_))
        y, x = int(rng.uniform(-h / 4, n - 3 * h / 4)), int(rng.uniform(-w / 4, n - 3 * w / 4))
        wing = None
        if rng.random() < 0.4:   # L-shape: a wing at one end of the long side
            wl, ww = int(rng.uniform(0.5, 0.9) * long_), int(rng.uniform(0.45, 0.7) * short)
            if h > w:
                wing = (y + (0 if rng.random() < 0.5 else h - ww), x + w - 1, ww, wl)
            else:
                wing = (y + h - 1, x + (0 if rng.random() < 0.5 else w - ww), wl, ww)
        rects = [(y, x, h, w)] + ([wing] if wing else [])
        ok = True
        for ry, rx, rh, rw in rects:
            sl = cv.box(ry - gap, rx - gap, rh + 2 * gap, rw + 2 * gap)
            if (sl[0].stop - sl[0].start < gap or sl[1].stop - sl[1].start < gap or
                    cv.road[sl].any() or (cv.labels[sl] != LOW_VEG).any()):
                ok = False
                break
        if not ok:
            continue
        gable = rng.random() < 0.6
        roofs = _GABLE_ROOFS if gable else _FLAT_ROOFS
        roof = _jitter(rng, roofs[rng.integers(len(roofs))])
        eave = rng.uniform(5, 14)
        ridge = rng.uniform(2, 6) if gable else 0.0
        for ry, rx, rh, rw in rects:
            _draw_building(cv, ry, rx, rh, rw, roof, gable, eave, ridge)


def _draw_trees(cv: _Canvas, target: float) -> None:
    rng, s, n = cv.rng, cv.s, cv.size
    for _ in range(600):
        if cv.count(TREE) >= target * n * n:
            break
        cy, cx = rng.integers(0, n, 2)
        if cv.labels[cy, cx] != LOW_VEG:
            continue
        r = rng.uniform(22, 58) * s
        sl = cv.box(int(cy - 1.5 * r), int(cx - 1.5 * r), int(3 * r), int(3 * r))
        yy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] - cy
        xx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] - cx
        d = np.full(np.broadcast_shapes(yy.shape, xx.shape), np.inf, np.float32)
        for _ in range(rng.integers(1, 5)):   # a crown is a few lobes
            oy, ox = rng.uniform(-0.45, 0.45, 2) * r
            d = np.minimum(d, np.hypot(yy - oy, xx - ox) / (r * rng.uniform(0.55, 0.8)))
        d = d + 0.10 * cv.leaf[sl]
        mask = (d < 1) & (cv.labels[sl] != BUILDING)
        top = rng.uniform(3, 15)
        dome = np.sqrt(np.clip(1 - d * d, 0, 1))
        lit = 1 + 0.25 * (yy * cv.sun[0] + xx * cv.sun[1]) / r
        texture = lit * (1 + 0.22 * cv.leaf[sl] + 0.08 * cv.fine[sl]) * (0.75 + 0.25 * dome)
        cv.paint(sl, mask, TREE, _jitter(rng, _TREE, 0.12), texture,
                 top * (0.55 + 0.45 * dome))


def _draw_hedges(cv: _Canvas, target: float) -> None:
    """Hedges: low vegetation 0.8-1.8 m tall, leafy like trees but lower
    and thin; in ISPRS they are low vegetation, a classic tree confusion."""
    rng, s, n = cv.rng, cv.s, cv.size
    painted = 0
    for _ in range(300):
        if painted >= target * n * n:
            break
        long_, thick = int(rng.uniform(50, 160) * s), int(rng.uniform(8, 14) * s)
        h, w = (long_, thick) if rng.random() < 0.5 else (thick, long_)
        sl = cv.box(int(rng.integers(0, n)), int(rng.integers(0, n)), h, w)
        mask = (cv.labels[sl] == LOW_VEG) & ~cv.road[sl]
        if mask.size == 0 or mask.mean() < 0.8:
            continue
        yy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] - sl[0].start
        xx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] - sl[1].start
        across = (yy / max(h - 1, 1)) if h < w else (xx / max(w - 1, 1))
        dome = np.sqrt(np.clip(1 - (2 * across - 1) ** 2, 0, 1))
        texture = (1 + 0.18 * cv.leaf[sl] + 0.08 * cv.fine[sl]) * (0.8 + 0.2 * dome)
        cv.paint(sl, mask, LOW_VEG, _jitter(rng, _HEDGE, 0.08), texture,
                 rng.uniform(0.8, 1.8) * (0.6 + 0.4 * dome))
        painted += int(np.count_nonzero(mask))


def _draw_yards(cv: _Canvas, target: float) -> None:
    rng, s, n = cv.rng, cv.s, cv.size
    for _ in range(300):
        if cv.count(IMPERVIOUS) >= target * n * n:
            break
        h, w = (rng.uniform(40, 150, 2) * s).astype(int)
        sl = cv.box(int(rng.integers(0, n)) - h // 2, int(rng.integers(0, n)) - w // 2, h, w)
        mask = cv.labels[sl] == LOW_VEG
        if mask.size == 0 or mask.mean() < 0.6:
            continue
        # Staggered paving stones, each a little brighter or darker: a
        # texture unlike the one-directional rows of tiled roofs.
        sh, sw = max(int(6 * s), 2), max(int(12 * s), 4)
        yy = np.arange(sl[0].start, sl[0].stop)[:, None]
        xx = np.arange(sl[1].start, sl[1].stop)[None, :] + (yy // sh % 2) * (sw // 2)
        stone = np.sin((yy // sh) * 12.9898 + (xx // sw) * 78.233) * 43758.5453
        stone = 0.92 + 0.16 * (stone - np.floor(stone))
        joints = ((yy % sh) == 0) | ((xx % sw) == 0)
        texture = stone * (1 + 0.04 * cv.fine[sl]) * np.where(joints, 0.8, 1.0)
        cv.paint(sl, mask, IMPERVIOUS,
                 _jitter(rng, _PAVERS[rng.integers(len(_PAVERS))]), texture, 0.0)


def _draw_cars(cv: _Canvas, roads, target: float) -> None:
    rng, s, n = cv.rng, cv.s, cv.size
    for _ in range(800):
        if cv.count(CAR) >= target * n * n or not roads:
            break
        orient, c, w = roads[rng.integers(len(roads))]
        length, width = rng.uniform(38, 48) * s, rng.uniform(17, 21) * s
        lane = rng.choice([-1, 1]) * (w / 2 - width / 2 - 3 * s if rng.random() < 0.6 else w / 4)
        u = rng.uniform(0, n - length)
        if orient == "v":
            y, x, h, wd = int(u), int(c + lane - width / 2), int(length), int(width)
        else:
            y, x, h, wd = int(c + lane - width / 2), int(u), int(width), int(length)
        sl = cv.box(y - 3, x - 3, h + 6, wd + 6)
        inner = cv.box(y, x, h, wd)
        if (inner[0].stop - inner[0].start != h or inner[1].stop - inner[1].start != wd or
                not cv.road[inner].all() or (cv.labels[sl] == CAR).any() or
                (cv.labels[inner] != IMPERVIOUS).any()):
            continue
        size_along = h if orient == "v" else wd
        t = np.arange(size_along, dtype=np.float32) / size_along
        t = t if rng.random() < 0.5 else t[::-1]   # driving direction
        glass = ((t > 0.2) & (t < 0.33)) | ((t > 0.78) & (t < 0.88))
        glass = glass[:, None] if orient == "v" else glass[None, :]
        paint = _jitter(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))], 0.05)
        pix = np.where(glass[..., None], np.float32(_GLASS), paint)
        pix = np.broadcast_to(pix, (h, wd, 4)) * (1 + 0.03 * cv.fine[inner])[..., None]
        cv.paint(inner, np.ones((h, wd), bool), CAR, pix, None,
                 rng.uniform(1.35, 1.65))


def _draw_clutter(cv: _Canvas, target: float) -> None:
    rng, s, n = cv.rng, cv.s, cv.size
    for _ in range(600):
        if cv.count(CLUTTER) >= target * n * n:
            break
        h, w = (rng.uniform(24, 80, 2) * s).astype(int)
        y, x = rng.integers(0, n - h), rng.integers(0, n - w)
        sl = cv.box(y - 3, x - 3, h + 6, w + 6)
        lab = cv.labels[sl]
        if (cv.road[sl].any() or np.isin(lab, (BUILDING, TREE, CAR)).any()):
            continue
        inner = cv.box(y, x, h, w)
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        color = _jitter(rng, _CLUTTER[rng.integers(len(_CLUTTER))], 0.1)
        if rng.random() < 0.5:   # container / tarp with ribs
            mask = np.ones((h, w), bool)
            texture = 1 + 0.12 * np.sign(np.sin(2 * np.pi * xx / (6 * s)))
            height = rng.uniform(0.8, 2.8)
        else:                     # heap: elliptic, rough
            e = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
            mask = e + 0.2 * cv.leaf[inner] < 1
            texture = 1 + 0.25 * cv.leaf[inner]
            height = rng.uniform(0.4, 2.0) * np.sqrt(np.clip(1 - e, 0, 1))
        cv.paint(inner, mask, CLUTTER, color, np.broadcast_to(texture, (h, w)),
                 height)


def _shadow(cv: _Canvas, gsd: float) -> np.ndarray:
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


def render_scene(size: int, rng: np.random.Generator, *,
                 scale: float = 1.0, gsd: float = 0.1) -> Scene:
    """Draws one tile.

    Args:
      size: tile side in pixels (>= 256 at scale 1).
      rng: the only source of randomness (deterministic for a seed).
      scale: object size multiplier (1 for Potsdam-like, 0.5 for INRIA-like).
      gsd: metres per pixel used for shadow lengths.
    """
    cv = _Canvas(size, rng, scale)
    targets = {k: rng.uniform(*v) for k, v in _TARGETS.items()}
    _draw_ground(cv)
    roads = _draw_roads(cv)
    _draw_buildings(cv, targets[BUILDING])
    _draw_trees(cv, targets[TREE])
    _draw_yards(cv, targets[IMPERVIOUS] + targets[CAR])
    _draw_hedges(cv, rng.uniform(0.015, 0.03))
    _draw_cars(cv, roads, targets[CAR])
    _draw_clutter(cv, targets[CLUTTER])

    # Cast shadows (soft-edged), then per-tile light, colour cast, noise;
    # in place on the [H,W,4] image to keep memory traffic down.
    shade = _box_blur(_shadow(cv, gsd / scale).astype(np.float32), 1)
    light = 1 - np.float32(rng.uniform(0.42, 0.55)) * shade
    yy = np.arange(size, dtype=np.float32)[:, None] / size
    xx = np.arange(size, dtype=np.float32)[None, :] / size
    angle = rng.uniform(0, 2 * np.pi)
    light *= np.float32(rng.uniform(0.85, 1.15)) * (
        1 + np.float32(rng.uniform(-0.08, 0.08)) *
        (np.float32(np.cos(angle)) * xx + np.float32(np.sin(angle)) * yy - 0.5))
    cast = (1 + rng.uniform(-0.05, 0.05, 4)).astype(np.float32) * 255
    image = cv.image
    image *= light[..., None]
    image *= cast
    noise = rng.standard_normal(image.shape, np.float32)
    noise *= np.float32(255 * rng.uniform(0.01, 0.022))
    image += noise
    image += 0.5
    rgbir = np.clip(image, 0, 255, out=image).astype(np.uint8)

    # Like a DSM from image matching: edges smeared by a pixel, some noise.
    ndsm = np.clip(_box_blur(cv.height, 1) + 0.05 * cv.fine, 0, None).astype(np.float32)
    terrain = (34 + 1.5 * _value_noise(rng, size, size, size / 2) +
               np.float32(rng.uniform(-2, 2)) * yy)
    return Scene(labels=cv.labels, rgbir=rgbir, ndsm=ndsm,
                 dsm=(terrain + ndsm).astype(np.float32))


# --------------------------------------------------------------------------
# Demo datasets laid out like the official archives.
# --------------------------------------------------------------------------

# The common ISPRS Potsdam split (test = the 14 tiles released without labels
# at the time of the benchmark); `core.data.prepare` splits the same way.
POTSDAM_TRAIN_TILES = (
    "2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12",
    "5_10", "5_11", "5_12", "6_7", "6_8", "6_9", "6_10", "6_11", "6_12",
    "7_7", "7_8", "7_9", "7_10", "7_11", "7_12")
POTSDAM_TEST_TILES = (
    "2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14",
    "5_15", "6_13", "6_14", "6_15", "7_13")
# INRIA cities with a plausible CRS (the city's UTM zone) and origin.
INRIA_CITIES = {
    "austin": (26914, 620000.0, 3350000.0), "chicago": (26916, 440000.0, 4640000.0),
    "kitsap": (26910, 520000.0, 5280000.0), "tyrol-w": (32632, 640000.0, 5240000.0),
    "vienna": (32633, 600000.0, 5340000.0)}
MIN_SIZE = 256
MANIFEST = "ortholoop_demo.json"
_GENERATOR_VERSION = 1


def _encode(array: np.ndarray, geo) -> bytes:
    """GeoTIFF bytes: zlib level 1 for uint8 (2.5x faster than level 6, ~2%
    larger here); float32 heights with sensor noise barely compress (-20%),
    so they are stored raw."""
    if array.dtype == np.float32:
        return geotiff.encode_geotiff(array, geo, compress="none")
    return geotiff.encode_geotiff(array, geo, level=1)


def _split_counts(tiles: int, max_train: int, max_held: int) -> tuple[int, int]:
    """About 3/4 training tiles, and at least one held-out tile when >= 2."""
    if tiles > max_train + max_held:
        raise ValueError(f"tiles={tiles}: at most {max_train + max_held} tiles "
                         "exist in this archive layout.")
    train = max(1, int(math.floor(tiles * 0.75 + 0.5)))
    if tiles >= 2:
        train = min(train, tiles - 1)
    train = min(max(train, tiles - max_held), max_train)
    return train, tiles - train


def _potsdam_files(tile: str) -> dict[str, str]:
    a, b = (int(v) for v in tile.split("_"))
    return {
        "rgbir": f"4_Ortho_RGBIR/top_potsdam_{a}_{b}_RGBIR.tif",
        "ndsm": f"1_DSM_normalisation/dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.tif",
        "dsm": f"1_DSM/dsm_potsdam_{a:02d}_{b:02d}.tif",
        "label": f"5_Labels_all/top_potsdam_{a}_{b}_label.tif",
        "label_noBoundary":
            f"5_Labels_all_noBoundary/top_potsdam_{a}_{b}_label_noBoundary.tif"}


def demo_tiles(dataset: str, tiles: int) -> list[str]:
    """Tile names for `tiles` tiles: Potsdam "2_10"..., INRIA "austin6"...

    Potsdam takes about 3/4 from POTSDAM_TRAIN_TILES and the rest from
    POTSDAM_TEST_TILES; INRIA takes about 3/4 training tiles (k >= 6) and
    the rest validation tiles (k <= 5, the INRIA convention), cities in turn.
    """
    if dataset == "potsdam":
        train, held = _split_counts(tiles, len(POTSDAM_TRAIN_TILES), len(POTSDAM_TEST_TILES))
        return list(POTSDAM_TRAIN_TILES[:train] + POTSDAM_TEST_TILES[:held])
    cities = list(INRIA_CITIES)
    train, held = _split_counts(tiles, 31 * len(cities), 5 * len(cities))
    return ([f"{cities[i % 5]}{6 + i // 5}" for i in range(train)] +
            [f"{cities[i % 5]}{1 + i // 5}" for i in range(held)])


def _tile_arrays(dataset: str, tile: str, size: int, seed: int):
    """{relative path: (array, GeoInfo)} of one tile, and its class ids."""
    # Each tile has its own stream: a tile is the same whatever --tiles says.
    key = [seed, _GENERATOR_VERSION, size] + [ord(c) for c in f"{dataset}/{tile}"]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    if dataset == "potsdam":
        scene = render_scene(size, rng, scale=1.0, gsd=0.1)
        a, b = (int(v) for v in tile.split("_"))
        geo = geotiff.make_geoinfo(25833, (366000.0 + a * size * 0.05,
                                           5809000.0 - b * size * 0.05), 0.05)
        eroded = np.where(boundary_mask(scene.labels, 3), labels.IGNORE_INDEX,
                          scene.labels)
        palette = labels.POTSDAM.palette
        files = _potsdam_files(tile)
        arrays = {files["rgbir"]: scene.rgbir, files["ndsm"]: scene.ndsm,
                  files["dsm"]: scene.dsm,
                  files["label"]: labels.index_to_rgb(scene.labels, palette),
                  files["label_noBoundary"]: labels.index_to_rgb(eroded, palette)}
        return {p: (v, geo) for p, v in arrays.items()}, scene.labels
    city, k = tile.rstrip("0123456789"), int(tile[len(tile.rstrip("0123456789")):])
    epsg, x0, y0 = INRIA_CITIES[city]
    scene = render_scene(size, rng, scale=0.5, gsd=0.3)
    geo = geotiff.make_geoinfo(epsg, (x0 + k * size * 0.3, y0), 0.3)
    building = scene.labels == BUILDING
    base = "AerialImageDataset/train"
    return ({f"{base}/images/{tile}.tif": (scene.rgbir[..., :3], geo),
             f"{base}/gt/{tile}.tif": (np.where(building, np.uint8(255), np.uint8(0)), geo)},
            building.astype(np.uint8))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_existing(out_dir: str, plan: dict[str, list[str]], manifest: dict,
                    params: dict) -> tuple[dict[str, bytes], list[str]]:
    """Compares the files already at target paths with what would be written.

    Returns the bytes generated while checking (reused for writing) and the
    paths whose content differs.
    """
    # Cheap check first: a recorded file made with other parameters, or
    # changed since it was recorded.
    to_verify, conflicts = set(), []
    for tile, rels in plan.items():
        for rel in rels:
            path = os.path.join(out_dir, rel)
            if not os.path.exists(path):
                continue
            entry = manifest["files"].get(rel)
            if entry is None:
                to_verify.add(tile)
            elif ({k: entry.get(k) for k in params} != params or
                  entry.get("sha256") != _sha256(path)):
                conflicts.append(path)
    # Unrecorded files: regenerate their tile and compare bytes.
    encoded = {}
    for tile in sorted(to_verify):
        arrays, _ = _tile_arrays(params["dataset"], tile, params["size"], params["seed"])
        for rel, (array, geo) in arrays.items():
            path = os.path.join(out_dir, rel)
            encoded[rel] = _encode(array, geo)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    if f.read() != encoded[rel]:
                        conflicts.append(path)
    return encoded, conflicts


def make_demo_dataset(out_dir: str, dataset: str = "potsdam", tiles: int = 8,
                      size: int = 1024, seed: int = 0, *,
                      log: Callable[[str], None] | None = print) -> list[str]:
    """Writes a synthetic dataset laid out like the official archive.

    Existing files are never overwritten or deleted: a file that is already
    there with the same content (recorded in OUT/ortholoop_demo.json, or
    checked byte for byte) is skipped, missing files are written, and any
    different file at a target path stops the run with one error before
    anything is written.

    Args:
      out_dir: output folder (created if missing).
      dataset: "potsdam" (RGBIR, nDSM, DSM, labels, eroded labels) or
        "inria" (RGB images and 0/255 building masks).
      tiles: number of tiles (>= 1); see `demo_tiles` for the names.
      size: tile side in pixels (>= MIN_SIZE).
      seed: random seed; the same seed gives the same bytes.
      log: called with one line per written file and the class proportions;
        None for silence.

    Returns:
      The paths written by this call (already present files excluded).
    """
    if dataset not in ("potsdam", "inria"):
        raise ValueError(f"dataset={dataset!r}: expected 'potsdam' or 'inria'.")
    if isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer)) or tiles < 1:
        raise ValueError(f"tiles={tiles!r}: expected an integer >= 1.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size={size!r}: expected an integer >= {MIN_SIZE} (pixels "
                         "per tile side; objects need room).")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an integer >= 0.")
    log = log or (lambda _: None)
    names = demo_tiles(dataset, int(tiles))
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out_dir={out_dir}: exists and is not a folder.")
    manifest_path = os.path.join(out_dir, MANIFEST)
    manifest = {"generator": "ortholoop.synthetic", "files": {}}
    if os.path.exists(manifest_path):
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
            manifest["files"].items()
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
            raise ValueError(f"{manifest_path}: not a readable demo manifest ({e}); "
                             "choose another out_dir.") from e
    params = {"dataset": dataset, "size": int(size), "seed": int(seed),
              "version": _GENERATOR_VERSION}
    plan = {t: (list(_potsdam_files(t).values()) if dataset == "potsdam" else
                [f"AerialImageDataset/train/{d}/{t}.tif" for d in ("images", "gt")])
            for t in names}
    encoded, conflicts = _check_existing(out_dir, plan, manifest, params)
    if conflicts:
        raise ValueError(
            f"out_dir={out_dir} already holds {len(conflicts)} file(s) that differ "
            f"from what dataset={dataset} size={size} seed={seed} generates, e.g. "
            f"{conflicts[0]}; nothing was overwritten. Choose an empty out_dir.")

    written, recorded = [], 0
    counts = np.zeros(6 if dataset == "potsdam" else 2, np.int64)
    for tile, rels in plan.items():
        missing = [r for r in rels if not os.path.exists(os.path.join(out_dir, r))]
        for rel in rels:
            if rel not in missing and rel not in manifest["files"]:
                path = os.path.join(out_dir, rel)   # verified identical above
                manifest["files"][rel] = dict(params, sha256=_sha256(path))
                recorded += 1
        if not missing:
            log(f"{tile}: already present, skipped")
            continue
        arrays, ids = _tile_arrays(dataset, tile, int(size), int(seed))
        counts += np.bincount(ids.ravel(), minlength=len(counts))
        for rel in missing:
            path = os.path.join(out_dir, rel)
            data = encoded.get(rel) or _encode(*arrays[rel])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".partial"
            with open(tmp, "wb") as f:   # whole file or nothing at `path`
                f.write(data)
            os.replace(tmp, path)
            manifest["files"][rel] = dict(params, sha256=hashlib.sha256(data).hexdigest())
            written.append(path)
            log(f"wrote {path}")
    if written or recorded:
        tmp = manifest_path + ".partial"
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        os.replace(tmp, manifest_path)
    if written:
        spec = labels.POTSDAM if dataset == "potsdam" else labels.INRIA
        share = counts / max(int(counts.sum()), 1)
        log("class proportions: " + ", ".join(
            f"{n} {100 * p:.1f}%" for n, p in zip(spec.class_names, share)))
    return written
