"""Reading rasters as they are stored: source dtype, no-data, palettes.

`read_raster(path) -> Raster` is the one reader of image files (TIFF through
tifffile and its codecs, PNG/JPEG through imageio). It keeps the source
dtype and tells which pixels hold data, so `prepare`, `evaluate` and
`predict` can label no-data pixels ignore and never mistake an alpha band for
a data band.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass(frozen=True)
class Raster:
    """One image file's pixels and what the file says about them.

    Attributes:
      array: [H,W,C] data bands, channels last, in the source dtype (uint8,
        uint16, int16 or float32); an alpha band is never among them.
      valid: [H,W] bool, False where the file marks no data (GDAL nodata value
        on every band, an internal mask, alpha == 0); None when every pixel
        holds data.
      palette: [N,3] uint8 colour table of a palette-indexed file (then
        `array` holds the indices, [H,W,1]); None otherwise.
      nodata: the file's GDAL nodata value, or None.
      path: the file, for messages.
    """
    array: np.ndarray
    valid: np.ndarray | None = None
    palette: np.ndarray | None = None
    nodata: float | None = None
    path: str = ""


def read_raster(path: str | os.PathLike) -> Raster:
    """Reads an image file (see `Raster`). Raises TileError naming the file."""
    from core.data import tiles  # pylint: disable=import-outside-toplevel
    array, nodata = tiles._read_any(path)  # pylint: disable=protected-access
    return Raster(array=array, valid=None, palette=None, nodata=nodata,
                  path=os.fspath(path))
