"""Reading rasters as they are stored: source dtype, no-data, palettes.

`read_raster(path) -> Raster` is the one reader of image files. It keeps the
source dtype and tells which pixels hold data, so `prepare`, `evaluate` and
`predict` can label no-data pixels ignore and never mistake an alpha band for
a data band.

Readers (chosen by the file's first bytes, not its extension):
- TIFF / BigTIFF: tifffile with the imagecodecs codecs (`raster_tiff.py`):
  every layout GDAL writes (strips or tiles, pixel or band interleave, LZW,
  DEFLATE/ZSTD/LZMA with predictors 1-3, PackBits, JPEG incl. YCbCr, LERC,
  WebP), full resolution only (overview and mask IFDs are never the image).
- PNG: Pillow (installed with imageio), called directly because imageio
  expands palettes to colours; 16-bit PNGs through imagecodecs, because
  Pillow reduces 16-bit RGB(A) to 8 bits.
- JPEG 2000 and VRT (by their signatures), and any file the readers above
  cannot decode (an unknown format, a TIFF codec imagecodecs lacks): GDAL
  through rasterio when the `geo` extra is installed (`raster_gdal.py`);
  without it, one line names the package that reads the file.
- anything else (JPEG, BMP, GIF, WebP): Pillow.

dtype rules (`Raster.array`): uint8, uint16, int16, float32 are kept; bool and
1-bit -> uint8 with the stored values 0/1 (as GDAL reads them); int8 -> int16;
float16 -> float32 (exact); float64 -> float32 (rounded; beyond +-3.4e38 ->
+-inf); int32/uint32/int64/uint64 -> float32 when every value is an integer
float32 holds exactly (|v| <= 2**24), else TileError; complex -> TileError.
No-data is decided on the source values, before any conversion.

`valid` is False where (any of, combined):
- a band of a float raster is NaN or +-inf (also without a nodata tag; see
  `finite_values` for what the model is given there);
- the file's nodata value (GDAL_NODATA tag, PNG tRNS colour of a grey/RGB
  PNG) is on every band (NaN nodata: every band is NaN);
- the GDAL internal mask (TIFF mask IFD, NewSubfileType bit 4) is 0;
- an alpha band (TIFF ExtraSamples 1 associated or 2 unassociated; PNG RGBA,
  LA; PNG palette entry with tRNS alpha 0) is 0. Alpha is removed from
  `array`; ExtraSamples 0 (unspecified, e.g. Potsdam's IR) is a data band.
`valid` is None when every pixel holds data.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.data.tiles import TileError

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG 2000 (JP2 box, raw codestream) and GDAL's VRT: formats only GDAL reads here.
_GDAL_ONLY_MAGIC = (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51", b"<VRTData")
# The pixel types kept as they are (`Raster.array`), so the ones a store and
# a model's input can have; others are converted (module docstring).
SOURCE_DTYPES = ("uint8", "uint16", "int16", "float32")
_FLOAT32_EXACT_INT = 2 ** 24


@dataclasses.dataclass(frozen=True)
class Raster:
    """One image file's pixels and what the file says about them.

    Attributes:
      array: [H,W,C] data bands, channels last, in the source dtype (uint8,
        uint16, int16 or float32, see the module docstring for the others);
        an alpha band is never among them.
      valid: [H,W] bool, False where the file marks no data (GDAL nodata value
        on every band, an internal mask, alpha == 0); None when every pixel
        holds data.
      palette: [N,3] uint8 colour table of a palette-indexed file (then
        `array` holds the indices, [H,W,1]); None otherwise.
      nodata: the file's GDAL nodata value, or None.
      path: the file, for messages.
      alpha: [H,W] the alpha band taken out of `array` (source dtype), or
        None; kept so a caller can warn when it looks like data.
    """
    array: np.ndarray
    valid: np.ndarray | None = None
    palette: np.ndarray | None = None
    nodata: float | None = None
    path: str = ""
    alpha: np.ndarray | None = None


class Decoded(NamedTuple):
    """What a format reader found, before the common rules are applied.

    array: [H,W,C] source dtype, alpha removed; alpha: [H,W] (0 = no data) or
    None; mask: [H,W] bool (False = no data) or None; palette: [N,3] uint8 or
    None; nodata: float or None.
    """
    array: np.ndarray
    alpha: np.ndarray | None = None
    mask: np.ndarray | None = None
    palette: np.ndarray | None = None
    nodata: float | None = None


def read_raster(path: str | os.PathLike, *, alpha_is_data: bool = False) -> Raster:
    """Reads an image file (see `Raster` and the module docstring).

    Args:
      path: the file.
      alpha_is_data: keep a band the file tags as alpha as the last data band
        (no mask from it). tifffile's and GDAL's defaults tag the 4th band of
        a 4-band uint8 file as alpha, so an R,G,B,IR archive written with
        them reads as RGB + alpha; a caller that knows the file holds four
        bands (a data set's declared bands) re-reads it with this.

    Raises:
      TileError: one line naming the file: missing, empty, truncated or
        corrupt file, a compression whose codec is not installed (naming the
        codec and the package), or a dtype that has no lossless home.
    """
    path = Path(path)
    if not path.is_file():
        raise TileError(f"{path}: file not found.")
    if path.stat().st_size == 0:
        raise TileError(f"{path}: empty file (0 bytes); truncated copy?")
    decoded = _decode(path)
    if alpha_is_data and decoded.alpha is not None:
        decoded = decoded._replace(
            array=np.concatenate([decoded.array.reshape(decoded.alpha.shape + (-1,)),
                                  decoded.alpha[..., None]], axis=-1), alpha=None)
    array = decoded.array
    if not array.dtype.isnative:   # big-endian file read as is: same values, native order
        array = array.astype(array.dtype.newbyteorder("="))
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or min(array.shape) == 0:
        raise TileError(f"{path}: expected a 2-D image [H,W] or [H,W,C], got "
                        f"shape {array.shape}.")
    valid = _valid(array, decoded)  # on the source values
    array = _contract_dtype(array, path)
    return Raster(array=array, valid=and_valid(valid, finite_pixels(array)),
                  palette=decoded.palette, nodata=decoded.nodata,
                  path=os.fspath(path), alpha=decoded.alpha)


def _decode(path: Path) -> Decoded:
    """The format reader's output; GDAL for what the core readers cannot."""
    from core.data import raster_gdal  # pylint: disable=import-outside-toplevel
    with open(path, "rb") as f:
        head = f.read(12)
    if any(head.startswith(m) for m in _GDAL_ONLY_MAGIC):
        if not raster_gdal.available():
            raise TileError(f"{path}: a JPEG 2000 or VRT raster, which ortholoop reads "
                            "through GDAL: pip install 'ortholoop[geo]' (rasterio).")
        return _guarded(path, raster_gdal.read_gdal)
    try:
        if head[:4] in _TIFF_MAGIC:
            from core.data import raster_tiff  # pylint: disable=import-outside-toplevel
            return _guarded(path, raster_tiff.read_tiff)
        if head[:8] == _PNG_MAGIC:
            return _guarded(path, _read_png)
        return _guarded(path, _read_pillow)
    except raster_tiff_codec_errors() as err:
        # A codec the core lacks, or a format Pillow does not know: GDAL may.
        if not raster_gdal.available():
            raise
        try:
            return raster_gdal.read_gdal(path)
        except Exception:  # pylint: disable=broad-except
            raise err from None


def raster_tiff_codec_errors() -> tuple[type, ...]:
    """Errors after which GDAL is tried: missing codecs, unknown formats."""
    from core.data.raster_tiff import CodecError  # pylint: disable=import-outside-toplevel
    return (CodecError, UnknownFormatError)


class UnknownFormatError(TileError):
    """Pillow does not know the file's format."""


def _guarded(path: Path, reader) -> Decoded:
    try:
        return reader(path)
    except (TileError, MemoryError):
        raise
    except Exception as err:  # decoders raise many types; name the file once
        text = " ".join(str(err).split())
        if type(err).__name__ == "UnidentifiedImageError":
            raise UnknownFormatError(f"{path}: not an image format ortholoop reads "
                                     f"(TIFF, PNG, JPEG; JPEG 2000, VRT and the other "
                                     f"GDAL formats with pip install 'ortholoop[geo]')."
                                     ) from err
        raise TileError(f"{path}: unreadable or truncated image "
                        f"({type(err).__name__}: {text}).") from err


def nodata_pixels(array: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """[H,W] bool, True where every band of `array` [H,W,C] equals `nodata`.

    NaN nodata matches NaN. A value the dtype cannot hold (-9999 in uint8,
    0.5 in int16) matches nothing, as in GDAL. None when nothing can match.
    """
    if nodata is None:
        return None
    nodata = float(nodata)
    kind = array.dtype.kind
    if np.isnan(nodata):
        return np.isnan(array).all(axis=-1) if kind in "fc" else None
    if kind in "ui":
        info = np.iinfo(array.dtype)
        if not nodata.is_integer() or not info.min <= nodata <= info.max:
            return None
        value = array.dtype.type(int(nodata))
    elif kind == "b":
        if nodata not in (0.0, 1.0):
            return None
        value = bool(nodata)
    else:
        with np.errstate(over="ignore"):
            value = array.dtype.type(nodata)
    return (array == value).all(axis=-1)


def finite_pixels(array: np.ndarray) -> np.ndarray | None:
    """[H,W] bool, False where any band of a float `array` [H,W,C] is NaN or
    +-inf: no data, whatever the file's nodata value says (a float raster
    often marks its holes NaN without tagging NaN as nodata). None when every
    value is finite (always for integer arrays)."""
    if array.dtype.kind != "f":
        return None
    finite = np.isfinite(array).all(axis=-1)
    return None if finite.all() else finite


def and_valid(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Pixels valid in both [H,W] masks (None: every pixel is valid)."""
    if a is None:
        return b
    return a if b is None else a & b


def finite_values(array: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """`array` with NaN and +-inf replaced by 0 (a copy only when there are
    any, none with `in_place`, for an array the caller owns). Those pixels
    are no data (`finite_pixels`), but the model must not see them: one NaN
    spreads through every convolution to the valid pixels around it.
    prepare stores, and predict feeds, the same 0."""
    if array.dtype.kind != "f":
        return array
    finite = np.isfinite(array)
    if finite.all():
        return array
    if in_place:
        np.copyto(array, array.dtype.type(0), where=~finite)
        return array
    return np.where(finite, array, array.dtype.type(0))


def _valid(array: np.ndarray, decoded: Decoded) -> np.ndarray | None:
    valid = np.ones(array.shape[:2], bool)
    missing = nodata_pixels(array, decoded.nodata)
    if missing is not None:
        valid &= ~missing
    if decoded.mask is not None:
        valid &= decoded.mask
    if decoded.alpha is not None:
        valid &= decoded.alpha != 0
    return None if valid.all() else valid


def _contract_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    """The dtype rules of the module docstring."""
    dtype = array.dtype
    if dtype.name in SOURCE_DTYPES:
        return array
    if dtype == bool:
        return array.astype(np.uint8)
    if dtype == np.int8:
        return array.astype(np.int16)
    if dtype.kind == "f" and dtype.itemsize <= 8:
        with np.errstate(over="ignore"):
            return array.astype(np.float32)
    if dtype.kind in "ui":
        low, high = (array.min(), array.max()) if array.size else (0, 0)
        if -_FLOAT32_EXACT_INT <= int(low) and int(high) <= _FLOAT32_EXACT_INT:
            return array.astype(np.float32)
        raise TileError(f"{path}: {dtype.name} values {int(low)}..{int(high)} do "
                        f"not fit the float32 the reader returns exactly "
                        f"(|v| <= 2**24); convert the file to uint16/int16/"
                        f"float32 (e.g. gdal_translate -ot Float32).")
    raise TileError(f"{path}: pixel type {dtype.name} is not supported; expected "
                    f"uint8, uint16, int16 or float32 (also bool, int8, "
                    f"float64 and integers up to 2**24, converted).")


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from the IHDR chunk that starts every PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise TileError(f"{path}: PNG without an IHDR header; truncated?")
    return head[24], head[25]


def _read_png(path: Path) -> Decoded:
    bit_depth, colour_type = _png_header(path)
    if bit_depth != 16:
        return _read_pillow(path)
    # Pillow reads 16-bit RGB(A) as 8-bit: libpng through imagecodecs keeps it.
    try:
        import imagecodecs  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise TileError(f"{path}: 16-bit PNG needs the imagecodecs package "
                        f"(pip install imagecodecs); Pillow would cut it to "
                        f"8 bits.") from None
    array = imagecodecs.png_decode(path.read_bytes())
    if array.ndim == 2:
        array = array[..., None]
    if colour_type in (4, 6):   # grey + alpha, RGB + alpha
        return Decoded(array[..., :-1], alpha=array[..., -1])
    return Decoded(array)


def _transparency(info: dict, mode: str) -> tuple[float | None, tuple | None]:
    """PNG tRNS of a grey/RGB image: (nodata, colour) or (None, None)."""
    value = info.get("transparency")
    if value is None or mode in ("P", "RGBA", "LA"):
        return None, None
    colour = tuple(value) if isinstance(value, tuple) else (value,)
    nodata = float(colour[0]) if len(set(colour)) == 1 else None
    return nodata, colour


def _read_pillow(path: Path) -> Decoded:
    """PNG (8-bit and less), JPEG and the other formats Pillow reads."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    with Image.open(path) as image:
        mode = image.mode
        if mode == "P":   # PNG palette + tRNS opens as "P" with info["transparency"]
            indices = np.asarray(image)
            rgb = np.asarray(image.getpalette("RGB") or [], np.uint8)
            palette = rgb.reshape(-1, 3)
            alpha = None
            table = image.info.get("transparency")
            if table is not None:
                # tRNS: one transparent index, or one alpha per index.
                alphas = np.full(max(256, len(palette)), 255, np.uint8)
                if isinstance(table, (bytes, bytearray)):
                    alphas[:len(table)] = np.frombuffer(table, np.uint8)
                else:
                    alphas[int(table)] = 0
                alpha = alphas[indices]
            return Decoded(indices[..., None], alpha=alpha, palette=palette)
        array = np.asarray(image)
        nodata, colour = _transparency(image.info, mode)
    if array.ndim == 2:
        array = array[..., None]
    if mode in ("RGBA", "LA"):
        return Decoded(array[..., :-1], alpha=array[..., -1])
    mask = None
    if colour is not None and nodata is None:   # RGB tRNS with unequal values
        mask = ~(array == np.asarray(colour, array.dtype)).all(axis=-1)
    return Decoded(array, mask=mask, nodata=nodata)
