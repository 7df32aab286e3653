"""Turns a tile archive into the training store. Where each data set's files
are is `core.data.datasets`; how pixels and labels are read is
`core.data.raster` and `core.data.labels`; this module writes the store.

Store layout (`dst/`, format v2):

    info.json                  dataset, classes, bands, dtype, elevations,
                               band_stats, splits, per-tile records
    tiles/<name>.image.npy     [H,W,C] every optical band of the source, in
                               the source dtype (uint8/uint16/int16/float32;
                               NaN/inf stored as 0, labelled ignore)
    tiles/<name>.label.npy     uint8 [H,W] class ids, 255 = ignore (declared
                               ignore values, no-data and elevation holes)
    tiles/<name>.<kind>.npy    float32 [H,W] elevation ("dsm", "ndsm"), holes
                               filled
    tiles/<name>.json          the tile's record, written last

One store, many runs: it keeps every band and every elevation kind the
archive has, and each run picks its `--bands` and `--elevation` from it
(`core.data.store.channel_plan`), so a run without elevation and a later run
with nDSM share one store. Bands keep the source dtype (12-bit imagery stays
uint16), and `band_stats` (mean, std, min, max of the train split's valid
pixels) normalise any of them in the model's first op.

Why raw `.npy` per tile: decoding TIFFs and palette colours is the expensive
part of the talk's pipeline and is done here once; the pipeline reads a
`.npy` with `tf.io.read_file` + `tf.io.decode_raw` (no py_function, so its
iterator is checkpointable), NumPy users open it with `mmap_mode="r"`.

Safe to rerun: each tile's arrays are written to temporary names and renamed,
then its record is written last with a fingerprint of the sources (path,
size, mtime) and options; a rerun skips tiles whose record matches. Nothing
is ever deleted, and nothing is written outside `dst`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from core.data import band_stats
from core.data import datasets as datasets_lib
from core.data import label_decode
from core.data import labels as labels_lib
from core.data import tiles as tiles_lib
from core.data.datasets import ELEVATION_BANDS, ELEVATION_KINDS
from core.data.raster import SOURCE_DTYPES, and_valid, finite_values, read_raster
from core.data.tiles import TileError

log = logging.getLogger(__name__)

STORE_FORMAT = "ortholoop-tiles-npy-v2"


def keeps_non_finite(info: dict) -> bool:
    """A float store (info.json) prepared before NaN/inf pixel values were
    stored as 0: its tiles may hold NaN, which spreads through the model.
    Preparing it again rewrites its tiles (`_is_done`)."""
    return str(info.get("dtype", "")).startswith("float") and not info.get("finite")


def _fingerprint(source, options: dict) -> str:
    parts = {"options": options}
    paths = {"image": source.image, "label": source.label, **source.elevations}
    for key, path in sorted(paths.items()):
        st = Path(path).stat()
        parts[key] = [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    if path.is_file() and path.read_text() == text:
        return  # a rerun leaves an up-to-date store untouched
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclasses.dataclass(frozen=True)
class _Options:
    """What every tile of one prepare run is checked against."""
    src_bands: tuple[str, ...]
    kinds: tuple[str, ...]
    spec: labels_lib.LabelSpec
    nodata: float | None
    max_unknown_fraction: float
    label_threshold: int | None


def read_optical(path: Path, src_bands: Sequence[str]):
    """The image's Raster with as many data bands as `src_bands` names: a
    band tagged alpha is data when the declared bands count it (see
    `read_raster`'s alpha_is_data); otherwise it only masks, and a warning
    says so when it holds more than two levels (an IR band, most likely)."""
    raster = read_raster(path)
    if raster.alpha is None:
        return raster
    if len(src_bands) == raster.array.shape[-1] + 1:
        return read_raster(path, alpha_is_data=True)
    levels = np.unique(raster.alpha[::7, ::7])
    if levels.size > 2:
        log.warning("%s: its last band is tagged alpha but holds %d+ levels; read as a "
                    "no-data mask. If it is data (e.g. IR), name all %d bands: "
                    "--src_bands=%s.", path, levels.size, raster.array.shape[-1] + 1,
                    "".join(src_bands) + "IR" if src_bands else "RGBIR")
    return raster


def _prepare_tile(source, out_dir: Path, opt: _Options, fingerprint: str) -> dict:
    raster = read_optical(source.image, opt.src_bands)
    image = finite_values(raster.array)  # NaN/inf: no data in raster.valid, stored as 0
    if image.dtype.name not in SOURCE_DTYPES:
        raise TileError(f"{source.image}: {image.dtype} pixels; expected one of "
                        f"{', '.join(SOURCE_DTYPES)}.")
    tiles_lib.select_bands(image, opt.src_bands, opt.src_bands, path=str(source.image))
    label = read_raster(source.label)
    mask = label.array
    if opt.label_threshold is not None:
        # JPEG-like noise in a colour mask (DeepGlobe): each channel is 0 or 255.
        mask = np.where(mask >= opt.label_threshold, np.uint8(255), np.uint8(0))
    ids, counts = label_decode.decode_label(
        mask, opt.spec, palette=label.palette, path=str(source.label), valid=label.valid,
        max_unknown_fraction=opt.max_unknown_fraction)
    arrays = [(source.image, image), (source.label, ids)]
    valid = and_valid(raster.valid, label.valid)
    elevations = {}
    for kind in opt.kinds:
        elevations[kind], elev_valid = tiles_lib.read_elevation(
            source.elevations[kind], opt.nodata)
        arrays.append((source.elevations[kind], elevations[kind]))
        tiles_lib.check_same_size(arrays)
        valid = and_valid(valid, None if elev_valid.all() else elev_valid)
    tiles_lib.check_same_size(arrays)
    tiles_lib.check_same_grid([path for path, _ in arrays])
    nodata = 0 if valid is None else int(valid.size - np.count_nonzero(valid))
    if nodata:
        ids = np.where(valid, ids, np.uint8(labels_lib.IGNORE_INDEX))
        log.warning("%s: %d pixels without data (nodata value, mask, alpha, NaN/inf "
                    "or elevation hole) -> ignore.", source.image, nodata)
    if counts["unknown"]:
        log.warning("%s: %d label pixels with values outside the classes of %s "
                    "-> ignore (%d).", source.label, counts["unknown"],
                    opt.spec.name, labels_lib.IGNORE_INDEX)
    files = {"image": f"{source.name}.image.npy", "label": f"{source.name}.label.npy"}
    stats = band_stats.tile_sums(image, valid)
    for kind, elev in elevations.items():
        files[kind] = f"{source.name}.{kind}.npy"
        stats += band_stats.tile_sums(elev, valid)
        _save_npy(out_dir / files[kind], elev)
    _save_npy(out_dir / files["image"], image)
    _save_npy(out_dir / files["label"], ids)
    class_pixels = np.bincount(ids.ravel(), minlength=256)[:opt.spec.num_classes]
    return {"name": source.name, "height": int(image.shape[0]),
            "width": int(image.shape[1]), "dtype": image.dtype.name,
            "num_bands": int(image.shape[-1]), "fingerprint": fingerprint,
            "finite": True,  # NaN/inf pixel values stored as 0 (`keeps_non_finite`)
            "unknown_label_pixels": int(counts["unknown"]),
            "ignore_pixels": int(counts["ignore"]), "nodata_pixels": nodata,
            "class_pixels": [int(c) for c in class_pixels],
            "sources": {k: str(v) for k, v in
                        {"image": source.image, "label": source.label,
                         **source.elevations}.items()},
            "files": files, "stats": stats,
            "shapes": {"image": list(image.shape), "label": list(ids.shape),
                       **{k: list(e.shape) for k, e in elevations.items()}}}


def _is_done(out_dir: Path, name: str, fingerprint: str):
    """The tile's record if its outputs are complete and match, else None."""
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record.get("fingerprint") != fingerprint:
            return None
        if keeps_non_finite(record):
            return None  # written before NaN/inf were stored as 0: prepare it again
        for key, fname in record["files"].items():
            # mmap opens only the header; a short (truncated) file fails here.
            array = np.load(out_dir / fname, mmap_mode="r")
            if list(array.shape) != record["shapes"][key]:
                return None
    except (OSError, ValueError, KeyError):
        return None
    return record


def _elevation_kinds(sources, requested: str) -> tuple[str, ...]:
    """Kinds every tile has; a requested kind missing for a tile is an error."""
    kinds = []
    for kind in ELEVATION_KINDS:
        missing = [s for s in sources if kind not in s.elevations]
        if kind == requested and missing:
            raise TileError(f"No {kind} for {missing[0].image}: --elevation={kind} "
                            f"needs one for every tile ({len(missing)} missing).")
        if not missing:
            kinds.append(kind)
        elif len(missing) < len(sources):
            log.warning("%s found for %d of %d tiles only; not stored (%s has none).",
                        kind, len(sources) - len(missing), len(sources), missing[0].image)
    return tuple(kinds)


def _splits(sources, src: Path, dataset: str, val_tiles: Sequence[str],
            val_fraction: float, seed: int) -> dict[str, str]:
    """Tile name -> "train" | "val": the data set's split plus the user's."""
    names = [s.name for s in sources]
    wanted = set()
    for t in val_tiles:
        t = str(t)
        cand = [n for n in names if n == t or n == f"top_potsdam_{t}"]
        if not cand:
            raise ValueError(f"--val_tiles: no tile {t!r} in {src} (tiles: "
                             f"{', '.join(names[:8])}{'...' if len(names) > 8 else ''}).")
        wanted.update(cand)
    if dataset == "folder" and not val_tiles and val_fraction > 0:
        rng = np.random.default_rng(seed)
        k = max(1, int(round(val_fraction * len(names))))
        wanted.update(rng.choice(sorted(names), size=k, replace=False).tolist())
    split = {s.name: "val" if (s.split != "train" or s.name in wanted) else "train"
             for s in sources}
    if "train" not in split.values():
        raise ValueError(f"{src}: every tile is in the val split; no train "
                         "tiles left to compute statistics on.")
    return split


def _check_consistent(records: dict, sources) -> None:
    first = sources[0]
    ref = records[first.name]
    for s in sources[1:]:
        r = records[s.name]
        if (r["dtype"], r["num_bands"]) != (ref["dtype"], ref["num_bands"]):
            raise TileError(f"{s.image}: {r['num_bands']} bands of {r['dtype']}, but "
                            f"{first.image} has {ref['num_bands']} of {ref['dtype']}; "
                            "every tile of a store must have the same bands and dtype.")


def prepare(dataset: str, src: str | os.PathLike, dst: str | os.PathLike, *,
            bands: str | None = None, elevation: str | None = None,
            val_tiles: Sequence[str] = (), eroded: bool | str = False,
            src_bands: str | None = None,
            classes: labels_lib.LabelSpec | None = None,
            val_fraction: float = 0.0, nodata: float | None = None,
            max_unknown_fraction: float = 0.01, seed: int = 0) -> dict:
    """Builds (or completes) the training store of one archive.

    Args:
      dataset: a `core.data.datasets` name ("potsdam", "vaihingen", "inria",
        "loveda", "deepglobe", "openearthmap", "folder").
      src: archive root (never modified).
      dst: store folder (created).
      bands: optical bands a run will feed, checked here against the source
        (every band is stored whatever this says).
      elevation: "dsm" | "ndsm": fail unless every tile has it; None or
        "none": store the kinds every tile has, require none.
      val_tiles: tiles (names or Potsdam ids like "2_10") moved from train to
        val, on top of the data set's split.
      eroded: Potsdam/Vaihingen eroded labels: True, False or "val".
      src_bands: band names of the source images (default: the data set's,
        or RGB for 3 bands, RGBIR for 4).
      classes: the classes and their encoding (a user's class file, see
        `core.data.classes`); default: the data set's.
      val_fraction: folder without val_tiles: share of tiles (drawn with
        `seed`) put in val.
      nodata: elevation nodata value (default: the file's GDAL tag; NaN always).
      max_unknown_fraction: share of a label's pixels whose value matches no
        class that is tolerated (-> ignore, with a warning); above it prepare
        stops naming the values.

    Returns:
      The info dict also written to dst/info.json (see the module docstring
      and `core.data.store`).

    Raises:
      TileError / ValueError: one message naming the file or option.
    """
    dataset = str(dataset).lower()
    record = datasets_lib.get_dataset(dataset)
    elevation = "none" if elevation is None else str(elevation).lower()
    if elevation not in ("none",) + ELEVATION_KINDS:
        raise ValueError(f"elevation must be none, dsm or ndsm, got {elevation!r}.")
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise TileError(f"{src}: source folder not found.")
    if dst.resolve() == src.resolve():
        raise ValueError(f"dst {dst} is the source folder; choose another.")
    spec = datasets_lib.label_spec(record, classes)
    sources = datasets_lib.find_sources(record, src, eroded=eroded, classes=spec)
    kinds = _elevation_kinds(sources, elevation)
    if src_bands is None:
        src_bands = record.bands
    if src_bands is None:
        n = read_raster(sources[0].image).array.shape[-1]
        src_bands = {3: "RGB", 4: "RGBIR"}.get(n)
        if src_bands is None:
            raise TileError(f"{sources[0].image}: {n} bands; pass --src_bands to "
                            "name them (e.g. 'IRRG').")
    src_names = tiles_lib.parse_bands(src_bands)
    if bands is not None:
        tiles_lib.band_indices(src_names, bands)  # fails early on bad names
    split = _splits(sources, src, dataset, val_tiles, val_fraction, seed)

    out_dir = dst / "tiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = _Options(src_names, kinds, spec, nodata, float(max_unknown_fraction),
                   record.label_threshold)
    options = {"format": STORE_FORMAT, "src_bands": list(src_names), "kinds": list(kinds),
               "spec": repr(spec), "nodata": nodata,
               "label_threshold": record.label_threshold,
               "max_unknown_fraction": opt.max_unknown_fraction}
    records = {}
    for i, source in enumerate(sources):
        fp = _fingerprint(source, options)
        rec = _is_done(out_dir, source.name, fp)
        if rec is None:
            log.info("[%d/%d] preparing %s", i + 1, len(sources), source.name)
            rec = _prepare_tile(source, out_dir, opt, fp)
            _write_json(out_dir / f"{source.name}.json", rec)
        else:
            log.info("[%d/%d] %s already prepared, skipped", i + 1, len(sources),
                     source.name)
        records[source.name] = rec
    _check_consistent(records, sources)
    info = _info(dataset, src, sources, records, split, spec, src_names, kinds)
    _write_json(dst / "info.json", info)
    return info


