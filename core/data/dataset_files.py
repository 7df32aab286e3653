"""How tiles are found in an archive: the `Source` record and the finders.

A finder maps an archive root to `Source` records (image, label, every
elevation kind the archive has, split) by file names only; no pixel is read.
The finders are generic; the facts (file name patterns, official splits) are
bound to them by the records of `core.data.datasets`
(`functools.partial(find_keyed, image=..., val=...)`), so each finder is
called as `find(root, eroded, layout)`.

Rules shared by the finders:
- every tile has exactly one label; a missing label, a label or elevation
  file without its image, and a missing or empty folder raise a one-line
  `TileError` naming the folder and the expected `layout`;
- an elevation kind is in the archive when at least one file of that kind
  is found; then every tile must have one (a store holds the same channels
  for every tile);
- a file name found twice (two extracted copies of one zip) is taken from
  the first path in sorted order;
- sources come back sorted by name.
"""
from __future__ import annotations

import dataclasses
import os
import re
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from core.data import tiles as tiles_lib
from core.data.tiles import TileError

SPLITS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class Source:
    """One tile's input files.

    Attributes:
      name: tile name, unique in the archive (the store's key).
      image: optical raster.
      label: ground truth raster (decoded with the data set's LabelSpec).
      elevations: {kind: raster} for every elevation kind ("dsm", "ndsm")
        the archive has for this tile; empty when it has none.
      split: "train" or "val" (the official split; the caller may move
        more tiles to val).
    """
    name: str
    image: Path
    label: Path
    elevations: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    split: str = "train"

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"Source {self.name!r}: split {self.split!r}, "
                             f"expected one of {SPLITS}.")


Finder = Callable[..., list[Source]]


def fail(folder: Path, problem: str, layout: str) -> TileError:
    """The one-line error of a layout problem under `folder`."""
    return TileError(f"{folder}: {problem} (expected layout: {layout}).")


def walk(root: Path) -> list[Path]:
    """Every image file under `root` (any depth; like `Path.rglob` before it,
    symlinked sub-folders are not entered), sorted by path."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        out += [Path(folder, f) for f in sorted(files)
                if Path(f).suffix.lower() in tiles_lib.IMAGE_EXTENSIONS]
    return out


def index(files: Iterable[Path], pattern: str,
          where: Callable[[Path], bool] | None = None) -> dict[str, Path]:
    """{key: first file} of the files whose whole name matches `pattern`
    (case-insensitive); the key is the regex groups joined by "_"."""
    regex = re.compile(pattern, re.IGNORECASE)
    out: dict[str, Path] = {}
    for path in files:
        match = regex.fullmatch(path.name)
        if match and (where is None or where(path)):
            out.setdefault("_".join(str(int(g)) if g.isdigit() else g
                                    for g in match.groups()), path)
    return out


def check_strays(keys: Iterable[str], others: Mapping[str, Path], what: str,
                 layout: str) -> None:
    """Raises when a label/elevation file has no image."""
    keys = set(keys)
    for key, path in others.items():
        if key not in keys:
            raise fail(path.parent, f"{what} {path.name} has no image", layout)


def elevations_of(key: str, image: Path, kinds: Mapping[str, Mapping[str, Path]],
                  expected: Callable[[str, str], str], root: Path,
                  layout: str) -> dict[str, Path]:
    """{kind: file} of one tile; a kind the archive has must exist for it."""
    out = {}
    for kind, table in kinds.items():
        if not table:
            continue
        if key not in table:
            raise TileError(f"No {kind} for {image}: expected {expected(kind, key)} "
                            f"under {root} (expected layout: {layout}).")
        out[kind] = table[key]
    return out


def list_folder(folder: Path, layout: str,
                extensions: Sequence[str] = tiles_lib.IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in `folder`; a missing or empty folder raises."""
    if not folder.is_dir():
        raise fail(folder, "folder not found", layout)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise fail(folder, f"empty folder, no image file ({', '.join(extensions)})",
                   layout)
    return files


