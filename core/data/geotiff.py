"""Minimal GeoTIFF georeferencing with tifffile: read the tags, write them back.

A GeoTIFF stores its coordinate reference system and pixel-to-map transform
in a few TIFF tags; this module reads them into a `GeoInfo` and writes them
with `tifffile`, so tiles, predictions and demo data keep their CRS and
geotransform without needing rasterio/GDAL (which read them back, and are
the reference in the tests).

Tags handled:
  33550 ModelPixelScaleTag   (sx, sy, sz)
  33922 ModelTiepointTag     (i, j, k, x, y, z): raster (i, j) <-> map (x, y)
  34735 GeoKeyDirectoryTag   uint16 keys: model type, raster type, EPSG code
  34736 GeoDoubleParamsTag   doubles referenced by keys (copied verbatim)
  34737 GeoAsciiParamsTag    citations referenced by keys (copied verbatim)
  42113 GDAL_NODATA          nodata value as ASCII

Only north-up rasters (scale + one tiepoint, no rotation or shear) are
supported: a file with a ModelTransformationTag (34264) raises an error
rather than being silently mis-placed. Orthophoto archives (ISPRS, INRIA)
are north-up.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
from typing import Sequence

import numpy as np
import tifffile

TAG_PIXEL_SCALE = 33550
TAG_TIEPOINT = 33922
TAG_TRANSFORMATION = 34264
TAG_GEO_KEYS = 34735
TAG_GEO_DOUBLES = 34736
TAG_GEO_ASCII = 34737
TAG_GDAL_NODATA = 42113

# GeoKey ids and values (GeoTIFF 1.0 specification, section 6).
KEY_MODEL_TYPE = 1024        # 1 projected, 2 geographic
KEY_RASTER_TYPE = 1025       # 1 PixelIsArea, 2 PixelIsPoint
KEY_CITATION = 1026
KEY_GEOGRAPHIC_TYPE = 2048   # EPSG code of a geographic CRS
KEY_PROJECTED_TYPE = 3072    # EPSG code of a projected CRS
USER_DEFINED = 32767

_TIFF_EXTENSIONS = (".tif", ".tiff")
_COMPRESSIONS = {"none": None, "deflate": "zlib"}


@dataclasses.dataclass(frozen=True)
class GeoInfo:
    """GeoTIFF georeferencing tags of one north-up raster.

    Attributes:
      geo_key_directory: uint16 values of GeoKeyDirectoryTag (header + keys).
      model_pixel_scale: (sx, sy, sz) map units per pixel, sy > 0 for north-up.
      model_tiepoint: (i, j, k, x, y, z) ties raster (i, j) to map (x, y).
      geo_ascii_params: GeoAsciiParamsTag text, or None.
      geo_double_params: GeoDoubleParamsTag values, or None.
      nodata: GDAL nodata value (may be NaN), or None.
    """
    geo_key_directory: tuple[int, ...]
    model_pixel_scale: tuple[float, ...]
    model_tiepoint: tuple[float, ...]
    geo_ascii_params: str | None = None
    geo_double_params: tuple[float, ...] | None = None
    nodata: float | None = None

    def geokeys(self) -> dict[int, int]:
        """GeoKey id -> value for keys stored inline (TIFFTagLocation 0)."""
        d = self.geo_key_directory
        num_keys = d[3] if len(d) >= 4 else 0
        out = {}
        for n in range(num_keys):
            key, location, _, value = d[4 + 4 * n: 8 + 4 * n]
            if location == 0:
                out[key] = value
        return out

    @property
    def crs_epsg(self) -> int | None:
        """EPSG code of the CRS, or None if user-defined or absent."""
        keys = self.geokeys()
        return _epsg(keys.get(KEY_PROJECTED_TYPE, keys.get(KEY_GEOGRAPHIC_TYPE)))

    @property
    def epsg_by_kind(self) -> tuple[int | None, int | None]:
        """(projected, geographic) EPSG codes, each None if user-defined or absent."""
        keys = self.geokeys()
        return _epsg(keys.get(KEY_PROJECTED_TYPE)), _epsg(keys.get(KEY_GEOGRAPHIC_TYPE))

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform (x0, sx, 0, y0, 0, -sy) of the pixel corners.

        x = x0 + col * sx and y = y0 - row * sy at the top-left corner of
        pixel (row, col). A PixelIsPoint raster is shifted by half a pixel,
        as GDAL does.
        """
        sx, sy = self.model_pixel_scale[:2]
        i, j, _, x, y, _ = self.model_tiepoint[:6]
        x0, y0 = x - i * sx, y + j * sy
        if self.geokeys().get(KEY_RASTER_TYPE) == 2:
            x0, y0 = x0 - 0.5 * sx, y0 + 0.5 * sy
        return (x0, sx, 0.0, y0, 0.0, -sy)

    def window(self, row_off: int, col_off: int) -> "GeoInfo":
        """GeoInfo of a crop whose top-left pixel is (row_off, col_off)."""
        sx, sy = self.model_pixel_scale[:2]
        i, j, k, x, y, z = self.model_tiepoint[:6]
        tie = (i, j, k, x + col_off * sx, y - row_off * sy, z)
        return dataclasses.replace(self, model_tiepoint=tie)


