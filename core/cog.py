"""Cloud-Optimized GeoTIFF output through GDAL (rasterio, the `geo` extra).

A COG is a GeoTIFF a GIS or a web viewer opens at once at any zoom: tiled
(512 x 512 blocks), compressed (DEFLATE with the horizontal predictor),
internal overviews (halvings down to one block; `nearest` for class ids, so
no class is invented by averaging, `average` for probabilities), nodata or an
internal mask set, CRS and geotransform kept.

Written by window: `CogWriter` streams windows into a tiled, compressed
GeoTIFF scratch file next to the output, and on `close()` GDAL's COG driver
copies it into the final layout, computing the overviews (its own scratch
file), then `os.replace` moves it onto the output path. The output is so
either complete or absent: a killed job never leaves a truncated COG under
the output's name (leftover `*.part*` scratch files are overwritten by the
next run). GDAL's block cache is capped at `GDAL_CACHE_MB` during the write,
so peak memory does not grow with the raster.

`core.data.geotiff` stays the dependency-free writer (tifffile) of plain
GeoTIFFs; this module is the one home of COG output.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Sequence

import numpy as np

BLOCK = 512
# GDAL's raster block cache (MB) while reading and writing: its default is
# 5 % of RAM, which would make the peak memory of a large raster depend on
# the machine. A GDAL_CACHEMAX given in MB in the environment is honoured.
GDAL_CACHE_MB = (int(os.environ["GDAL_CACHEMAX"])
                 if os.environ.get("GDAL_CACHEMAX", "").isdigit() else 64)


def require_rasterio(what: str):
    """`import rasterio`, or ImportError naming the `geo` extra and `what`."""
    try:
        import rasterio  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ImportError(f"{what} needs GDAL through rasterio: "
                          "pip install 'ortholoop[geo]'") from None
    return rasterio


def gdal_env(**options):
    """A rasterio.Env with GDAL's block cache capped (see GDAL_CACHE_MB)."""
    rasterio = require_rasterio("GDAL I/O")
    # rasterio hands an int GDAL_CACHEMAX to GDALSetCacheMax64: bytes, not MB.
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB << 20, **options)


def georeference(path: str) -> tuple[Any, Any]:
    """(crs, transform) of any raster GDAL opens; (None, None) when the file
    has none (a PNG): the outputs are then written without georeferencing."""
    rasterio = require_rasterio("reading georeferencing")
    import warnings  # pylint: disable=import-outside-toplevel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with gdal_env(), rasterio.open(path) as ds:
            if ds.crs is None and ds.transform == rasterio.Affine.identity():
                return None, None
            return ds.crs, ds.transform


class CogWriter:
    """Writes a raster window by window, then finishes it as a COG.

    Args:
      path: output .tif.
      height, width, count: raster size and band count.
      dtype: numpy dtype name of the pixels (uint8 for classes/probabilities).
      crs, transform: rasterio CRS and Affine, or None for a plain raster.
      nodata: GDAL nodata value (classes: 255), or None.
      resampling: overview resampling, "nearest" (classes) or "average".
      colormap: optional {value: (r, g, b)} colour table of a 1-band uint8
        raster (a GIS then draws the classes in their palette colours).
      masked: write an internal per-dataset mask (`write(..., valid=)`):
        no data for rasters whose every value is meaningful (probabilities).
      tags: GDAL metadata {name: text} (e.g. the class names as JSON).
    """

    def __init__(self, path: str, *, height: int, width: int, count: int,
                 dtype: str = "uint8", crs=None, transform=None,
                 nodata: float | None = None, resampling: str = "nearest",
                 colormap: dict | None = None, masked: bool = False,
                 tags: dict | None = None):
        rasterio = require_rasterio(f"{path}: Cloud-Optimized GeoTIFF output")
        if resampling not in ("nearest", "average"):
            raise ValueError(f"resampling={resampling!r}; expected nearest or average")
        self.path, self.resampling, self.masked = os.fspath(path), resampling, masked
        self.scratch = self.path + ".part.tif"
        self._env = gdal_env(GDAL_TIFF_INTERNAL_MASK=True)
        self._env.__enter__()
        profile = {"driver": "GTiff", "height": height, "width": width, "count": count,
                   "dtype": dtype, "tiled": True, "blockxsize": BLOCK,
                   "blockysize": BLOCK, "compress": "deflate", "zlevel": 1,
                   "bigtiff": "if_safer", "nodata": nodata}
        if crs is not None:
            profile.update(crs=crs, transform=transform)
        self._ds = rasterio.open(self.scratch, "w", **profile)
        if colormap:
            self._ds.write_colormap(1, {int(k): tuple(v) + (255,) * (4 - len(v))
                                        for k, v in colormap.items()})
        if tags:
            self._ds.update_tags(**tags)

    def write(self, array: np.ndarray, row: int, col: int,
              valid: np.ndarray | None = None) -> None:
        """Writes [h,w] or [h,w,C] at (row, col); `valid` [h,w] bool is the
        mask of a `masked` writer (None: all data)."""
        from rasterio.windows import Window  # pylint: disable=import-outside-toplevel
        array = array[..., None] if array.ndim == 2 else array
        window = Window(col, row, array.shape[1], array.shape[0])
        self._ds.write(np.moveaxis(array, -1, 0), window=window)
        if self.masked:
            mask = (np.full(array.shape[:2], 255, np.uint8) if valid is None
                    else np.where(valid, 255, 0).astype(np.uint8))
            self._ds.write_mask(mask, window=window)

    def close(self) -> None:
        """Copies the scratch file into a COG at `path` (atomically)."""
        from rasterio import shutil as rio_shutil  # pylint: disable=import-outside-toplevel
        self._ds.close()
        try:
            temporary = self.path + ".part.cog.tif"
            rio_shutil.copy(self.scratch, temporary, driver="COG", COMPRESS="DEFLATE",
                            PREDICTOR="YES", BLOCKSIZE=BLOCK, BIGTIFF="IF_SAFER",
                            OVERVIEWS="IGNORE_EXISTING",
                            OVERVIEW_RESAMPLING=self.resampling.upper())
            os.replace(temporary, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.scratch)
            self._env.__exit__(None, None, None)

    def abort(self) -> None:
        """Drops the scratch file (an error while predicting)."""
        self._ds.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.scratch)
        self._env.__exit__(None, None, None)

    def __enter__(self) -> "CogWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_cog(path: str, array: np.ndarray, *, crs=None, transform=None,
              nodata: float | None = None, resampling: str = "nearest",
              colormap: dict | None = None, valid: np.ndarray | None = None) -> None:
    """Writes an in-memory [H,W] or [H,W,C] array as a COG (see CogWriter).

    `valid` [H,W] bool: an internal mask (False = no data) is written.
    """
    array = np.asarray(array)
    count = 1 if array.ndim == 2 else array.shape[2]
    with CogWriter(path, height=array.shape[0], width=array.shape[1], count=count,
                   dtype=array.dtype.name, crs=crs, transform=transform, nodata=nodata,
                   resampling=resampling, colormap=colormap,
                   masked=valid is not None) as writer:
        writer.write(array, 0, 0, valid)


def palette_colormap(palette: Sequence[Sequence[int]]) -> dict:
    """Class palette [[r,g,b], ...] -> GDAL colour table {id: (r,g,b,255)}."""
    return {i: tuple(int(v) for v in colour) + (255,) for i, colour in enumerate(palette)}
