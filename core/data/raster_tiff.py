"""The TIFF half of `core.data.raster.read_raster`: tifffile + imagecodecs.

Which IFD is the image: the first one that is neither a reduced-resolution
image (NewSubfileType bit 0: GDAL overviews) nor a transparency mask (bit 2).
The GDAL internal mask is the first full-resolution IFD with the mask bit
(GDAL_TIFF_INTERNAL_MASK, rasterio's `write_mask`); nonzero = data.

What the image's tags say, applied here:
- PlanarConfiguration 2 (GDAL INTERLEAVE=BAND) comes back [C,H,W]: bands last.
- ExtraSamples 1 (associated) or 2 (unassociated alpha): the band leaves the
  array and becomes `alpha`; ExtraSamples 0 (unspecified) stays a data band.
  (GDAL marks the 4th band of a 4-band uint8 RGB TIFF as alpha by default;
  an RGB+IR file must be written with ALPHA=UNSPECIFIED or MINISBLACK.)
- Photometric PALETTE: the indices are the array, the ColorMap (16-bit per
  channel) becomes an 8-bit palette as GDAL makes it: v // 257, or v itself
  when no entry exceeds 255 (writers that store 8-bit values).
- Photometric YCbCr (JPEG): decoded to RGB by tifffile.
- GDAL_NODATA (tag 42113): parsed by `core.data.geotiff.parse_nodata`.

Codec problems become one TileError naming the file, the codec and the
package that reads it, instead of a decoder traceback; data past the end of
the file is reported as truncation before any decoding.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data import geotiff
from core.data.raster import Decoded
from core.data.tiles import TileError

_REDUCED, _MASK = 1, 4
_ALPHA_EXTRASAMPLES = (1, 2)
_PALETTE = 3
_MAX_IFDS = 64   # GDAL files hold image, mask, and a few overview levels
_NAMES = {8: "DEFLATE", 32946: "DEFLATE", 7: "JPEG", 6: "old-style JPEG",
          50000: "ZSTD", 34926: "ZSTD", 50001: "WEBP", 34927: "WEBP",
          50002: "JPEG-XL", 52546: "JPEG-XL", 34712: "JPEG 2000"}


def read_tiff(path: Path) -> Decoded:
    """Full-resolution pixels, alpha, mask, palette and nodata of a TIFF."""
    import tifffile  # pylint: disable=import-outside-toplevel

    with tifffile.TiffFile(path) as tif:
        image, mask_page = _image_and_mask(tif, path)
        for page in (image, mask_page):
            if page is not None:
                _check_codecs(path, page)
                _check_extent(path, page, tif.filehandle.size)
        array = _decode(path, image)
        mask = None
        if mask_page is not None:
            mask = np.asarray(_decode(path, mask_page)).reshape(
                mask_page.imagelength, mask_page.imagewidth) != 0
        tag = image.tags.get(geotiff.TAG_GDAL_NODATA)
        nodata = geotiff.parse_nodata(tag.value) if tag is not None else None
        palette = None
        if image.photometric == _PALETTE and image.colormap is not None:
            palette = _palette_8bit(np.asarray(image.colormap))
        extrasamples = tuple(int(v) for v in image.extrasamples or ())
        axes = image.axes
    array = _bands_last(path, array, axes)
    alpha = None
    first_extra = array.shape[-1] - len(extrasamples)
    alpha_bands = [first_extra + i for i, kind in enumerate(extrasamples)
                   if kind in _ALPHA_EXTRASAMPLES]
    if alpha_bands:
        # One alpha band (the usual case) is kept as is, so a caller that
        # knows it is data (R,G,B,IR tagged alpha) gets its values back.
        alpha = (array[..., alpha_bands[0]] if len(alpha_bands) == 1 else
                 np.where((array[..., alpha_bands] != 0).all(axis=-1),
                          np.uint8(1), np.uint8(0)))
        keep = [c for c in range(array.shape[-1]) if c not in alpha_bands]
        array = array[..., keep]
    return Decoded(array, alpha=alpha, mask=mask, palette=palette,
                   nodata=nodata)


def _image_and_mask(tif, path: Path):
    """(image page, GDAL mask page or None); the first IFD when none qualifies."""
    image = mask = None
    for n, page in enumerate(tif.pages):
        if n >= _MAX_IFDS:
            break
        kind = int(getattr(page, "subfiletype", 0) or 0)
        if kind & _REDUCED:
            continue
        if kind & _MASK:
            if mask is None:
                mask = page
        elif image is None:
            image = page
        if image is not None and mask is not None:
            break
    if image is None:
        if not len(tif.pages):
            raise TileError(f"{path}: TIFF without an image.")
        image = tif.pages[0]
    if mask is not None and (mask.imagelength, mask.imagewidth) != (
            image.imagelength, image.imagewidth):
        mask = None   # not the image's mask (GDAL writes one per level)
    return image, mask


def _codec_name(compression: int) -> str:
    import tifffile  # pylint: disable=import-outside-toplevel
    if compression in _NAMES:
        return _NAMES[compression]
    try:
        return tifffile.COMPRESSION(compression).name
    except ValueError:
        return f"code {compression}"


class CodecError(TileError):
    """The TIFF's compression or predictor has no decoder here."""