def make_geoinfo(epsg: int, origin_xy: Sequence[float], pixel_size: float,
                 *, nodata: float | None = None) -> GeoInfo:
    """GeoInfo of a north-up raster whose top-left corner is `origin_xy`.

    Args:
      epsg: EPSG code; 4000..4999 are taken as geographic (e.g. 4326), any
        other as projected (e.g. 25833 ETRS89 / UTM 33N, 26914 NAD83 / UTM 14N).
      origin_xy: (x, y) map coordinates of the top-left corner of pixel (0, 0).
      pixel_size: ground size of a square pixel, in CRS units (metres for UTM).
      nodata: optional GDAL nodata value.
    """
    epsg = int(epsg)
    if not 1024 <= epsg < USER_DEFINED:
        raise ValueError(f"EPSG code {epsg} is out of range 1024..32766.")
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive number, got "
                         f"{pixel_size}.")
    geographic = 4000 <= epsg < 5000
    keys = [1, 1, 0, 3,
            KEY_MODEL_TYPE, 0, 1, 2 if geographic else 1,
            KEY_RASTER_TYPE, 0, 1, 1,
            KEY_GEOGRAPHIC_TYPE if geographic else KEY_PROJECTED_TYPE, 0, 1,
            epsg]
    x, y = (float(v) for v in origin_xy)
    return GeoInfo(geo_key_directory=tuple(keys),
                   model_pixel_scale=(float(pixel_size), float(pixel_size), 0.0),
                   model_tiepoint=(0.0, 0.0, 0.0, x, y, 0.0),
                   nodata=None if nodata is None else float(nodata))


def parse_nodata(text: str | bytes) -> float | None:
    """The GDAL_NODATA tag's ASCII value as a float ("nan", "-9999", "1e+20").

    The one parser of this tag: `core.data.raster` reads no-data through it.
    Returns None for text that is not a number (GDAL then ignores the tag).
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    try:
        return float(str(text).strip().strip("\x00").strip())
    except ValueError:
        return None


def _format_nodata(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _epsg(code) -> int | None:
    """A GeoKey's EPSG code, or None when it is absent, 0 or user-defined."""
    return None if code in (None, 0, USER_DEFINED) else int(code)


def read_geoinfo(path: str | os.PathLike) -> GeoInfo | None:
    """Reads the georeferencing of a GeoTIFF.

    Returns:
      A GeoInfo, or None for a non-TIFF file or a TIFF without geo tags.

    Raises:
      ValueError: the file cannot be read as TIFF, or is rotated/sheared.
    """
    path = os.fspath(path)
    if not path.lower().endswith(_TIFF_EXTENSIONS):
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            tags = {tag.code: tag.value for tag in tif.pages[0].tags.values()}
    except (OSError, tifffile.TiffFileError, IndexError) as e:
        raise ValueError(f"{path}: cannot read TIFF tags ({e}).") from e
    if TAG_TRANSFORMATION in tags:
        raise ValueError(f"{path}: has a ModelTransformationTag (rotated or "
                         "sheared raster); only north-up GeoTIFFs are supported.")
    nodata = (parse_nodata(tags[TAG_GDAL_NODATA])
              if TAG_GDAL_NODATA in tags else None)
    if TAG_GEO_KEYS not in tags and TAG_PIXEL_SCALE not in tags:
        return None
    if TAG_PIXEL_SCALE not in tags or TAG_TIEPOINT not in tags:
        raise ValueError(f"{path}: GeoTIFF without ModelPixelScale and "
                         "ModelTiepoint tags; cannot place it on the map.")
    doubles = tags.get(TAG_GEO_DOUBLES)
    ascii_params = tags.get(TAG_GEO_ASCII)
    if isinstance(ascii_params, bytes):
        ascii_params = ascii_params.decode("ascii", "replace")
    return GeoInfo(
        geo_key_directory=tuple(int(v) for v in tags.get(TAG_GEO_KEYS, ())),
        model_pixel_scale=tuple(float(v) for v in tags[TAG_PIXEL_SCALE]),
        model_tiepoint=tuple(float(v) for v in tags[TAG_TIEPOINT]),
        geo_ascii_params=ascii_params,
        geo_double_params=(None if doubles is None
                           else tuple(float(v) for v in np.ravel(doubles))),
        nodata=nodata)