def pair_folders(images: Path, masks: Path, layout: str,
                 extensions: Sequence[str] = tiles_lib.IMAGE_EXTENSIONS
                 ) -> list[tuple[str, Path, Path]]:
    """[(stem, image, mask)] of two folders paired by `tiles.tile_stem`."""
    image_files = list_folder(images, layout, extensions)
    mask_files = list_folder(masks, layout, extensions)
    try:
        return tiles_lib.pair_by_stem(image_files, mask_files)
    except TileError as err:
        raise fail(masks, str(err).rstrip("."), layout) from None


def _use_eroded(eroded, val: bool) -> bool:
    return eroded is True or (eroded == "val" and val)


def find_keyed(root: Path, eroded, layout: str, *, image: str, label: str,
               eroded_label: str, elevations: Mapping[str, str],
               val: Iterable[str], name: Callable[[str], str],
               expected: Callable[[str, str], str],
               image_where: Callable[[Path], bool] | None = None,
               label_where: Callable[[Path], bool] | None = None,
               shown: str = "") -> list[Source]:
    """Archives whose file names carry the tile key, anywhere under root (ISPRS).

    Args:
      image, label, eroded_label, elevations ({kind: pattern}): regexes of
        whole file names; their groups make the tile key (e.g. "2_10").
      val: keys of the val split.
      name: key -> tile name.
      expected: (kind | "label" | "eroded", key) -> expected file, for errors.
      image_where, label_where: extra path tests (Vaihingen's images and
        labels share a file name and differ by folder).
      shown: the images as a user knows them, for the error when there is
        none ("Potsdam image 'top_potsdam_*_RGBIR.tif'").
    """
    found = walk(root)
    images = index(found, image, image_where)
    if not images:
        raise fail(root, f"no {shown or repr(image)} found", layout)
    labels = {False: index(found, label, label_where),
              True: index(found, eroded_label)}
    elevs = {kind: index(found, pattern) for kind, pattern in elevations.items()}
    for what, table in [("label", labels[False]), ("label", labels[True]),
                        *elevs.items()]:
        check_strays(images, table, what, layout)
    val = set(val)
    out = []
    for key, path in images.items():
        thin = _use_eroded(eroded, key in val)
        if key not in labels[thin]:
            raise TileError(f"No label for {path}: expected "
                            f"{expected('eroded' if thin else 'label', key)} under "
                            f"{root} (expected layout: {layout}).")
        out.append(Source(name(key), path, labels[thin][key],
                          elevations_of(key, path, elevs, expected, root, layout),
                          "val" if key in val else "train"))
    return sorted(out, key=lambda s: s.name)


def find_paired(root: Path, eroded, layout: str, *,
                roots: Sequence[Sequence[str]], images: str, masks: str,
                extensions: Sequence[str] = tiles_lib.IMAGE_EXTENSIONS,
                split: Callable[[Path, str], str] = lambda base, stem: "train",
                name: Callable[[Path, str], str] = lambda base, stem: stem
                ) -> list[Source]:
    """Image and mask folders paired by stem (INRIA, LoveDA).

    Args:
      roots: alternatives, each a tuple of base-folder globs relative to
        root ("" = root itself); the first alternative where a base holds
        `images` or `masks` is used, with every such base.
      images, masks: sub-folder names under each base.
      split: (base, stem) -> "train" | "val".
      name: (base, stem) -> tile name.
    """
    for alternative in roots:
        bases = sorted({b for pattern in alternative
                        for b in (root.glob(pattern) if pattern else [root])
                        if (b / images).is_dir() or (b / masks).is_dir()})
        if bases:
            break
    else:
        raise fail(root, f"no {images}/ or {masks}/ folder found", layout)
    out = []
    for base in bases:
        for stem, image, mask in pair_folders(base / images, base / masks, layout,
                                              extensions):
            out.append(Source(name(base, stem), image, mask, {}, split(base, stem)))
    return sorted(out, key=lambda s: s.name)


