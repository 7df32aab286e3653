"""A prepared store (see `core.data.prepare`) as the tf.data pipelines read it.

`load_info` reads its info.json; `channel_plan` turns a band / elevation
request into the stored channels to feed and their statistics; `Store`
reads whole tiles of one split as tensors with `tf.io.read_file` +
`tf.io.decode_raw` from the `.npy` files (no py_function, so iterators stay
checkpointable), scales and pads them, and cuts windows. Split out of
`core.data.pipeline`, which builds the datasets on top of it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from core.data import patches as patches_lib
from core.data.tiles import parse_bands

if TYPE_CHECKING:  # the config lives with the datasets that take it
    from core.data.pipeline import PipelineConfig


def load_info(data_dir: str | os.PathLike) -> dict:
    """Reads `data_dir/info.json` (written by prepare)."""
    path = Path(data_dir) / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `python -m "
                                f"tools.prepare --dst={data_dir}` first.")
    return json.loads(path.read_text())


def channel_plan(info: dict, bands, elevation) -> dict:
    """Which stored channels to feed: optical indices, elevation kept?"""
    stored = list(info["bands"])
    has_elev = info.get("elevation", "none") != "none"
    optical = stored[:-1] if has_elev else stored
    if bands is None:
        want = optical
    else:
        want = list(parse_bands(bands))
        missing = [b for b in want if b not in optical]
        if missing:
            raise ValueError(f"bands {''.join(want)}: {missing} not in the store "
                             f"({''.join(optical)}); re-run prepare with them.")
    stored_kind = info.get("elevation", "none")
    if isinstance(elevation, str) and elevation.lower() != "none":
        if elevation.lower() != stored_kind:
            raise ValueError(f"elevation {elevation!r} requested but the store "
                             f"holds {stored_kind!r}; re-run prepare with "
                             f"--elevation={elevation.lower()}.")
        elevation = True
    if isinstance(elevation, str):  # "none"
        elevation = False
    keep_elev = has_elev and elevation is not False
    if elevation is True and not has_elev:
        raise ValueError("elevation requested but the store has none; re-run "
                         "prepare with --elevation=dsm|ndsm.")
    index = [optical.index(b) for b in want]
    names = want + ([stored[-1]] if keep_elev else [])
    channels = index + ([len(stored) - 1] if keep_elev else [])
    return {"optical_index": index, "elevation": keep_elev, "bands": names,
            "mean": [info["mean"][c] for c in channels],
            "std": [info["std"][c] for c in channels],
            "identity": index == list(range(len(optical)))}


def _npy_offset(path: Path) -> int:
    """Byte offset of the data in a C-ordered little-endian .npy file."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read = (fmt.read_array_header_1_0 if version == (1, 0)
                else fmt.read_array_header_2_0)
        _, fortran, dtype = read(f)
        if fortran or dtype.byteorder == ">":
            raise ValueError(f"{path}: expected a C-ordered little-endian "
                             "array (as written by prepare).")
        return f.tell()


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
        self.size, self.scale = cfg.patch_size, cfg.scale
        root = Path(cfg.data_dir)
        tiles = [self.info["tiles"][n] for n in self.names]
        self.hw = [(t["height"], t["width"]) for t in tiles]
        self.scaled = [patches_lib.scaled_shape(h, w, cfg.scale) for h, w in self.hw]
        self.padded = [patches_lib.padded_shape(h, w, cfg.patch_size)
                       for h, w in self.scaled]
        num_optical = len(self.info["bands"]) - (
            1 if self.info.get("elevation", "none") != "none" else 0)
        cols = {"image": [], "label": [], "elevation": []}
        for t in tiles:
            for key in cols:
                if key == "elevation" and not self.plan["elevation"]:
                    continue
                path = root / t["files"][key]
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: listed in info.json but "
                                            "missing; re-run prepare.")
                cols[key].append((str(path), _npy_offset(path)))
        self.num_optical = num_optical
        self.paths = {k: tf.constant([p for p, _ in v] or [""])
                      for k, v in cols.items()}
        self.offsets = {k: tf.constant([o for _, o in v] or [0], tf.int64)
                        for k, v in cols.items()}
        self.shapes = tf.constant(self.hw, tf.int64)

    def read(self, i):
        """Tile i -> (image uint8 [H',W',C], label uint8 [H',W'],
        elevation float32 [H',W',E]) scaled and padded; E is 0 or 1."""
        hw = self.shapes[i]

        def npy(key, dtype, shape):
            flat = tf.io.decode_raw(tf.io.read_file(self.paths[key][i]), dtype)
            start = self.offsets[key][i] // dtype.size
            return tf.reshape(flat[start:], shape)

        image = npy("image", tf.uint8, tf.concat([hw, [self.num_optical]], 0))
        if not self.plan["identity"]:
            image = tf.gather(image, self.plan["optical_index"], axis=-1)
        label = npy("label", tf.uint8, hw)
        if self.plan["elevation"]:
            elevation = npy("elevation", tf.float32, tf.concat([hw, [1]], 0))
        else:
            elevation = tf.zeros(tf.concat([hw, [0]], 0), tf.float32)
        elevation = tf.ensure_shape(elevation, [None, None, int(self.plan["elevation"])])
        image = tf.ensure_shape(image, [None, None, len(self.plan["optical_index"])])
        if self.scale != 1.0:
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
