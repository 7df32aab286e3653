"""Label specs and codecs: label rasters in any common encoding <-> class ids.

Class ids are `0..K-1` in a uint8 [H,W] array; `IGNORE_INDEX` (255) marks
pixels that losses and metrics skip. A `LabelSpec` names a data set's classes
with their display colours and raw encodings; `decode_label` is the one
decoder of label rasters (RGB colours as in ISPRS Potsdam, whose eroded
ground truth paints boundaries black = ignore; single-band class values such
as INRIA's 0/255 or 0/1 masks; palette-indexed PNG/TIFF), and
`index_to_rgb` / `colorize_tf` draw ids in the palette.

RGB pixels are packed into one 24-bit code and looked up in a 2**24-entry
uint8 table built once per palette (16 MiB, cached); single-band encodings
are decided per distinct value on the band's histogram. A 6000x6000 label
decodes in a fraction of a second with no Python loop over pixels.
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




# --- Decoding label rasters ---------------------------------------------------
# Every encoding but full-colour RGB is a function of ONE band value (a class
# value, a palette index, the grey level of an RGB mask with equal bands), so
# it is decided on that band's histogram: each distinct value is read once as
# a class id, declared ignore or unknown; the [H,W] ids are then one gather.


class LabelError(ValueError):
    """A label raster that does not match its LabelSpec (one line naming the file)."""


def _rgb(color) -> str:
    return "(%d,%d,%d)" % tuple(int(c) for c in color)


def _histogram(band: np.ndarray, valid: np.ndarray | None):
    """-> values [N] int64 sorted, counts [N] of valid pixels, index [H,W]
    (band == values[index])."""
    values = None
    if band.dtype not in (np.uint8, np.uint16):
        low, top = int(band.min()), int(band.max())
        if top - low >= 1 << 16:  # a sparse wide range (int32 ids): sort
            shape = band.shape
            values, band = np.unique(band, return_inverse=True)
            values, band = values.astype(np.int64), band.reshape(shape)
        else:
            values = np.arange(1 << 16, dtype=np.int64) + low
            band = (band.astype(np.int64) - low).astype(np.uint16)
    if values is None:
        values = np.arange(1 << (8 * band.itemsize), dtype=np.int64)
    counts = np.zeros(len(values), np.int64)
    for row in range(0, band.shape[0], 256):  # bounded int64 temporaries
        counts += np.bincount(band[row:row + 256].ravel(), minlength=len(values))
    if valid is not None:  # usually a thin border: subtract it
        counts -= np.bincount(band[~valid], minlength=len(values))
    return values, counts, band


@dataclasses.dataclass
class _Reading:
    """One way of reading a label: ids, counts, words for messages."""
    kind: str          # "values", "palette indices", "colours", ...
    expected: str      # the classes this reading expects
    unknown: int
    ignore: int
    class_pixels: int
    found: list        # [(description, pixels)] of unknown values, most first
    ids: object        # [H,W] uint8, or () -> it (only the chosen one is made)
    table: np.ndarray | None = None    # [N] class per histogram value
    ignored: np.ndarray | None = None  # [N] declared ignore per value


def _class_list(spec: LabelSpec, by_colour: bool) -> str:
    if by_colour:
        items = [f"{n}={_rgb(c)}" for n, c in zip(spec.class_names, spec.palette)]
        ignore = [_rgb(c) for c in spec.ignore_colors]
    else:
        items = [f"{n}={v}" for n, v in zip(spec.class_names, spec.raw_ids)]
        ignore = [str(v) for v in spec.ignore_values]
        ignore += [] if IGNORE_INDEX in spec.raw_ids else [str(IGNORE_INDEX)]
    return ", ".join(items) + (f"; ignore {', '.join(ignore)}" if ignore else "")


def _table_reading(hist, spec: LabelSpec, read, *, kind: str, by_colour: bool,
                   describe=str) -> _Reading:
    """Reads each present band value v as read(v): class id, "ignore" or None."""
    values, counts, index = hist
    table = np.full(len(values), IGNORE_INDEX, np.uint8)
    ignored = np.zeros(len(values), bool)
    for i in np.flatnonzero(counts):
        got = read(int(values[i]))
        if got == "ignore":
            ignored[i] = True
        elif got is not None:
            table[i] = got
    unknown = (counts > 0) & (table == IGNORE_INDEX) & ~ignored
    order = np.argsort(-counts[unknown], kind="stable")
    found = [(describe(int(v)), int(n))
             for v, n in zip(values[unknown][order], counts[unknown][order])]
    return _Reading(kind, _class_list(spec, by_colour), int(counts[unknown].sum()),
                    int(counts[ignored].sum()),
                    int(counts[table != IGNORE_INDEX].sum()), found,
                    lambda: table[index], table, ignored)


def _values_reading(hist, spec: LabelSpec, *, kind="values", describe=str):
    mapping = {int(raw): i for i, raw in enumerate(spec.raw_ids)}
    ignore = set(int(v) for v in spec.ignore_values)
    if IGNORE_INDEX not in mapping:
        ignore.add(IGNORE_INDEX)  # 255 is ignore unless it is a class value
    # A 0/255 binary spec (INRIA) also reads 0/1 masks: 1 is the second class
    # in a tile that holds no 255. A 0/1 spec keeps 255 = ignore, its meaning
    # everywhere in the project (declare id 255 to read 0/255 masks too).
    present = hist[0][hist[1] > 0]
    if sorted(mapping) == [0, 255] and 1 not in ignore \
            and 1 in present and 255 not in present:
        mapping[1] = mapping[255]
    return _table_reading(
        hist, spec, lambda v: mapping.get(v, "ignore" if v in ignore else None),
        kind=kind, by_colour=False, describe=describe)


def _colours_reading(hist, spec: LabelSpec, colours, *, kind: str, describe):
    """Reads band value v as the colour colours[v] (v outside: unknown)."""
    mapping = {tuple(c): i for i, c in enumerate(spec.palette)}
    mapping.update({tuple(c): "ignore" for c in spec.ignore_colors})

    def read(v):
        return mapping.get(tuple(int(c) for c in colours[v])) \
            if 0 <= v < len(colours) else None
    return _table_reading(hist, spec, read, kind=kind, by_colour=True,
                          describe=describe)


def _rgb_reading(rgb: np.ndarray, spec: LabelSpec, valid) -> _Reading:
    code = rgb[..., 0].astype(np.uint32)  # packed 0xRRGGBB, no [H,W,3] temps
    code <<= 8
    code |= rgb[..., 1]
    code <<= 8
    code |= rgb[..., 2]
    ids = _code_lut(spec.palette)[code]
    ignored = np.zeros(code.shape, bool)
    for r, g, b in spec.ignore_colors:
        ignored |= code == ((r << 16) | (g << 8) | b)
    classes = ids != IGNORE_INDEX
    if valid is not None:
        ignored &= valid
        classes &= valid
    codes, counts = np.unique(code[~classes & ~ignored & (
        True if valid is None else valid)], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    found = [(_rgb((c >> 16, (c >> 8) & 255, c & 255)), int(n))
             for c, n in zip(codes[order].tolist(), counts[order])]
    return _Reading("colours", _class_list(spec, True), int(counts.sum()),
                    int(np.count_nonzero(ignored)),
                    int(np.count_nonzero(classes)), found, ids)


def _differ(a: _Reading, b: _Reading, hist, spec: LabelSpec, describe,
            classes_only: bool) -> str | None:
    """Words for the first band value `a` and `b` read differently (only two
    different classes if classes_only), None when there is none."""
    both = (a.table != IGNORE_INDEX) & (b.table != IGNORE_INDEX)
    differ = (a.table != b.table) | (a.ignored != b.ignored)
    differ &= (hist[1] > 0) & (both if classes_only else True)
    if not differ.any():
        return None
    i = int(np.flatnonzero(differ)[0])

    def word(r: _Reading) -> str:
        c = int(r.table[i])
        return (f"class {c} ({spec.class_names[c]})" if c != IGNORE_INDEX
                else "ignore" if r.ignored[i] else "unknown")
    return (f"{describe(int(hist[0][i]))} is {word(a)} as {a.kind} but "
            f"{word(b)} as {b.kind}")


def decode_label(mask: np.ndarray, spec: LabelSpec, *,
                 palette: np.ndarray | None = None, path: str = "",
                 max_unknown_fraction: float = 0.01,
                 valid: np.ndarray | None = None
                 ) -> tuple[np.ndarray, dict[str, int]]:
    """Turns a label raster into class ids: the one label decoder.

    How a file is read (the file's layout decides, the spec gives meanings):
    - 3 bands: RGB colours; `spec.palette[i]` -> i, `spec.ignore_colors` ->
      IGNORE_INDEX. If the spec has explicit `ids` and the three bands are
      equal (a grey mask saved as RGB, e.g. an INRIA mask), the grey level is
      also read as a value; the reading with fewer unknown pixels is taken,
      and a tie between two readings that differ is ambiguous (LabelError).
    - 1 band: class values; `spec.raw_ids[i]` -> i, `spec.ignore_values` and
      255 (unless 255 is a class value) -> IGNORE_INDEX. A 2-class spec with
      values 0 and 255 also reads 0/1 masks.
    - 1 band + `palette` (a palette-indexed PNG/TIFF): the indices are class
      values, unless the spec gives its classes by colour only (`spec.ids` is
      None): then the file's colour table is read when it holds at least one
      class colour and leaves no more pixels unknown than the indices do.
    Whenever the reading taken and the other one would give some pixel two
    different classes, LabelError (no silent guess), except for a colour-only
    spec read through a colour table: there the colours are the definition.
    (Colour tables may carry an alpha column: it is not used.)

    Args:
      mask: [H,W,C] or [H,W] as `core.data.raster.read_raster` returns it:
        integer dtype (uint8, uint16, int16, ...), bool (1-bit: 0/1) or
        whole-valued float; C = 1 or 3.
      spec: the classes.
      palette: [M,3] colour table of a palette-indexed file, else None.
      path: the file, for messages.
      max_unknown_fraction: more unknown pixels than this fraction of the
        tile's valid pixels raise LabelError; fewer decode to IGNORE_INDEX
        (the caller warns).
      valid: [H,W] bool, False where the label file marks no data (its
        `Raster.valid`): those pixels decode to IGNORE_INDEX and are counted
        neither unknown nor ignore, whatever value they hold. None: all valid.

    Returns:
      ids: [H,W] uint8 class ids 0..K-1; IGNORE_INDEX for ignore and unknown.
      counts: {"unknown": pixels whose value is neither a class nor a
        declared ignore, "ignore": pixels of declared ignore values/colours}.

    Raises:
      LabelError (a ValueError): one line naming the file, the values found
        that match no class (up to 8, with pixel counts) and those expected.
    """
    mask, where = np.asarray(mask), path or "label"
    mask = mask[..., None] if mask.ndim == 2 else mask
    if mask.ndim != 3 or min(mask.shape) == 0:
        raise LabelError(f"{where}: expected a label [H,W] or [H,W,C], got "
                         f"shape {mask.shape}.")
    bands = mask.shape[-1]
    if bands not in (1, 3):
        extra = (" (RGB + another band: save transparency as an alpha band, "
                 "or drop the band)" if bands == 4 else "")
        raise LabelError(f"{where}: label has {bands} bands{extra}; expected 1 "
                         "(class values or palette indices) or 3 (RGB colours).")
    if valid is not None:
        valid = np.asarray(valid, bool)
        if valid.shape != mask.shape[:2]:
            raise LabelError(f"{where}: valid mask {valid.shape} for a label of "
                             f"{mask.shape[:2]}; expected the same size.")
        if valid.all():
            valid = None
        else:  # no-data pixels may hold anything (NaN, -9999): overwrite
            mask = mask.copy()
            mask[~valid] = mask[np.unravel_index(np.argmax(valid),
                                                 valid.shape)]
    if mask.dtype == bool:  # 1-bit files (PNG mode "1", bilevel TIFF)
        mask = mask.astype(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        if not (np.issubdtype(mask.dtype, np.floating) and np.isfinite(mask).all()
                and (mask == np.round(mask)).all()):
            raise LabelError(f"{where}: expected whole-number label values, got "
                             f"dtype {mask.dtype} with fractions or NaN.")
        mask = mask.astype(np.int64)
    if bands == 3:
        if mask.dtype != np.uint8 and (mask.min() < 0 or mask.max() > 255):
            raise LabelError(f"{where}: RGB label colours must lie in 0..255, "
                             f"got [{mask.min()}, {mask.max()}] ({mask.dtype}).")
        mask = mask.astype(np.uint8, copy=False)
        if spec.ids is not None and (mask[..., 0] == mask[..., 1]).all() \
                and (mask[..., 0] == mask[..., 2]).all():
            hist = _histogram(mask[..., 0], valid)
            grey = np.repeat(np.arange(256)[:, None], 3, axis=1)
            def grey_rgb(v):
                return _rgb((v, v, v))
            by_value = _values_reading(hist, spec, kind="grey values",
                                       describe=grey_rgb)
            by_colour = _colours_reading(hist, spec, grey, kind="colours",
                                         describe=grey_rgb)
            reading = (by_value if by_value.unknown < by_colour.unknown
                       else by_colour)
            clash = _differ(by_value, by_colour, hist, spec, grey_rgb,
                            by_value.unknown != by_colour.unknown)
            if clash:
                raise LabelError(
                    f"{where}: grey RGB label reads two ways for "
                    f"'{spec.name}': {clash}; expected one reading: drop the "
                    "ids from the class file if the labels are colours, or "
                    "the colours if they are values.")
        else:
            reading = _rgb_reading(mask, spec, valid)
    else:
        hist = _histogram(mask[..., 0], valid)
        if palette is None:
            reading = _values_reading(hist, spec)
        else:
            table = np.asarray(palette)
            if table.ndim != 2 or table.shape[1] not in (3, 4):
                raise LabelError(f"{where}: colour table of shape {table.shape}"
                                 "; expected [N,3] (r, g, b).")
            table = table[:, :3]

            def describe(v):
                return f"index {v}" + (f" {_rgb(table[v])}"
                                       if 0 <= v < len(table) else "")
            by_value = _values_reading(hist, spec, kind="palette indices",
                                       describe=describe)
            by_colour = _colours_reading(hist, spec, table, describe=describe,
                                         kind="palette colours")
            if spec.ids is None and by_colour.class_pixels > 0 \
                    and by_colour.unknown <= by_value.unknown:
                reading = by_colour  # the spec's classes ARE colours
            else:
                reading = by_value
                clash = _differ(by_value, by_colour, hist, spec, describe,
                                classes_only=True)
                if clash:
                    raise LabelError(
                        f"{where}: palette-indexed label contradicts "
                        f"'{spec.name}': {clash}; expected its colour table to "
                        "agree with the class ids (drop the colours from the "
                        "class file if the indices are right, or the ids if "
                        "the colours are).")
    total = mask.shape[0] * mask.shape[1] if valid is None else int(valid.sum())
    if reading.unknown > max_unknown_fraction * total:
        listed = ", ".join(f"{d}: {n} px" for d, n in reading.found[:8])
        more = len(reading.found) - 8
        raise LabelError(
            f"{where}: {reading.unknown} of {total} label pixels "
            f"({reading.unknown / total:.1%}) have {reading.kind} that match no "
            f"class of '{spec.name}': {listed}"
            + (f" and {more} more" if more > 0 else "")
            + f"; expected {reading.expected}.")
    ids = reading.ids() if callable(reading.ids) else reading.ids
    if valid is not None:
        ids[~valid] = IGNORE_INDEX
    return ids, {"unknown": reading.unknown, "ignore": reading.ignore}
