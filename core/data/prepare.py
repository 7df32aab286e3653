"""Turns a tile archive (Potsdam, INRIA, any images/+masks/ folder) into a store.

Which files make up a tile in each archive layout is `core.data.archives`;
this module decodes them once and writes the store.

Store layout (`dst/`):

    info.json                      dataset, classes, palette, bands, mean/std,
                                   splits, per-tile sizes (see `prepare`)
    tiles/<name>.image.npy         uint8 [H,W,C]  optical bands, chosen order
    tiles/<name>.elevation.npy     float32 [H,W]  DSM/nDSM, holes filled
    tiles/<name>.label.npy         uint8 [H,W]    class ids, 255 = ignore
    tiles/<name>.json              the tile's record, written last

Why raw `.npy` per tile: decoding TIFFs and palette colours is the expensive
part of the talk's pipeline and is done here once. A `.npy` is an aligned
header plus the raw array, so the training pipeline reads it with
`tf.io.read_file` + `tf.io.decode_raw` (no Python in the hot path, so the
`tf.data` iterator stays checkpointable), and NumPy users (evaluation,
prediction) open it with `np.load(mmap_mode="r")` and touch only the windows
they read. Optical bands stay uint8 and heights float32 in separate files,
so a cached tile costs 1 byte per optical band, not 4. Memory is bounded
because the pipeline holds only the few tiles it is cutting at a time.

Safe to rerun: each tile's outputs are written to temporary names and
renamed, then its record `<name>.json` is written last with a fingerprint of
the sources (path, size, mtime) and options; a rerun skips tiles whose record
matches and whose files exist with the right size. Nothing is ever deleted,
and nothing is written outside `dst`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from core.data import archives
from core.data import labels as labels_lib
from core.data import tiles as tiles_lib
# Defined here before per-archive discovery moved to core.data.archives.
from core.data.archives import (  # noqa: F401  pylint: disable=unused-import
    INRIA_VAL_NUMBERS, POTSDAM_BANDS, POTSDAM_VAL_IDS)
from core.data.tiles import TileError

log = logging.getLogger(__name__)

STORE_FORMAT = "ortholoop-tiles-npy-v1"

ELEVATION_KINDS = ("none", "dsm", "ndsm")
ELEVATION_BAND = {"dsm": "DSM", "ndsm": "nDSM"}


def _fingerprint(source: archives.Source, options: dict) -> str:
    parts = {"options": options}
    for key in ("image", "label", "elevation"):
        path = getattr(source, key)
        if path is not None:
            st = path.stat()
            parts[key] = [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
    os.replace(tmp, path)


def _decode_label(mask: np.ndarray, spec: labels_lib.LabelSpec, path: Path):
    """-> (ids [H,W] uint8, pixels with an unexpected value)."""
    if mask.dtype != np.uint8:
        raise TileError(f"{path}: label must be 8-bit, got {mask.dtype}.")
    if mask.shape[-1] == 3:
        ids, unknown = labels_lib.rgb_to_index(mask, spec.palette)
        # Black is the eroded ground truth's boundary: expected, not unknown.
        black = int(np.count_nonzero((mask == 0).all(axis=-1)))
        return ids, unknown - black
    if mask.shape[-1] != 1:
        raise TileError(f"{path}: expected an RGB (3-band) or single-band "
                        f"label, got {mask.shape[-1]} bands.")
    if spec.name == "inria":
        return labels_lib.binary_mask_to_index(mask[..., 0])
    return labels_lib.check_index_mask(mask[..., 0], spec.num_classes)


def _band_stats_uint8(image: np.ndarray) -> dict:
    values = np.arange(256, dtype=np.float64)
    sums, sumsq, counts = [], [], []
    for c in range(image.shape[-1]):
        hist = np.bincount(image[..., c].ravel(), minlength=256).astype(np.float64)
        sums.append(float(hist @ values))
        sumsq.append(float(hist @ (values * values)))
        counts.append(float(hist.sum()))
    return {"sum": sums, "sumsq": sumsq, "count": counts}


def _elevation_stats(elevation: np.ndarray, valid: np.ndarray) -> dict:
    s = ss = 0.0
    for rows in range(0, elevation.shape[0], 512):  # bounded float64 temps
        v = elevation[rows:rows + 512][valid[rows:rows + 512]].astype(np.float64)
        s += float(v.sum())
        ss += float((v * v).sum())
    return {"sum": [s], "sumsq": [ss], "count": [float(valid.sum())]}


def _prepare_tile(source: archives.Source, out_dir: Path, *, src_bands, bands,
                  elevation: str, spec, nodata, fingerprint: str) -> dict:
    image = tiles_lib.read_image(source.image)
    if image.dtype != np.uint8:
        raise TileError(f"{source.image}: optical bands must be 8-bit, got "
                        f"{image.dtype}.")
    image = tiles_lib.select_bands(image, src_bands, bands, path=str(source.image))
    mask = tiles_lib.read_image(source.label)
    arrays = [(source.image, image), (source.label, mask)]
    ids, unknown = _decode_label(mask, spec, source.label)
    del mask
    record = {"name": source.name, "height": int(image.shape[0]),
              "width": int(image.shape[1]), "fingerprint": fingerprint,
              "unknown_label_pixels": int(unknown), "nodata_pixels": 0,
              "sources": {k: str(getattr(source, k)) for k in
                          ("image", "label", "elevation") if getattr(source, k)}}
    stats = _band_stats_uint8(image)
    files = {"image": f"{source.name}.image.npy",
             "label": f"{source.name}.label.npy"}
    if elevation != "none":
        elev, valid = tiles_lib.read_elevation(source.elevation, nodata)
        arrays.append((source.elevation, elev))
        tiles_lib.check_same_size(arrays)
        ids = np.where(valid, ids, np.uint8(labels_lib.IGNORE_INDEX))
        record["nodata_pixels"] = int(valid.size - np.count_nonzero(valid))
        es = _elevation_stats(elev, valid)
        for k in stats:
            stats[k] += es[k]
        files["elevation"] = f"{source.name}.elevation.npy"
        _save_npy(out_dir / files["elevation"], elev)
    tiles_lib.check_same_size(arrays)
    if unknown:
        log.warning("%s: %d label pixels with values outside the %s palette "
                    "-> ignore (%d).", source.label, unknown, spec.name,
                    labels_lib.IGNORE_INDEX)
    if record["nodata_pixels"]:
        log.warning("%s: %d elevation pixels without data -> filled, labelled "
                    "ignore.", source.elevation, record["nodata_pixels"])
    _save_npy(out_dir / files["image"], image)
    _save_npy(out_dir / files["label"], ids)
    record["files"] = files
    record["shapes"] = {"image": list(image.shape), "label": list(ids.shape)}
    if elevation != "none":
        record["shapes"]["elevation"] = list(ids.shape)
    record["stats"] = stats
    return record


def _is_done(out_dir: Path, name: str, fingerprint: str):
    """The tile's record if its outputs are complete and match, else None."""
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record.get("fingerprint") != fingerprint:
            return None
        for key, fname in record["files"].items():
            # mmap opens only the header; a short (truncated) file fails here.
            array = np.load(out_dir / fname, mmap_mode="r")
            if list(array.shape) != record["shapes"][key]:
                return None
    except (OSError, ValueError, KeyError):
        return None
    return record


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    if path.is_file() and path.read_text() == text:
        return  # a rerun leaves an up-to-date store untouched
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prepare(dataset: str, src: str | os.PathLike, dst: str | os.PathLike, *,
            bands: str | None = None, elevation: str | None = "none",
            val_tiles: Sequence[str] = (), eroded: bool | str = False,
            src_bands: str | None = None, label_spec: str | None = None,
            val_fraction: float = 0.0, nodata: float | None = None,
            seed: int = 0) -> dict:
    """Builds (or completes) the training store of one dataset.

    Args:
      dataset: "potsdam" | "inria" | "folder".
      src: archive root (never modified).
      dst: store folder (created).
      bands: optical bands to keep, in order, e.g. "IRRGB"; default: all
        source bands in source order.
      elevation: "none" | "dsm" | "ndsm" (Potsdam 1_DSM / 1_DSM_normalisation;
        folder: src/elevation/<stem>.tif), stored as the last channel.
      val_tiles: tiles (names or Potsdam ids like "2_10") moved from train to
        val, on top of the dataset's standard split.
      eroded: Potsdam labels from 5_Labels_all_noBoundary: True for all
        tiles, "val" for the val split only, False never.
      src_bands: band names of the source images (folder datasets; default
        RGB for 3 bands, RGBIR for 4).
      label_spec: class names/palette, "potsdam" or "inria" (folder default
        "potsdam"); single-band masks hold ids (0/255 for "inria").
      val_fraction: folder datasets without val_tiles: share of tiles (chosen
        with `seed`) put in val.
      nodata: elevation nodata value (default: the file's GDAL tag; NaN always).

    Returns:
      The info dict also written to dst/info.json: format, dataset,
      class_names, palette, ignore_index, bands (channel order, elevation
      last), elevation, in_channels, mean, std (per band, train split,
      elevation over valid pixels), splits {"train": [...], "val": [...]},
      tiles {name: {height, width, split, files, ...}}.
    """
    dataset = str(dataset).lower()
    if dataset not in ("potsdam", "inria", "folder"):
        raise ValueError(f"dataset must be potsdam, inria or folder, got "
                         f"{dataset!r}.")
    elevation = "none" if elevation is None else str(elevation).lower()
    if elevation not in ELEVATION_KINDS:
        raise ValueError(f"elevation must be one of {ELEVATION_KINDS}, got "
                         f"{elevation!r}.")
    if eroded not in (True, False, "val"):
        raise ValueError(f"eroded must be True, False or 'val', got {eroded!r}.")
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise TileError(f"{src}: source folder not found.")
    if dst.resolve() == src.resolve():
        raise ValueError(f"dst {dst} is the source folder; choose another.")
    if dataset == "inria" and elevation != "none":
        raise ValueError("INRIA has no elevation; use elevation='none'.")

    sources, default_bands, spec = archives.find_sources(
        dataset, src, elevation, eroded, label_spec)
    if src_bands is None:
        src_bands = default_bands
    if src_bands is None:
        n = tiles_lib.read_image(sources[0].image).shape[-1]
        src_bands = {3: "RGB", 4: "RGBIR"}.get(n)
        if src_bands is None:
            raise TileError(f"{sources[0].image}: {n} bands; pass src_bands "
                            "to name them (e.g. 'IRRG').")
    src_names = tiles_lib.parse_bands(src_bands)
    band_names = tiles_lib.parse_bands(bands if bands is not None else src_names)
    tiles_lib.band_indices(src_names, band_names)  # fails early on bad names

    # Splits: the dataset's standard split plus tiles held out by the user.
    names = [s.name for s in sources]
    wanted = set()
    for t in val_tiles:
        t = str(t)
        cand = [n for n in names if n == t or n == f"top_potsdam_{t}"]
        if not cand:
            raise ValueError(f"val_tiles: no tile {t!r} in {src} (tiles: "
                             f"{', '.join(names[:8])}{'...' if len(names) > 8 else ''}).")
        wanted.update(cand)
    if dataset == "folder" and not val_tiles and val_fraction > 0:
        rng = np.random.default_rng(seed)
        k = max(1, int(round(val_fraction * len(names))))
        wanted.update(rng.choice(sorted(names), size=k, replace=False).tolist())
    for s in sources:
        s.val = s.val or s.name in wanted
    if all(s.val for s in sources):
        raise ValueError(f"{src}: every tile is in the val split; no train "
                         "tiles left to compute statistics on.")

    out_dir = dst / "tiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"format": STORE_FORMAT, "bands": list(band_names),
               "src_bands": list(src_names), "elevation": elevation,
               "spec": spec.name, "nodata": nodata}
    records = {}
    for i, source in enumerate(sources):
        fp = _fingerprint(source, options)
        record = _is_done(out_dir, source.name, fp)
        if record is None:
            log.info("[%d/%d] preparing %s", i + 1, len(sources), source.name)
            record = _prepare_tile(source, out_dir, src_bands=src_names,
                                   bands=band_names, elevation=elevation,
                                   spec=spec, nodata=nodata, fingerprint=fp)
            _write_json(out_dir / f"{source.name}.json", record)
        else:
            log.info("[%d/%d] %s already prepared, skipped", i + 1,
                     len(sources), source.name)
        records[source.name] = record

    all_bands = list(band_names) + ([ELEVATION_BAND[elevation]]
                                    if elevation != "none" else [])
    train = [s.name for s in sources if not s.val]
    total = {k: np.zeros(len(all_bands)) for k in ("sum", "sumsq", "count")}
    for name in train:
        for k in total:
            total[k] += np.asarray(records[name]["stats"][k])
    mean = total["sum"] / np.maximum(total["count"], 1)
    std = np.sqrt(np.maximum(total["sumsq"] / np.maximum(total["count"], 1)
                             - mean * mean, 0.0))
    info = {
        "format": STORE_FORMAT, "dataset": dataset,
        "class_names": list(spec.class_names),
        "palette": [list(c) for c in spec.palette],
        "ignore_index": labels_lib.IGNORE_INDEX,
        "bands": all_bands, "elevation": elevation,
        "in_channels": len(all_bands),
        "mean": [float(m) for m in mean], "std": [float(s) for s in std],
        "splits": {"train": train, "val": [s.name for s in sources if s.val]},
        "tiles": {name: {"height": r["height"], "width": r["width"],
                         "split": "val" if s.val else "train",
                         "files": {k: f"tiles/{v}" for k, v in r["files"].items()},
                         "unknown_label_pixels": r["unknown_label_pixels"],
                         "nodata_pixels": r["nodata_pixels"]}
                  for s in sources for name, r in [(s.name, records[s.name])]},
        "source": str(src.resolve()),
    }
    _write_json(dst / "info.json", info)
    return info