def _extratags(geo: GeoInfo | None, nodata: float | None) -> list[tuple]:
    tags = []
    if geo is not None:
        tags += [
            (TAG_PIXEL_SCALE, "d", len(geo.model_pixel_scale),
             geo.model_pixel_scale, True),
            (TAG_TIEPOINT, "d", len(geo.model_tiepoint), geo.model_tiepoint, True),
        ]
        if geo.geo_key_directory:
            tags.append((TAG_GEO_KEYS, "H", len(geo.geo_key_directory),
                         geo.geo_key_directory, True))
        if geo.geo_double_params:
            tags.append((TAG_GEO_DOUBLES, "d", len(geo.geo_double_params),
                         geo.geo_double_params, True))
        if geo.geo_ascii_params:
            tags.append((TAG_GEO_ASCII, "s", 0, geo.geo_ascii_params, True))
    if nodata is not None:
        tags.append((TAG_GDAL_NODATA, "s", 0, _format_nodata(nodata), True))
    return tags


def write_geotiff(path: str | os.PathLike, array: np.ndarray,
                  geo: GeoInfo | None, *, nodata: float | None = None,
                  compress: str = "deflate", level: int = 6) -> None:
    """Writes a (Geo)TIFF with tifffile.

    Args:
      path: output file (.tif/.tiff); its folder must exist.
      array: [H,W] or [H,W,C] (bands last), any numeric dtype; bool is
        written as uint8 0/1. 3-band uint8 is tagged RGB; 4-band uint8 is RGB
        plus one unspecified extra band (e.g. Potsdam's R,G,B,IR); others are
        band-interleaved grey.
      geo: georeferencing to write, or None for a plain TIFF.
      nodata: GDAL nodata value; defaults to `geo.nodata`.
      compress: "deflate" (lossless, zlib) or "none".
      level: zlib level 1 (fastest) .. 9 (smallest); 6 is zlib's default.
    """
    path = os.fspath(path)
    if not path.lower().endswith(_TIFF_EXTENSIONS):
        raise ValueError(f"{path}: a GeoTIFF path must end in .tif or .tiff.")
    array, kwargs = _imwrite_args(path, array, geo, nodata, compress, level)
    tifffile.imwrite(path, array, **kwargs)


def encode_geotiff(array: np.ndarray, geo: GeoInfo | None, *,
                   nodata: float | None = None,
                   compress: str = "deflate", level: int = 6) -> bytes:
    """The bytes `write_geotiff` would write (deterministic for equal input)."""
    array, kwargs = _imwrite_args("<memory>", array, geo, nodata, compress,
                                  level)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def _imwrite_args(name: str, array, geo: GeoInfo | None,
                  nodata: float | None, compress: str,
                  level: int) -> tuple[np.ndarray, dict]:
    """Validated array and tifffile.imwrite keyword arguments."""
    if compress not in _COMPRESSIONS:
        raise ValueError(f"compress={compress!r}; expected one of "
                         f"{sorted(_COMPRESSIONS)}.")
    if not 1 <= int(level) <= 9:
        raise ValueError(f"level={level}; expected a zlib level 1..9.")
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"{name}: expected an [H,W] or [H,W,C] array, got "
                         f"shape {array.shape}.")
    if nodata is None and geo is not None:
        nodata = geo.nodata
    bands = 1 if array.ndim == 2 else array.shape[2]
    # No ImageDescription/Software/DateTime: the same array gives the same bytes.
    kwargs = {"metadata": None, "software": False,
              "extratags": _extratags(geo, nodata)}
    if array.dtype == np.uint8 and bands in (3, 4):
        kwargs["photometric"] = "rgb"
        if bands == 4:
            kwargs["extrasamples"] = [0]   # unspecified: IR, not alpha
    else:
        kwargs["photometric"] = "minisblack"
    if bands > 1:
        kwargs["planarconfig"] = "contig"
    compression = _COMPRESSIONS[compress]
    if compression is not None:
        # The horizontal predictor helps
        # smooth integer imagery; the floating-point one would need the
        # optional imagecodecs package to write, so floats go without.
        kwargs["compression"] = compression
        kwargs["compressionargs"] = {"level": int(level)}
        if np.issubdtype(array.dtype, np.integer):
            kwargs["predictor"] = True
    return array, kwargs
