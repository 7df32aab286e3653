"""The synthetic demo dataset: tiles laid out like the official archives.

`make_demo_dataset` writes tiles from `core.data.synthetic_scene.render_scene`
laid out like the official ISPRS Potsdam and INRIA archives, georeferenced,
so `core.data.prepare` reads the demo and the real data with the same code:
file names and folders, tile ids and splits, GeoTIFF encoding, the eroded
("noBoundary") Potsdam labels, and a manifest that makes reruns safe (files
already there are checked, never overwritten).

The pixels themselves (objects, materials, shadows, noise) are drawn by
`core.data.synthetic_scene`; this module decides which tiles exist, with
which random stream, and how they reach the disk.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Callable

import numpy as np

from core.data import datasets, geotiff, labels
from core.data.synthetic_scene import BUILDING, render_scene


# The common ISPRS Potsdam split (test = the 14 tiles released without labels
# at the time of the benchmark); `core.data.prepare` splits the same way.
POTSDAM_TRAIN_TILES = (
    "2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12",
    "5_10", "5_11", "5_12", "6_7", "6_8", "6_9", "6_10", "6_11", "6_12",
    "7_7", "7_8", "7_9", "7_10", "7_11", "7_12")
POTSDAM_TEST_TILES = datasets.POTSDAM_VAL_IDS
# INRIA cities with a plausible CRS (the city's UTM zone) and origin.
INRIA_CITIES = {
    "austin": (26914, 620000.0, 3350000.0), "chicago": (26916, 440000.0, 4640000.0),
    "kitsap": (26910, 520000.0, 5280000.0), "tyrol-w": (32632, 640000.0, 5240000.0),
    "vienna": (32633, 600000.0, 5340000.0)}
MIN_SIZE = 256
MANIFEST = "ortholoop_demo.json"
_GENERATOR_VERSION = 1


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
        palette = datasets.POTSDAM.labels.palette
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
    spec = datasets.get_dataset(dataset).labels
    counts = np.zeros(spec.num_classes, np.int64)
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
        share = counts / max(int(counts.sum()), 1)
        log("class proportions: " + ", ".join(
            f"{n} {100 * p:.1f}%" for n, p in zip(spec.class_names, share)))
    return written