def _info(dataset, src, sources, records, split, spec, src_names, kinds) -> dict:
    train = [s.name for s in sources if split[s.name] == "train"]
    labelled = sum(sum(records[n]["class_pixels"]) for n in train)
    if not labelled:
        raise ValueError(f"{src}: the train split ({len(train)} tiles) has no "
                         "labelled pixel; check the label files and --classes.")
    names = list(src_names) + [ELEVATION_BANDS[k] for k in kinds]
    stats = band_stats.combine([records[n]["stats"] for n in train])
    constant = [n for n, s in zip(names, stats) if s["std"] == 0.0]
    if constant:
        raise ValueError(f"{src}: band {constant[0]} is constant "
                         f"({stats[names.index(constant[0])]['mean']:g}) over the "
                         f"train split; drop it (--src_bands names the bands) or "
                         "check the files.")
    dtype = records[sources[0].name]["dtype"]
    return {
        "format": STORE_FORMAT, "dataset": dataset,
        # Float stores only: an integer store's info.json stays as earlier
        # releases wrote it (runs record it, and resume only on the same one).
        **({"finite": True} if dtype.startswith("float") else {}),
        "class_names": list(spec.class_names),
        "palette": [list(c) for c in spec.palette],
        "ignore_index": labels_lib.IGNORE_INDEX,
        "excluded_from_mean": list(spec.excluded_from_mean),
        "bands": list(src_names), "dtype": dtype,
        "elevations": list(kinds),
        "band_stats": {n: s for n, s in zip(names, stats)},
        "splits": {"train": train,
                   "val": [s.name for s in sources if split[s.name] == "val"]},
        "tiles": {s.name: {"height": r["height"], "width": r["width"],
                           "split": split[s.name],
                           "files": {k: f"tiles/{v}" for k, v in r["files"].items()},
                           "class_pixels": r["class_pixels"],
                           "unknown_label_pixels": r["unknown_label_pixels"],
                           "ignore_pixels": r["ignore_pixels"],
                           "nodata_pixels": r["nodata_pixels"]}
                  for s in sources for r in [records[s.name]]},
        "source": str(src.resolve()),
    }
