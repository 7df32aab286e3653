"""Reading tiles: images, elevation rasters, band selection, image/mask pairing.

Everything here is NumPy on the host (it runs once per tile, in `prepare`, not
in the training hot path). Arrays are returned channels-last:

- `read_image(path)` -> [H,W,C] in the file's dtype (uint8, uint16, int16 or
  float32), alpha removed: `core.data.raster.read_raster(path).array`.
- `read_elevation(path, nodata=None)` -> (float32 [H,W] with holes filled,
  bool [H,W] valid mask); holes are NaN, +-inf, the nodata value (the
  GDAL_NODATA TIFF tag's when not given) and what the file masks out.
- `select_bands(image, have="RGBIR", want="IRRG")` reorders channels by name.
- `pair_by_stem(images, masks)` pairs files by their stem with the known
  suffixes (`_RGBIR`, `_label`, `_label_noBoundary`, ...) removed, never by
  sorted position: a missing file, a duplicate or a stray mask raises an error
  naming the files.

Errors a user can cause (missing, unreadable or truncated files, wrong band
counts, sizes that differ) raise `TileError` (a ValueError) whose message names
the file and what was expected.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# .jp2 and .vrt are read through GDAL (the geo extra), see core.data.raster.
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".vrt")

# Band tokens, longest first so "IR" is not read as "I" + "R".
BAND_TOKENS = ("IR", "R", "G", "B")

# Suffixes that name the role of a file rather than the place it shows:
# `top_potsdam_2_10_RGBIR.tif` and `top_potsdam_2_10_label_noBoundary.tif`
# both describe the place `top_potsdam_2_10`. Longest first.
KNOWN_SUFFIXES = ("_label_noBoundary", "_noBoundary", "_label", "_labels",
                  "_mask", "_gt", "_RGBIR", "_IRRGB", "_IRRG", "_RGB")

class TileError(ValueError):
    """A tile file or a set of tile files is not what the reader expects."""


def list_images(folder: str | os.PathLike,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in `folder` (sorted by name, for stable logs).

    Raises:
      TileError: the folder does not exist or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TileError(f"{folder}: folder not found (expected a folder of "
                        f"images {', '.join(extensions)}).")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise TileError(f"{folder}: empty folder, no image file with "
                        f"extension {', '.join(extensions)}.")
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as channels-last, in the file's own dtype.

    `core.data.raster.read_raster(path).array`: the no-data mask and palette
    it also returns are dropped here (use `read_raster` to keep them).

    Args:
      path: .tif/.tiff (any layout GDAL writes), .png, .jpg.

    Returns:
      [H,W,C] uint8, uint16, int16 or float32 as stored (1-bit -> uint8 0/1,
      int8 -> int16, float64 -> float32; see `core.data.raster`), alpha band
      removed; palette files give their indices [H,W,1].

    Raises:
      TileError: missing, empty, unreadable or truncated file, missing codec.
    """
    from core.data.raster import read_raster  # pylint: disable=import-outside-toplevel
    return read_raster(path).array


