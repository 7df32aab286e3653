"""Decoding label rasters into class ids: the one decoder `prepare` calls.

`decode_label(mask, spec, ...)` reads RGB colour masks, single-band class
values (any integer dtype), palette-indexed files and 2-class 0/255 or 0/1
masks against a `core.data.labels.LabelSpec`, counts unknown and declared
ignore pixels, and raises `LabelError` (one line naming the file, the values
found and the classes expected) when too many pixels match no class.
Split from `core.data.labels`, which keeps the spec type and the encoders.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from core.data.labels import IGNORE_INDEX, Color, LabelSpec


@functools.lru_cache(maxsize=8)
def _code_lut(palette: tuple[Color, ...]) -> np.ndarray:
    """uint8 [2**24]: packed colour code -> class id, IGNORE_INDEX elsewhere."""
    lut = np.full(1 << 24, IGNORE_INDEX, dtype=np.uint8)
    for class_id, (r, g, b) in enumerate(palette):
        lut[(r << 16) | (g << 8) | b] = class_id
    lut.flags.writeable = False
    return lut


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
