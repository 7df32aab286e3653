"""Where each dataset's tiles are: the archive layouts `prepare` reads.

`find_sources` lists the tiles of a source folder as `Source` records (image,
label and elevation paths, standard split) for the three layouts the
toolkit knows:

- ISPRS Potsdam: the official file names (top_potsdam_A_B_RGBIR.tif,
  _label.tif or _label_noBoundary.tif for the eroded ground truth,
  dsm_potsdam_0A_0B.tif, ..._normalized_lastools.tif), found anywhere under
  the root; the benchmark's 14 held-out tiles are the val split.
- INRIA Aerial: AerialImageDataset/train/{images,gt}/<city><k>.tif (or
  train/, or the root itself holding images/ and gt/); tiles k = 1..5 of
  each city are the val split.
- any folder: images/, masks/ and optional elevation/, paired by file stem.

It also gives each layout's default band names and label encoding. This is
kept apart from `core.data.prepare`, which decodes the files and writes the
store, because it is the part that changes when a new archive layout is
supported; the store format does not depend on it. Only file names are
looked at here; no pixel is read.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.data import labels as labels_lib
from core.data import tiles as tiles_lib
from core.data.tiles import TileError

# The ISPRS Potsdam benchmark's held-out tiles (the usual test split).
POTSDAM_VAL_IDS = ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15",
                   "5_13", "5_14", "5_15", "6_13", "6_14", "6_15", "7_13")
POTSDAM_BANDS = "RGBIR"
INRIA_VAL_NUMBERS = range(1, 6)


class Source:
    """One tile's input files and how to decode them."""

    def __init__(self, name, image, label, elevation=None, val=False):
        self.name, self.image, self.label = name, Path(image), Path(label)
        self.elevation = Path(elevation) if elevation else None
        self.val = val


def _find(src: Path, pattern: str) -> list[Path]:
    return sorted(p for p in src.rglob(pattern) if p.is_file())


def _potsdam_sources(src: Path, elevation: str, eroded) -> list[Source]:
    images = _find(src, "top_potsdam_*_RGBIR.tif")
    if not images:
        raise TileError(f"{src}: no Potsdam image 'top_potsdam_*_RGBIR.tif' "
                        "found (expected the 4_Ortho_RGBIR folder of the "
                        "official archive).")
    full = {tiles_lib.tile_stem(p): p for p in _find(src, "top_potsdam_*_label.tif")}
    thin = {tiles_lib.tile_stem(p): p
            for p in _find(src, "top_potsdam_*_label_noBoundary.tif")}
    out = []
    for image in images:
        name = tiles_lib.tile_stem(image)
        match = re.fullmatch(r"top_potsdam_(\d+)_(\d+)", name)
        if not match:
            raise TileError(f"{image}: unexpected Potsdam file name.")
        a, b = int(match.group(1)), int(match.group(2))
        val = f"{a}_{b}" in POTSDAM_VAL_IDS
        use_thin = eroded is True or (eroded == "val" and val)
        table, folder = (thin, "5_Labels_all_noBoundary") if use_thin else (
            full, "5_Labels_all")
        if name not in table:
            suffix = "_label_noBoundary" if use_thin else "_label"
            raise TileError(f"No label for {image}: expected {folder}/"
                            f"{name}{suffix}.tif under {src}.")
        elev = None
        if elevation != "none":
            pattern = (f"dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.*"
                       if elevation == "ndsm" else f"dsm_potsdam_{a:02d}_{b:02d}.tif")
            found = [p for p in _find(src, pattern)
                     if p.suffix.lower() in tiles_lib.IMAGE_EXTENSIONS]
            if not found:
                raise TileError(f"No {elevation} for {image}: expected "
                                f"{pattern} under {src}.")
            elev = found[0]
        out.append(Source(name, image, table[name], elev, val))
    return out


def _inria_root(src: Path) -> Path:
    for cand in (src / "AerialImageDataset" / "train", src / "train", src):
        if (cand / "images").is_dir() and (cand / "gt").is_dir():
            return cand
    raise TileError(f"{src}: expected AerialImageDataset/train/images and "
                    "AerialImageDataset/train/gt (the INRIA archive layout).")


def _inria_sources(src: Path) -> list[Source]:
    root = _inria_root(src)
    pairs = tiles_lib.pair_by_stem(tiles_lib.list_images(root / "images"),
                                   tiles_lib.list_images(root / "gt"))
    out = []
    for name, image, mask in pairs:
        match = re.fullmatch(r"(.*?)(\d+)", name)
        val = bool(match) and int(match.group(2)) in INRIA_VAL_NUMBERS
        out.append(Source(name, image, mask, None, val))
    return out


def _folder_sources(src: Path, elevation: str) -> list[Source]:
    pairs = tiles_lib.pair_by_stem(tiles_lib.list_images(src / "images"),
                                   tiles_lib.list_images(src / "masks"))
    elev = {}
    if elevation != "none":
        elev = {tiles_lib.tile_stem(p): p
                for p in tiles_lib.list_images(src / "elevation")}
    out = []
    for name, image, mask in pairs:
        if elevation != "none" and name not in elev:
            raise TileError(f"No elevation for {image}: expected "
                            f"{src / 'elevation'}/{name}.tif.")
        out.append(Source(name, image, mask, elev.get(name)))
    return out


def find_sources(dataset: str, src: Path, elevation: str, eroded,
                 label_spec: str | None
                 ) -> tuple[list[Source], str | None, labels_lib.LabelSpec]:
    """The tiles of one archive, its default band names and its label spec.

    Args:
      dataset: "potsdam" | "inria" | "folder" (already validated).
      src: archive root.
      elevation: "none" | "dsm" | "ndsm".
      eroded: Potsdam eroded labels: True, False or "val" (see `prepare`).
      label_spec: label spec name, or None for the layout's own ("potsdam"
        for folders).

    Returns:
      (sources in a stable sorted order, default source band names or None
      when they must come from the band count, label spec).
    """
    if dataset == "potsdam":
        sources, default_bands = _potsdam_sources(src, elevation, eroded), POTSDAM_BANDS
        spec = labels_lib.POTSDAM
    elif dataset == "inria":
        sources, default_bands, spec = _inria_sources(src), "RGB", labels_lib.INRIA
    else:
        sources = _folder_sources(src, elevation)
        spec = labels_lib.get_label_spec(label_spec or "potsdam")
        default_bands = None
    if dataset != "folder" and label_spec is not None:
        spec = labels_lib.get_label_spec(label_spec)
    return sources, default_bands, spec
