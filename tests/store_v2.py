"""Store v2 written by hand, for the tests of everything that reads a store.

`write_store` writes info.json + tiles/*.npy exactly as CONTRACT.md's store
v2 describes, from arrays a test made, with band_stats computed here in
float64 NumPy (so the readers are checked against an independent reference,
not against prepare's own statistics). `upgrade_v1` rewrites a store
written by the v1 prepare as v2 in place (same .npy files, new info.json),
for tests and benchmarks that still go through prepare; it leaves a v2
store alone.
"""
from __future__ import annotations

import json
import os

import numpy as np

FORMAT = "ortholoop-tiles-npy-v2"
POTSDAM_CLASSES = ("impervious_surfaces", "building", "low_vegetation", "tree", "car",
                   "clutter")
POTSDAM_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0),
                   (255, 255, 0), (255, 0, 0))
ELEVATION_BANDS = {"dsm": "DSM", "ndsm": "nDSM"}


def band_stats(arrays, valids) -> dict:
    """{"mean", "std", "min", "max"} of the valid values of 2-D arrays (float64)."""
    values = np.concatenate([np.asarray(a, np.float64)[v] for a, v in zip(arrays, valids)])
    return {"mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}


def write_store(root, tiles: dict, *, bands, dataset="test",
                class_names=POTSDAM_CLASSES, palette=POTSDAM_PALETTE,
                excluded_from_mean=()) -> dict:
    """Writes a v2 store and returns its info dict.

    Args:
      root: store folder (created).
      tiles: {name: {"image": [H,W,C] (uint8/uint16/int16/float32, the same
        dtype for all), "label": [H,W] uint8, "split": "train"|"val",
        optional "dsm"/"ndsm": [H,W] float32, optional "valid": [H,W] bool
        (False = no data: label forced to 255, left out of band_stats)}},
        tiles in split order.
      bands: optical band names, one per image channel.
    """
    os.makedirs(os.path.join(root, "tiles"), exist_ok=True)
    dtypes = {np.asarray(t["image"]).dtype for t in tiles.values()}
    if len(dtypes) != 1:
        raise ValueError(f"one optical dtype per store, got {dtypes}")
    kinds = [k for k in ("dsm", "ndsm") if all(k in t for t in tiles.values())]
    info_tiles, train = {}, []
    for name, t in tiles.items():
        image = np.asarray(t["image"])
        valid = t.get("valid", np.ones(image.shape[:2], bool))
        label = np.where(valid, t["label"], 255).astype(np.uint8)
        files = {"image": f"tiles/{name}.image.npy", "label": f"tiles/{name}.label.npy"}
        np.save(os.path.join(root, files["image"]), np.ascontiguousarray(image))
        np.save(os.path.join(root, files["label"]), label)
        for kind in kinds:
            files[kind] = f"tiles/{name}.{kind}.npy"
            np.save(os.path.join(root, files[kind]), np.asarray(t[kind], np.float32))
        info_tiles[name] = {"height": int(image.shape[0]), "width": int(image.shape[1]),
                            "split": t["split"], "files": files, "unknown_label_pixels": 0,
                            "ignore_pixels": int((label == 255).sum()),
                            "nodata_pixels": int((~valid).sum())}
        if t["split"] == "train":
            train.append((image, valid, t))
    stats = {b: band_stats([im[..., c] for im, _, _ in train], [v for _, v, _ in train])
             for c, b in enumerate(bands)}
    for kind in kinds:
        stats[ELEVATION_BANDS[kind]] = band_stats([t[kind] for _, _, t in train],
                                                  [v for _, v, _ in train])
    info = {"format": FORMAT, "dataset": dataset, "class_names": list(class_names),
            "palette": [list(c) for c in palette], "ignore_index": 255,
            "excluded_from_mean": list(excluded_from_mean), "bands": list(bands),
            "dtype": dtypes.pop().name, "elevations": kinds, "band_stats": stats,
            "splits": {s: [n for n, t in tiles.items() if t["split"] == s]
                       for s in ("train", "val")},
            "tiles": info_tiles, "source": "hand-written test store"}
    with open(os.path.join(root, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def upgrade_v1(root) -> dict:
    """Rewrites a v1 store's info.json as v2 (same .npy files); returns it.

    band_stats take mean/std from the v1 info and min/max from the train
    tiles' files. A store already in v2 is returned as it is.
    """
    path = os.path.join(root, "info.json")
    with open(path) as f:
        old = json.load(f)
    if old.get("format") == FORMAT:
        return old
    kind = old.get("elevation", "none")
    names = list(old["bands"])
    optical = names[:-1] if kind != "none" else names
    lo = np.full(len(names), np.inf)
    hi = np.full(len(names), -np.inf)
    tiles = {}
    for name, t in old["tiles"].items():
        files = {"image": t["files"]["image"], "label": t["files"]["label"]}
        if kind != "none":
            files[kind] = t["files"]["elevation"]
        label = np.load(os.path.join(root, t["files"]["label"]), mmap_mode="r")
        tiles[name] = {**t, "files": files, "ignore_pixels": int((label == 255).sum())}
        if t["split"] != "train":
            continue
        image = np.load(os.path.join(root, files["image"]), mmap_mode="r")
        arrays = [image[..., c] for c in range(len(optical))]
        if kind != "none":
            arrays.append(np.load(os.path.join(root, files[kind]), mmap_mode="r"))
        lo = np.minimum(lo, [a.min() for a in arrays])
        hi = np.maximum(hi, [a.max() for a in arrays])
    stats = {b: {"mean": old["mean"][c], "std": old["std"][c], "min": float(lo[c]),
                 "max": float(hi[c])} for c, b in enumerate(names)}
    info = {"format": FORMAT, "dataset": old["dataset"], "class_names": old["class_names"],
            "palette": old["palette"], "ignore_index": 255,
            "excluded_from_mean": ["clutter"] if old["dataset"] == "potsdam" else [],
            "bands": optical, "dtype": "uint8", "elevations": [] if kind == "none" else [kind],
            "band_stats": stats, "splits": old["splits"], "tiles": tiles,
            "source": old.get("source", "")}
    with open(path, "w") as f:
        json.dump(info, f, indent=1)
    return info


def random_tiles(sizes, *, val=(), dtype=np.uint8, bands=4, kinds=("dsm",), seed=0,
                 high=None) -> dict:
    """`write_store` input: random tiles tile0.. of `sizes` [(H, W)], in `val`
    or train, optical values in [0, high) (default: the dtype's top, 1 for
    float32), labels 0..5, heights ~ N(5, 2) for each of `kinds`."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    tiles = {}
    for i, (h, w) in enumerate(sizes):
        name = f"tile{i}"
        if dtype.kind == "f":
            image = rng.uniform(0, high or 1.0, (h, w, bands)).astype(dtype)
        else:
            top = high or int(np.iinfo(dtype).max) + 1
            image = rng.integers(0, top, (h, w, bands)).astype(dtype)
        tiles[name] = {"image": image, "label": rng.integers(0, 6, (h, w)).astype(np.uint8),
                       "split": "val" if name in val else "train"}
        for kind in kinds:
            tiles[name][kind] = rng.normal(5.0, 2.0, (h, w)).astype(np.float32)
    return tiles
