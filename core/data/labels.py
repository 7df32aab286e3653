"""Label specs and encoders: what class ids mean and how they are drawn.

Class ids are `0..K-1` in a uint8 [H,W] array; `IGNORE_INDEX` (255) marks
pixels that losses and metrics skip (its one home). A `LabelSpec` names a
data set's classes with their display colours and raw encodings (the data
sets' specs live in `core.data.datasets`, a user's come from
`core.data.classes`); `index_to_rgb` / `colorize_tf` draw ids in the
palette. Reading label rasters into ids is `core.data.label_decode`.
"""
from __future__ import annotations

import dataclasses
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
        raw = [int(v) for v in self.raw_ids]
        if len(set(raw)) != len(raw) or not all(0 <= v <= 65535 for v in raw) \
                or set(raw) & set(self.ignore_values) \
                or set(self.palette) & set(map(tuple, self.ignore_colors)):
            raise ValueError(
                f"LabelSpec {self.name!r}: ids {raw} must be distinct values "
                f"in 0..65535, none of them an ignore value "
                f"{list(self.ignore_values)}, and no class colour an ignore "
                f"colour {list(self.ignore_colors)}.")
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


def _color_lut(palette: tuple[Color, ...], ignore_color: Color) -> np.ndarray:
    """uint8 [256, 3]: class id -> colour; ids outside the palette -> ignore."""
    lut = np.empty((256, 3), dtype=np.uint8)
    lut[:] = ignore_color
    lut[:len(palette)] = palette
    return lut


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


def index_to_binary_mask(ids: np.ndarray) -> np.ndarray:
    """Encodes ids as a 0/255 mask: 1 -> 255; 0, ignore and others -> 0."""
    ids = _check_ids(ids)
    return np.where(ids == 1, np.uint8(255), np.uint8(0))


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