def codec_error(path: Path, codec: str, reason: str) -> TileError:
    """One line naming the file, the codec ("LZW compression") and its package."""
    try:
        import imagecodecs  # pylint: disable=import-outside-toplevel
        have = f"imagecodecs {getattr(imagecodecs, '__version__', '')}".strip()
    except ImportError:
        return CodecError(f"{path}: TIFF with {codec} needs the imagecodecs "
                         f"package, which is not installed (pip install "
                         f"imagecodecs).")
    if "imagecodecs" in reason:
        return CodecError(f"{path}: TIFF with {codec} needs the {codec} codec of "
                         f"the imagecodecs package, missing from the installed "
                         f"{have} ({reason}); reinstall it: pip install "
                         f"--force-reinstall imagecodecs.")
    return CodecError(f"{path}: TIFF with {codec}: no decoder in tifffile/{have} "
                     f"({reason}); GDAL (the rasterio package) may read it, or "
                     f"convert the file: gdal_translate -co COMPRESS=DEFLATE "
                     f"in.tif out.tif.")


def _check_codecs(path: Path, page) -> None:
    import tifffile  # pylint: disable=import-outside-toplevel
    compression, predictor = int(page.compression), int(page.predictor)
    if compression != 1 and compression not in tifffile.TIFF.DECOMPRESSORS:
        reason = _key_error_text(tifffile.TIFF.DECOMPRESSORS, compression)
        raise codec_error(path, f"{_codec_name(compression)} compression", reason)
    if (predictor != 1 and compression not in tifffile.TIFF.IMAGE_COMPRESSIONS
            and predictor not in tifffile.TIFF.UNPREDICTORS):
        reason = _key_error_text(tifffile.TIFF.UNPREDICTORS, predictor)
        name = {2: "horizontal", 3: "floating-point"}.get(predictor, str(predictor))
        raise codec_error(path, f"{name} predictor", reason)


def _key_error_text(codecs, key: int) -> str:
    try:
        codecs[key]
    except KeyError as err:
        return str(err).strip("'\"")
    return "unavailable"


def _check_extent(path: Path, page, file_size: int) -> None:
    ends = [int(o) + int(c) for o, c in zip(page.dataoffsets, page.databytecounts)
            if int(c) > 0]
    if ends and max(ends) > file_size:
        raise TileError(f"{path}: truncated TIFF: its image data runs to byte "
                        f"{max(ends)} but the file has {file_size} bytes.")


def _decode(path: Path, page) -> np.ndarray:
    try:
        return page.asarray()
    except ImportError as err:   # imagecodecs' stub of a codec it was built without
        raise codec_error(path, f"{_codec_name(int(page.compression))} compression",
                          f"imagecodecs: {err}") from err


def _bands_last(path: Path, array: np.ndarray, axes: str) -> np.ndarray:
    """[H,W,C] from tifffile's page axes ('YX', 'YXS', 'SYX')."""
    if axes == "YX":
        return array[..., None]
    if axes == "YXS":
        return array
    if axes == "SYX":
        return np.moveaxis(array, 0, -1)
    raise TileError(f"{path}: TIFF image with axes {axes!r}; expected a 2-D "
                    f"image with bands (YX, YXS or SYX).")


def _palette_8bit(colormap: np.ndarray) -> np.ndarray:
    """[3,N] 16-bit TIFF ColorMap -> [N,3] uint8."""
    colormap = colormap.astype(np.uint32)
    if colormap.size and colormap.max() <= 255:
        return colormap.T.astype(np.uint8)
    return (colormap // 257).T.astype(np.uint8)   # GDAL truncates too