def find_sidecar(root: Path, eroded, layout: str, *, image: str, mask: str,
                 split: Callable[[str], str]) -> list[Source]:
    """Image and mask side by side, keyed by name (DeepGlobe's <id>_sat.jpg
    and <id>_mask.png). Folders without any mask (released unlabelled) are
    skipped; in the others every image needs its mask and vice versa."""
    found = walk(root)
    by_folder: dict[Path, tuple[dict, dict]] = {}
    for path in found:
        for slot, pattern in enumerate((image, mask)):
            match = re.fullmatch(pattern, path.name, re.IGNORECASE)
            if match:
                by_folder.setdefault(path.parent, ({}, {}))[slot][match.group(1)] = path
    labelled = {f: v for f, v in by_folder.items() if v[1]}
    if not labelled:
        raise fail(root, "no mask file found", layout)
    out, seen = [], {}
    for folder, (imgs, msks) in sorted(labelled.items()):
        check_strays(imgs, msks, "mask", layout)
        for key, path in sorted(imgs.items()):
            if key not in msks:
                raise fail(folder, f"no mask for {path.name}", layout)
            if key in seen:
                raise fail(folder, f"tile {key} is also in {seen[key]}", layout)
            seen[key] = folder
            out.append(Source(key, path, msks[key], {}, split(key)))
    return sorted(out, key=lambda s: s.name)


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def find_listed(root: Path, eroded, layout: str, *, images: str, labels: str,
                lists: Mapping[str, str | None], missing_hint: str = "") -> list[Source]:
    """<group>/<images>/<file> and <group>/<labels>/<file>, split by lists of
    file names in the root (OpenEarthMap's train.txt, val.txt, test.txt).

    Args:
      lists: {list file: split, or None for a list whose tiles are skipped
        (released without labels)}; a missing optional (None) list is fine.
      missing_hint: appended when a listed image is missing.
    """
    if not (root / next(iter(lists))).is_file():
        inner = sorted(d for d in root.iterdir() if (d / next(iter(lists))).is_file())
        if len(inner) != 1:
            raise fail(root, f"no {next(iter(lists))}", layout)
        root = inner[0]
    split_of: dict[str, str | None] = {}
    for list_name, split in lists.items():
        if not (root / list_name).is_file():
            if split is None:
                continue
            raise fail(root, f"no {list_name}", layout)
        for entry in _read_list(root / list_name):
            if split_of.setdefault(entry, split) != split:
                raise fail(root, f"{entry} is in two lists", layout)
    found = walk(root)
    tables = {what: {p.name: p for p in found if p.parent.name == what}
              for what in (images, labels)}
    for what, table in tables.items():
        for entry, path in table.items():
            if entry not in split_of:
                raise fail(path.parent, f"{entry} is in no list "
                           f"({', '.join(lists)})", layout)
    out = []
    for entry, split in sorted(split_of.items()):
        if split is None:
            continue
        if entry not in tables[images]:
            group = entry.rsplit("_", 1)[0]
            raise fail(root / group / images, f"no image {entry}{missing_hint}", layout)
        label = tables[images][entry].parent.parent / labels / entry
        if not label.is_file():
            raise fail(label.parent, f"no label {entry}", layout)
        out.append(Source(Path(entry).stem, tables[images][entry], label, {}, split))
    return out


def find_folder(root: Path, eroded, layout: str, *,
                elevation_folders: Mapping[str, str]) -> list[Source]:
    """images/ + masks/ by stem, plus {kind: folder} elevation folders."""
    pairs = pair_folders(root / "images", root / "masks", layout)
    elevs = {}
    for kind, sub in elevation_folders.items():
        if (root / sub).is_dir():
            table: dict[str, Path] = {}
            for path in list_folder(root / sub, layout):
                table.setdefault(tiles_lib.tile_stem(path), path)
            check_strays([n for n, _, _ in pairs], table, kind, layout)
            elevs[kind] = table
    expected = lambda kind, key: f"{elevation_folders[kind]}/{key}.tif"  # noqa: E731
    return [Source(n, image, mask, elevations_of(n, image, elevs, expected, root, layout))
            for n, image, mask in pairs]


def stable_fraction(key: str, percent: int) -> bool:
    """True for about `percent` % of keys (CRC-32), whatever else exists."""
    return zlib.crc32(key.encode("utf-8")) % 100 < percent