def read_elevation(path: str | os.PathLike,
                   nodata: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads a DSM or nDSM raster and fills its holes.

    Args:
      path: single-band raster (float32 TIFF, or an 8-bit normalised JPEG/TIFF
        as in some Potsdam releases).
      nodata: value marking missing heights; default: the file's GDAL_NODATA
        tag if any. NaN and +-inf are always missing, and so are the pixels the
        file itself marks as no data (internal mask, alpha, its nodata tag).

    Returns:
      elevation: [H,W] float32, missing pixels replaced by the mean of the
        valid ones (0 when none is valid) so convolutions see no outliers.
      valid: [H,W] bool, False where the height was missing (`prepare`
        labels those pixels ignore).

    Raises:
      TileError: unreadable file or more than one band.
    """
    from core.data.raster import read_raster  # pylint: disable=import-outside-toplevel
    raster = read_raster(path)
    array = raster.array
    if array.shape[-1] != 1 or raster.palette is not None:
        what = "a palette" if raster.palette is not None else f"{array.shape[-1]} bands"
        raise TileError(f"{path}: an elevation raster has 1 band of heights, "
                        f"this file has {what} (shape {array.shape}).")
    elevation = array[..., 0].astype(np.float32)
    valid = np.isfinite(elevation)
    if raster.valid is not None:
        valid &= raster.valid
    if nodata is not None and np.isfinite(nodata):
        valid &= elevation != np.float32(nodata)
    if not valid.all():
        fill = float(elevation[valid].mean(dtype=np.float64)) if valid.any() else 0.0
        elevation = np.where(valid, elevation, np.float32(fill))
    return elevation, valid


def parse_bands(bands: str | Sequence[str]) -> tuple[str, ...]:
    """"IRRGB" -> ("IR", "R", "G", "B"); a list of names is checked as is."""
    if not isinstance(bands, str):
        names = tuple(str(b).upper() for b in bands)
        bad = [b for b in names if b not in BAND_TOKENS]
        if bad or not names:
            raise TileError(f"Unknown band names {bad or list(bands)}; expected "
                            f"names from {BAND_TOKENS}.")
        return names
    text = bands.strip().upper()
    pattern = "|".join(BAND_TOKENS)
    if not text or not re.fullmatch(f"(?:{pattern})+", text):
        raise TileError(f"Band string {bands!r} is not a sequence of "
                        f"{'/'.join(BAND_TOKENS)} (e.g. 'IRRGB', 'RGB').")
    names = tuple(re.findall(pattern, text))
    if len(set(names)) != len(names):
        raise TileError(f"Band string {bands!r} repeats a band.")
    return names


def band_indices(have: str | Sequence[str],
                 want: str | Sequence[str]) -> list[int]:
    """Channel indices in an image with bands `have` that give bands `want`."""
    have_names, want_names = parse_bands(have), parse_bands(want)
    missing = [b for b in want_names if b not in have_names]
    if missing:
        raise TileError(f"Bands {missing} requested ({''.join(want_names)}) are "
                        f"not in the source bands {''.join(have_names)}.")
    return [have_names.index(b) for b in want_names]


def select_bands(image: np.ndarray, have: str | Sequence[str],
                 want: str | Sequence[str], *, path: str | None = None) -> np.ndarray:
    """Reorders / subsets channels by band name.

    Args:
      image: [H,W,C] with C == number of bands in `have`.
      have: band names of `image`, e.g. "RGBIR" (Potsdam) or "RGB".
      want: band names to return, e.g. "IRRG".
      path: file name to put in error messages.

    Returns:
      [H,W,len(want)] same dtype.
    """
    have_names = parse_bands(have)
    if image.ndim != 3 or image.shape[-1] != len(have_names):
        where = f"{path}: " if path else ""
        raise TileError(f"{where}expected {len(have_names)} bands "
                        f"({''.join(have_names)}), got shape {image.shape}.")
    index = band_indices(have_names, want)
    if index == list(range(len(have_names))):
        return image
    return image[..., index]


def tile_stem(path: str | os.PathLike,
              suffixes: Sequence[str] = KNOWN_SUFFIXES) -> str:
    """File name without extension and without one known role suffix."""
    stem = Path(path).stem
    for suffix in suffixes:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[:-len(suffix)]
    return stem


def _by_stem(files: Iterable[str | os.PathLike], kind: str,
             suffixes: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        f = Path(f)
        key = tile_stem(f, suffixes)
        if key in out:
            raise TileError(f"Two {kind} files for tile {key!r}: {out[key]} and "
                            f"{f}.")
        out[key] = f
    return out


def pair_by_stem(images: Iterable[str | os.PathLike],
                 masks: Iterable[str | os.PathLike], *,
                 suffixes: Sequence[str] = KNOWN_SUFFIXES,
                 allow_unused_masks: bool = False) -> list[tuple[str, Path, Path]]:
    """Pairs image and mask files by tile stem (never by position).

    Args:
      images: image files in any order.
      masks: mask files in any order.
      suffixes: role suffixes removed from stems before matching.
      allow_unused_masks: accept masks whose image is absent.

    Returns:
      [(stem, image_path, mask_path)] sorted by stem.

    Raises:
      TileError: no images, an image without a mask (named), a mask without
        an image unless allowed, or two files with the same stem.
    """
    image_map = _by_stem(images, "image", suffixes)
    mask_map = _by_stem(masks, "mask", suffixes)
    if not image_map:
        raise TileError("No image files to pair.")
    missing = sorted(str(image_map[k]) for k in image_map if k not in mask_map)
    if missing:
        raise TileError(f"No mask for image(s) {', '.join(missing)} (masks are "
                        f"matched by file stem without {', '.join(suffixes)}).")
    unused = sorted(str(mask_map[k]) for k in mask_map if k not in image_map)
    if unused and not allow_unused_masks:
        raise TileError(f"No image for mask(s) {', '.join(unused)}.")
    return [(k, image_map[k], mask_map[k]) for k in sorted(image_map)]


def check_same_grid(paths: Sequence[str | os.PathLike]) -> None:
    """Raises TileError when two of the files are placed on different grids.

    A mask or elevation raster of the image's size but placed elsewhere
    (origin more than half a pixel away, pixel size off by more than 1 %,
    another EPSG code of the same kind) would pair each image pixel with
    another place's label. GeoTIFFs are read from their tags; with the geo
    extra (rasterio), every other file is asked of GDAL too: JPEG 2000, VRT,
    ERDAS .img, and PNG/JPEG/TIFF placed by a world file or .aux.xml. Files without a
    place (no georeference, the 1 x 1 pixel grid at 0, 0, or a rotated grid)
    are paired by size alone. As GDAL does by default, a negative
    ModelPixelScale Y in a GeoTIFF is read as north-up, and half a pixel (a
    PixelIsPoint file whose tiepoint is a corner) is still the same grid.
    """
    placed = [(path, grid) for path in paths
              for grid in [_placement(path)] if grid is not None]
    if not placed:
        return
    first_path, first = placed[0]
    x0, sx, _, y0, _, sy = first.transform
    for path, grid in placed[1:]:
        x1, tx, _, y1, _, ty = grid.transform
        shifted = max(abs(x1 - x0) / abs(sx), abs(y1 - y0) / abs(sy)) > 0.5 + 1e-6
        scaled = abs(tx / sx - 1) > 0.01 or abs(ty / sy - 1) > 0.01
        if shifted or scaled or _other_crs(first, grid):
            raise TileError(f"{path} is not on the grid of {first_path}: {grid} vs "
                            f"{first}; a mask or elevation raster must cover its "
                            f"image pixel for pixel (same extent and resolution).")


@dataclasses.dataclass(frozen=True)
class _Grid:
    """Where a raster lies: GDAL geotransform (x0, sx, 0, y0, 0, sy) and
    the EPSG codes of its CRS by kind (None: absent or user-defined)."""
    transform: tuple[float, float, float, float, float, float]
    projected: int | None
    geographic: int | None

    def __str__(self) -> str:
        x0, sx, _, y0, _, sy = self.transform
        code = self.projected or self.geographic
        return (f"origin ({x0:.12g}, {y0:.12g}), pixel {abs(sx):.6g} x {abs(sy):.6g}"
                + (f", EPSG:{code}" if code else ""))


def _placement(path) -> "_Grid | None":
    """The grid of a placed raster, or None (no place, rotated, unreadable
    tags: the readers report those)."""
    from core.data import geotiff, raster_gdal  # pylint: disable=import-outside-toplevel
    try:
        geo = geotiff.read_geoinfo(path)  # None: not a TIFF, or a TIFF without geo tags
    except ValueError:
        return None
    if geo is not None:
        if not all(geo.model_pixel_scale[:2]):
            return None
        # GDAL ignores the sign of the scales: north-up either way.
        transform = dataclasses.replace(
            geo, model_pixel_scale=tuple(abs(v) for v in geo.model_pixel_scale)).transform
        if transform == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0):  # the grid of no place
            return None
        return _Grid(transform, *geo.epsg_by_kind)
    if not raster_gdal.available():  # a TIFF without tags may have a world file
        return None
    placement = raster_gdal.read_placement(path)
    return None if placement is None else _Grid(*placement)


def _other_crs(a: _Grid, b: _Grid) -> bool:
    """Two EPSG codes of the same kind (projected, else geographic) differ."""
    for codes in ((a.projected, b.projected), (a.geographic, b.geographic)):
        if codes != (None, None):  # a user-defined CRS may be the same one: not compared
            return None not in codes and codes[0] != codes[1]
    return False


def check_same_size(arrays: Sequence[tuple[str | os.PathLike, np.ndarray]]) -> None:
    """Raises TileError naming the files when the [H,W] of the arrays differ."""
    first_path, first = arrays[0]
    for path, array in arrays[1:]:
        if array.shape[:2] != first.shape[:2]:
            raise TileError(f"Size mismatch: {first_path} is "
                            f"{first.shape[0]}x{first.shape[1]} but {path} is "
                            f"{array.shape[0]}x{array.shape[1]} (HxW).")
