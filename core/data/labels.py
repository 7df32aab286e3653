"""Label codecs: colour-coded and 0/255 masks <-> class-id masks.

Class ids are `0..K-1` in a uint8 [H,W] array; `IGNORE_INDEX` (255) marks
pixels that losses and metrics skip. Ground truth arrives in three forms:

- ISPRS Potsdam: an RGB image in a fixed palette. The eroded variant
  (`5_Labels_all_noBoundary`) paints class boundaries black (0,0,0); black
  is not a palette colour, so those pixels, and any colour outside the
  palette, decode to `IGNORE_INDEX`.
- INRIA Aerial: a single-band mask, 0 background and 255 building.
- Plain class-id masks (a "folder" dataset): checked by `check_index_mask`.

The decoders are vectorised: an RGB pixel is packed into one 24-bit integer
code and looked up in a 2**24-entry uint8 table built once per palette
(16 MiB, cached), so a 6000x6000 Potsdam label decodes in a fraction of a
second with no Python loop over pixels.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

IGNORE_INDEX = 255

Color = tuple[int, int, int]


def _validate_palette(palette: Sequence[Sequence[int]]) -> tuple[Color, ...]:
    """Returns the palette as a tuple of int triples, or raises ValueError."""
    colors = tuple(tuple(int(c) for c in color) for color in palette)
    if not colors or len(colors) > IGNORE_INDEX:
        raise ValueError(f"A palette needs 1..{IGNORE_INDEX} colours, got "
                         f"{len(colors)}.")
    for color in colors:
        if len(color) != 3 or not all(0 <= c <= 255 for c in color):
            raise ValueError(f"Palette colour {color} is not an (r, g, b) "
                             "triple of values in 0..255.")
    if len(set(colors)) != len(colors):
        raise ValueError(f"Palette {colors} repeats a colour; class ids would "
                         "be ambiguous.")
    return colors


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """Names, colours and raw encodings of the classes of one dataset.

    Attributes:
      name: dataset or class-file name, e.g. "potsdam".
      class_names: K names; class id i is `class_names[i]`.
      palette: K (r, g, b) uint8 colours; class id i is drawn `palette[i]`,
        and an RGB label pixel of colour `palette[i]` decodes to class i.
      ids: K raw values that encode the classes in a single-band label (class
        i is the value `ids[i]`); None means 0..K-1.
      ignore_values: raw single-band values that mean "not labelled" (decoded
        to IGNORE_INDEX, expected: not counted as unknown), e.g. LoveDA's 0.
      ignore_colors: RGB colours that mean "not labelled", e.g. the black
        boundary of Potsdam's eroded ground truth.
      excluded_from_mean: class names left out of the "without" means the
        tools report beside the plain means (Potsdam's clutter).
    """
    name: str
    class_names: tuple[str, ...]
    palette: tuple[Color, ...]
    ids: tuple[int, ...] | None = None
    ignore_values: tuple[int, ...] = ()
    ignore_colors: tuple[Color, ...] = ()
    excluded_from_mean: tuple[str, ...] = ()

    def __post_init__(self):
        if len(self.class_names) != len(self.palette):
            raise ValueError(
                f"LabelSpec {self.name!r}: {len(self.class_names)} class names "
                f"but {len(self.palette)} palette colours; expected one each.")
        _validate_palette(self.palette)
        if self.ids is not None and len(self.ids) != len(self.class_names):
            raise ValueError(
                f"LabelSpec {self.name!r}: {len(self.ids)} ids for "
                f"{len(self.class_names)} classes; expected one each.")
        unknown = [c for c in self.excluded_from_mean if c not in self.class_names]
        if unknown:
            raise ValueError(f"LabelSpec {self.name!r}: excluded_from_mean "
                             f"names {unknown} that are not classes.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def raw_ids(self) -> tuple[int, ...]:
        """Single-band value of each class (0..K-1 unless `ids` is set)."""
        return tuple(range(self.num_classes)) if self.ids is None else self.ids


# Order and colours of the ISPRS 2D semantic labelling benchmark.
POTSDAM = LabelSpec(
    name="potsdam",
    class_names=("impervious_surfaces", "building", "low_vegetation", "tree",
                 "car", "clutter"),
    palette=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0),
             (255, 255, 0), (255, 0, 0)),
    ignore_colors=((0, 0, 0),),
    excluded_from_mean=("clutter",),
)

# INRIA masks are 0/255 single-band; the palette is for display only.
INRIA = LabelSpec(
    name="inria",
    class_names=("background", "building"),
    palette=((0, 0, 0), (255, 255, 255)),
    ids=(0, 255),
)

_SPECS = {spec.name: spec for spec in (POTSDAM, INRIA)}


def get_label_spec(name: str) -> LabelSpec:
    """Returns the LabelSpec called `name` ("potsdam" or "inria", any case)."""
    spec = _SPECS.get(str(name).lower())
    if spec is None:
        raise ValueError(f"Unknown label spec {name!r}; expected one of "
                         f"{sorted(_SPECS)}.")
    return spec


@functools.lru_cache(maxsize=8)
def _code_lut(palette: tuple[Color, ...]) -> np.ndarray:
    """uint8 [2**24]: packed colour code -> class id, IGNORE_INDEX elsewhere."""
    lut = np.full(1 << 24, IGNORE_INDEX, dtype=np.uint8)
    for class_id, (r, g, b) in enumerate(palette):
        lut[(r << 16) | (g << 8) | b] = class_id
    lut.flags.writeable = False
    return lut


def _color_lut(palette: tuple[Color, ...], ignore_color: Color) -> np.ndarray:
    """uint8 [256, 3]: class id -> colour; ids outside the palette -> ignore."""
    lut = np.empty((256, 3), dtype=np.uint8)
    lut[:] = ignore_color
    lut[:len(palette)] = palette
    return lut


def rgb_to_index(rgb: np.ndarray,
                 palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, int]:
    """Decodes a colour-coded label image.

    Args:
      rgb: [H,W,3] uint8 (extra channels, e.g. alpha, are not accepted).
      palette: K (r, g, b) colours; colour i decodes to class id i.

    Returns:
      ids: [H,W] uint8 class ids; `IGNORE_INDEX` where the colour is not in
        the palette (black boundary pixels included, since black is not a
        Potsdam colour).
      num_unknown: number of pixels set to `IGNORE_INDEX`.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"Expected an RGB label [H,W,3] uint8, got shape "
                         f"{rgb.shape} dtype {rgb.dtype}.")
    lut = _code_lut(_validate_palette(palette))
    # Pack in uint32: three shifts and ors on the planes, no [H,W,3] temporary.
    code = rgb[..., 0].astype(np.uint32)
    code <<= 8
    code |= rgb[..., 1]
    code <<= 8
    code |= rgb[..., 2]
    ids = lut[code]
    num_unknown = int(np.count_nonzero(ids == IGNORE_INDEX))
    return ids, num_unknown


