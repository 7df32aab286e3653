"""A prepared store v2 (see `core.data.prepare`) as the tf.data pipelines read it.

`load_info` reads its info.json (format "ortholoop-tiles-npy-v2"; a v1 store
is refused: re-run prepare); `channel_plan` turns a band / elevation request
into the stored channels to feed, their statistics and the optical dtype;
`Store` reads whole tiles of one split as tensors with `tf.io.read_file` +
`tf.io.decode_raw` from the `.npy` files (no py_function, so iterators stay
checkpointable), scales and pads them, and cuts windows.

Optical bands stay in the store's dtype (uint8, uint16, int16 or float32)
until the batch is built, so a decoded or cached tile costs what it costs
on disk; elevation is float32 metres in its own file per kind
(`tiles/<name>.dsm.npy`, `tiles/<name>.ndsm.npy`).
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import tensorflow as tf

from core.data import patches as patches_lib
from core.data.datasets import ELEVATION_BANDS
from core.data.prepare import STORE_FORMAT, keeps_non_finite
from core.data.raster import SOURCE_DTYPES
from core.data.tiles import BAND_TOKENS

if TYPE_CHECKING:  # the config lives with the datasets that take it
    from core.data.pipeline import PipelineConfig


def load_info(data_dir: str | os.PathLike) -> dict:
    """Reads and checks `data_dir/info.json` (store v2, written by prepare).

    Raises:
      FileNotFoundError: no info.json.
      ValueError: another format (a v1 store), or an optical dtype the
        reader does not know; one line naming the file.
    """
    path = Path(data_dir) / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `python -m "
                                f"tools.prepare --data_dir={data_dir}` first.")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is damaged (cannot be read: {err}); run `python -m "
                         f"tools.prepare` into a new --data_dir") from None
    found = info.get("format")
    if found != STORE_FORMAT:
        raise ValueError(f"{path}: store format {found!r}, this version reads "
                         f"{STORE_FORMAT!r}; re-run `python -m tools.prepare` "
                         f"into a new --data_dir.")
    if info.get("dtype") not in SOURCE_DTYPES:
        raise ValueError(f"{path}: optical dtype {info.get('dtype')!r}, expected "
                         f"one of {', '.join(SOURCE_DTYPES)}.")
    if keeps_non_finite(info):
        logging.getLogger(__name__).warning(
            "%s: a float store prepared by an earlier release, which kept NaN/inf pixel "
            "values (they spread through the model); run tools.prepare on it again, "
            "which rewrites its tiles with 0 there", path)
    return info


def _split_names(request: str | Sequence[str], stored: Sequence[str]) -> list[str]:
    """"IRRG", "B04,B03,B02" or a list -> stored band names (case-insensitive).

    A string without commas is read as stored names (or the usual IR, R, G,
    B) written one after the other, longest first ("IRRG" -> IR, R, G).
    Unknown names are kept as written so the caller can report them.
    """
    by_upper = {s.upper(): s for s in stored}
    if not isinstance(request, str):
        items = [str(b) for b in request]
    elif "," in request:
        items = [b.strip() for b in request.split(",") if b.strip()]
    else:
        tokens = sorted(set(by_upper) | set(BAND_TOKENS), key=len, reverse=True)
        text = request.strip().upper()
        pattern = "|".join(re.escape(t) for t in tokens)
        if text and tokens and re.fullmatch(f"(?:{pattern})+", text):
            items = re.findall(pattern, text)
        else:
            items = [request.strip()]
    return [by_upper.get(b.upper(), b) for b in items]


def _elevation_kind(info: dict, elevation) -> str | None:
    """The stored elevation kind to feed (see `channel_plan`), or None."""
    stored = list(info.get("elevations", []))
    if elevation is False or (isinstance(elevation, str) and elevation.lower() == "none"):
        return None
    if elevation is None or elevation is True:
        if not stored:
            if elevation is True:
                raise ValueError("elevation requested but the store has none; re-run "
                                 "prepare on an archive with DSM/nDSM rasters.")
            return None
        return "ndsm" if "ndsm" in stored else stored[0]
    kind = str(elevation).lower()
    if kind not in ELEVATION_BANDS:
        raise ValueError(f"elevation {elevation!r}: expected none, dsm or ndsm.")
    if kind not in stored:
        raise ValueError(f"elevation {kind!r} requested but the store holds "
                         f"{stored or 'none'}; choose one of those or re-run prepare "
                         f"on an archive with {ELEVATION_BANDS[kind]} rasters.")
    return kind


def channel_plan(info: dict, bands, elevation) -> dict:
    """Which stored channels to feed, and what the model needs to know of them.

    Args:
      info: a v2 info.json (`load_info`).
      bands: optical bands in feeding order: None = every stored optical band
        in stored order; "IRRG", "B04,B03,B02" or a list of names (a subset,
        any order, of the store's `bands`).
      elevation: None = the store's only elevation kind, "ndsm" when it has
        both, none when it has none; "none"/False drops it; "dsm"/"ndsm" must
        be stored; True = the default kind, which must exist.

    Returns:
      dict with
        optical_index: [int] indices into the stored optical bands;
        identity: the stored optical bands as they are;
        elevation: "dsm" | "ndsm" | None, the fed kind (its file key);
        bands: fed channel names, optical then "DSM"/"nDSM";
        mean, std: [float] per fed channel (band_stats, train split);
        band_ranges: {fed name: [min, max]} (band_stats, train split);
        dtype: numpy dtype name of the optical bands;
        intensity_ranges: [[lo, hi]] per fed channel, the raw values of zero
          and full intensity that photometric augmentation works in: [0, 255]
          for uint8 bands, [min(0, train min), train max] otherwise (so the
          full scale hi - lo of a 12-bit band in uint16 is its train max);
          elevation channels get their train range (augmentation leaves
          them alone).

    Raises:
      ValueError: a band or elevation kind the store does not hold (one line).
    """
    stored = list(info["bands"])
    if bands is None:
        want = stored
    else:
        want = _split_names(bands, stored)
        missing = [b for b in want if b not in stored]
        if missing or not want or len(set(want)) != len(want):
            text = bands if isinstance(bands, str) else ",".join(map(str, bands))
            raise ValueError(f"bands {text}: {missing or 'empty or repeated'} not in "
                             f"the store ({','.join(stored)}); choose among those.")
    kind = _elevation_kind(info, elevation)
    names = want + ([ELEVATION_BANDS[kind]] if kind else [])
    stats = info["band_stats"]
    absent = [n for n in names if n not in stats]
    if absent:
        raise ValueError(f"info.json has no band_stats for {absent}; re-run prepare.")
    dtype = str(info["dtype"])
    index = [stored.index(b) for b in want]
    def intensity(name):
        if dtype == "uint8" and name in want:
            return [0.0, 255.0]
        lo, hi = min(0.0, float(stats[name]["min"])), float(stats[name]["max"])
        return [lo, hi if hi > lo else lo + 1.0]  # a constant band: any scale

    return {"optical_index": index, "identity": index == list(range(len(stored))),
            "elevation": kind, "bands": names, "dtype": dtype,
            "mean": [float(stats[n]["mean"]) for n in names],
            "std": [float(stats[n]["std"]) for n in names],
            "band_ranges": {n: [float(stats[n]["min"]), float(stats[n]["max"])]
                            for n in names},
            "intensity_ranges": [intensity(n) for n in names]}


def _npy_offset(path: Path, dtype: np.dtype) -> int:
    """Byte offset of the data in a C-ordered little-endian .npy of `dtype`."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read = (fmt.read_array_header_1_0 if version == (1, 0)
                else fmt.read_array_header_2_0)
        _, fortran, found = read(f)
        if fortran or found.byteorder == ">":
            raise ValueError(f"{path}: expected a C-ordered little-endian "
                             "array (as written by prepare).")
        if found != dtype:
            raise ValueError(f"{path}: holds {found}, info.json says {dtype}; "
                             "re-run prepare.")
        offset = f.tell()
    if offset % dtype.itemsize:  # decode_raw reads whole elements from byte 0
        raise ValueError(f"{path}: header of {offset} bytes is not a multiple "
                         f"of {dtype.itemsize}; re-run prepare.")
    return offset


