"""Renders one synthetic orthophoto tile with exact ground truth.

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

This module holds what the town is made of: the materials, the object
painters in drawing order and the final lighting. The canvas they paint on
and the image-wide primitives (noise, blur, shadows) are in
`core.data.synthetic_canvas`; laying tiles out as dataset archives on disk
is `core.data.synthetic`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from core.data.synthetic_canvas import (BUILDING, CAR, CLUTTER, IMPERVIOUS,
                                        LOW_VEG, TREE, Canvas, box_blur,
                                        shadow_mask, value_noise)

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


def _jitter(rng, color, amount=0.06):
    c = np.asarray(color, np.float32)
    return np.clip(c * (1 + rng.uniform(-amount, amount)) +
                   rng.uniform(-amount / 2, amount / 2, 4), 0, 1)


def _draw_ground(cv: Canvas) -> None:
    texture = 1 + 0.10 * cv.patch + 0.06 * cv.leaf
    np.multiply(texture[..., None], np.float32(_GRASS), out=cv.image)
    dry = cv.patch > 0.9   # sun-burnt patches: yellower, less bright in IR
    cv.image[dry] = texture[dry][:, None] * np.float32(_DRY_GRASS)
    np.clip(0.2 + 0.12 * cv.patch + 0.05 * cv.leaf, 0.0, 0.5, out=cv.height)


def _draw_roads(cv: Canvas) -> list[tuple[str, float, float]]:
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


def _draw_building(cv: Canvas, y, x, h, w, roof, gable, eave, ridge) -> None:
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


def _draw_buildings(cv: Canvas, target: float) -> None:
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


def _draw_trees(cv: Canvas, target: float) -> None:
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


def _draw_hedges(cv: Canvas, target: float) -> None:
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


def _draw_yards(cv: Canvas, target: float) -> None:
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


def _draw_cars(cv: Canvas, roads, target: float) -> None:
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


def _draw_clutter(cv: Canvas, target: float) -> None:
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


def render_scene(size: int, rng: np.random.Generator, *,
                 scale: float = 1.0, gsd: float = 0.1) -> Scene:
    """Draws one tile.

    Args:
      size: tile side in pixels (>= 256 at scale 1).
      rng: the only source of randomness (deterministic for a seed).
      scale: object size multiplier (1 for Potsdam-like, 0.5 for INRIA-like).
      gsd: metres per pixel used for shadow lengths.
    """
    cv = Canvas(size, rng, scale)
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
    shade = box_blur(shadow_mask(cv, gsd / scale).astype(np.float32), 1)
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
    ndsm = np.clip(box_blur(cv.height, 1) + 0.05 * cv.fine, 0, None).astype(np.float32)
    terrain = (34 + 1.5 * value_noise(rng, size, size, size / 2) +
               np.float32(rng.uniform(-2, 2)) * yy)
    return Scene(labels=cv.labels, rgbir=rgbir, ndsm=ndsm,
                 dsm=(terrain + ndsm).astype(np.float32))