def _check_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"Expected integer class ids, got dtype {ids.dtype}.")
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError(
                f"Class ids must lie in 0..255, got range [{ids.min()}, "
                f"{ids.max()}].")
        ids = ids.astype(np.uint8)
    return ids


def index_to_rgb(ids: np.ndarray,
                 palette: Sequence[Sequence[int]],
                 ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Encodes class ids as colours.

    Args:
      ids: [...] integer class ids in 0..255 ([H,W] for an image).
      palette: K (r, g, b) colours.
      ignore_color: colour of `IGNORE_INDEX` and of any id >= K.

    Returns:
      [..., 3] uint8 colours.
    """
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = _color_lut(_validate_palette(palette),
                            tuple(int(c) for c in ignore_color))
    ids = _check_ids(ids)
    # One 4-byte gather per pixel (RGB + pad as a uint32) is ~2x faster than
    # gathering [256, 3] rows.
    rgbx = lut.view(np.uint32)[:, 0][ids].view(np.uint8).reshape(ids.shape + (4,))
    return np.ascontiguousarray(rgbx[..., :3])


def binary_mask_to_index(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Decodes an INRIA-style mask: 0 -> 0, 255 -> 1, any other value -> 255.

    Args:
      mask: [H,W] or [H,W,1] uint8.

    Returns:
      ids: [H,W] uint8; num_unknown: pixels that were neither 0 nor 255.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"Expected a 0/255 mask [H,W] uint8, got shape "
                         f"{mask.shape} dtype {mask.dtype}.")
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[0], lut[255] = 0, 1
    ids = lut[mask]
    return ids, int(np.count_nonzero(ids == IGNORE_INDEX))


def index_to_binary_mask(ids: np.ndarray) -> np.ndarray:
    """Encodes ids as a 0/255 mask: 1 -> 255; 0, ignore and others -> 0."""
    ids = _check_ids(ids)
    return np.where(ids == 1, np.uint8(255), np.uint8(0))


def check_index_mask(ids: np.ndarray,
                     num_classes: int) -> tuple[np.ndarray, int]:
    """Validates a class-id mask.

    Args:
      ids: [H,W] integer class ids (any integer dtype).
      num_classes: K; ids 0..K-1 and `IGNORE_INDEX` are valid.

    Returns:
      ids: [H,W] uint8, invalid values replaced by `IGNORE_INDEX`.
      num_bad: number of replaced pixels.
    """
    if not 1 <= int(num_classes) <= IGNORE_INDEX:
        raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX}, got "
                         f"{num_classes}.")
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"Expected an integer class-id mask, got dtype "
                         f"{ids.dtype}.")
    bad = ((ids < 0) | (ids >= num_classes)) & (ids != IGNORE_INDEX)
    out = np.where(bad, IGNORE_INDEX, ids).astype(np.uint8)
    return out, int(np.count_nonzero(bad))


def colorize_tf(ids, palette: Sequence[Sequence[int]],
                ignore_color: Sequence[int] = (0, 0, 0)):
    """TensorFlow twin of `index_to_rgb`, e.g. for TensorBoard images.

    Args:
      ids: tf integer tensor [...,H,W]; ids outside 0..K-1 (ignore included)
        get `ignore_color`.
      palette: K (r, g, b) colours.

    Returns:
      tf.uint8 tensor [...,H,W,3].
    """
    # Imported here so the NumPy codecs (and the demo-data tool) load fast.
    import tensorflow as tf

    lut = tf.constant(_color_lut(_validate_palette(palette),
                                 tuple(int(c) for c in ignore_color)))
    ids = tf.cast(ids, tf.int32)
    ids = tf.where((ids < 0) | (ids > 255), IGNORE_INDEX, ids)
    return tf.gather(lut, ids)