class Store:
    """Tile tables of one split as TensorFlow constants."""

    def __init__(self, cfg: "PipelineConfig", split: str):
        self.info = load_info(cfg.data_dir)
        if split not in self.info["splits"]:
            raise ValueError(f"split {split!r} not in {cfg.data_dir}/info.json "
                             f"(have {sorted(self.info['splits'])}).")
        self.names = list(self.info["splits"][split])
        if not self.names:
            raise ValueError(f"{cfg.data_dir}: split {split!r} has no tiles.")
        self.plan = channel_plan(self.info, cfg.bands, cfg.elevation)
        self.dtype = tf.as_dtype(self.plan["dtype"])
        self.size, self.scale = cfg.patch_size, cfg.scale
        root = Path(cfg.data_dir)
        tiles = [self.info["tiles"][n] for n in self.names]
        self.hw = [(t["height"], t["width"]) for t in tiles]
        self.scaled = [patches_lib.scaled_shape(h, w, cfg.scale) for h, w in self.hw]
        self.padded = [patches_lib.padded_shape(h, w, cfg.patch_size)
                       for h, w in self.scaled]
        self.num_optical = len(self.info["bands"])
        kind = self.plan["elevation"]
        keys = {"image": np.dtype(self.plan["dtype"]), "label": np.dtype(np.uint8)}
        if kind:
            keys[kind] = np.dtype(np.float32)
        cols = {k: [] for k in keys}
        for name, t in zip(self.names, tiles):
            for key, dtype in keys.items():
                if key not in t["files"]:
                    raise ValueError(f"{cfg.data_dir}/info.json: tile {name} has no "
                                     f"{key!r} file; re-run prepare.")
                path = root / t["files"][key]
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: listed in info.json but "
                                            "missing; re-run prepare.")
                cols[key].append((str(path), _npy_offset(path, dtype)))
        self.paths = {k: tf.constant([p for p, _ in v]) for k, v in cols.items()}
        self.offsets = {k: tf.constant([o for _, o in v], tf.int64)
                        for k, v in cols.items()}
        self.shapes = tf.constant(self.hw, tf.int64)

    def read(self, i):
        """Tile i -> (image [H',W',C] in the store's dtype (float32 when
        scaled and not uint8), label uint8 [H',W'], elevation float32
        [H',W',E]) scaled and padded; E is 0 or 1."""
        hw = self.shapes[i]

        def npy(key, dtype, shape):
            flat = tf.io.decode_raw(tf.io.read_file(self.paths[key][i]), dtype)
            start = self.offsets[key][i] // dtype.size
            return tf.reshape(flat[start:], shape)

        image = npy("image", self.dtype, tf.concat([hw, [self.num_optical]], 0))
        if not self.plan["identity"]:
            image = tf.gather(image, self.plan["optical_index"], axis=-1)
        label = npy("label", tf.uint8, hw)
        kind = self.plan["elevation"]
        if kind:
            elevation = npy(kind, tf.float32, tf.concat([hw, [1]], 0))
        else:
            elevation = tf.zeros(tf.concat([hw, [0]], 0), tf.float32)
        elevation = tf.ensure_shape(elevation, [None, None, 1 if kind else 0])
        image = tf.ensure_shape(image, [None, None, len(self.plan["optical_index"])])
        if self.scale != 1.0:
            if self.dtype != tf.uint8:
                # Area averages of 16-bit or float bands stay exact in float32
                # (resize_tile would truncate them back to integers).
                image = tf.cast(image, tf.float32)
            new_hw = tf.cast(tf.maximum(tf.round(tf.cast(hw, tf.float64)
                                                 * self.scale), 1), tf.int32)
            image, label, elevation = patches_lib.resize_tile(
                image, label, new_hw, elevation)
        image, label, elevation = patches_lib.pad_to_window(
            image, label, self.size, elevation)
        return image, label, elevation

    def grid(self, stride: int | None) -> tf.RaggedTensor:
        """Ragged [num_tiles, None, 2] grid corners per tile."""
        corners = [patches_lib.grid_windows(h, w, self.size, stride)
                   for h, w in self.scaled]
        return tf.RaggedTensor.from_row_lengths(
            tf.constant(np.concatenate(corners), tf.int32),
            [len(c) for c in corners])

    def cut(self, tile, corners) -> tf.data.Dataset:
        """Windows of one tile at `corners` [N,2] -> (image, label, elevation)."""
        image, label, elevation = tile
        s = self.size
        return tf.data.Dataset.from_tensor_slices(corners).map(
            lambda c: (patches_lib.cut_window(image, c, s),
                       patches_lib.cut_window(label, c, s),
                       patches_lib.cut_window(elevation, c, s)))
