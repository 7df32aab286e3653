"""GDAL, through rasterio (the `geo` extra), for rasters the core reader
does not decode: JPEG 2000 orthophotos (many national archives ship .jp2),
VRT mosaics, ERDAS .img, ENVI, and TIFF compressions tifffile/imagecodecs
lack (JBIG, ...).

`read_gdal(path)` returns the same `Decoded` record as the TIFF and PNG
readers, so `read_raster`'s dtype and no-data rules apply unchanged:
bands tagged alpha (GDAL colour interpretation) leave the array and become
`alpha`; a per-dataset mask (GDAL internal or .msk mask) becomes `mask`; the
nodata value is the first band's; a palette band gives indices + palette.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def available() -> bool:
    """True when rasterio (and so GDAL) can be imported."""
    try:
        import rasterio  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return True


def read_placement(path) -> tuple | None:
    """Where GDAL places a raster: (geotransform (x0, sx, 0, y0, 0, sy),
    projected EPSG code, geographic EPSG code), a code None when the CRS is
    of the other kind, absent or has none; None for a raster without a
    place (no georeference, the identity grid, ground control points only),
    a rotated one, or a file GDAL cannot open (its reader says why)."""
    import warnings  # pylint: disable=import-outside-toplevel
    import rasterio  # pylint: disable=import-outside-toplevel
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError  # pylint: disable=import-outside-toplevel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as ds:
                transform, crs = ds.transform, ds.crs
        except RasterioIOError:
            return None
    if transform.b or transform.d or transform.is_identity:
        return None
    code = crs.to_epsg() if crs is not None else None
    projected = bool(crs is not None and crs.is_projected)
    return (tuple(float(v) for v in transform.to_gdal()),
            code if projected else None, None if projected else code)


def read_gdal(path: Path):
    """Pixels, alpha, mask, palette and nodata of any raster GDAL opens.

    Returns:
      core.data.raster.Decoded with array [H,W,C] in the file's dtype.
    """
    import rasterio  # pylint: disable=import-outside-toplevel
    from rasterio.enums import ColorInterp, MaskFlags  # pylint: disable=import-outside-toplevel
    from core.data.raster import Decoded  # pylint: disable=import-outside-toplevel

    with rasterio.open(path) as ds:
        data = ds.read()                       # [C,H,W]
        interp = list(ds.colorinterp)
        alpha_bands = [i for i, c in enumerate(interp) if c == ColorInterp.alpha]
        mask = None
        flags = ds.mask_flag_enums[0] if ds.count else ()
        if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
            mask = ds.dataset_mask() != 0
        palette = None
        if interp and interp[0] == ColorInterp.palette:
            table = ds.colormap(1)
            palette = np.zeros((max(table) + 1, 3), np.uint8)
            for index, rgba in table.items():
                palette[index] = rgba[:3]
        nodata = ds.nodatavals[0] if ds.nodatavals else None
    alpha = None
    if alpha_bands:
        alpha = data[alpha_bands[0]]
        data = np.delete(data, alpha_bands, axis=0)
    return Decoded(np.moveaxis(data, 0, -1), alpha=alpha, mask=mask, palette=palette,
                   nodata=None if nodata is None else float(nodata))
