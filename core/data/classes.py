"""Class files: a user's own classes for `--classes=FILE` (JSON or CSV).

JSON (a bare list of classes is accepted too):

    {"name": "dubai",
     "classes": [{"name": "building", "color": "#3C1098", "id": 1}, ...],
     "ignore": [{"color": [155, 155, 155]}, {"id": 0}],
     "exclude_from_mean": ["clutter"]}

CSV, one class a row, header naming the columns (any order, any case):
`name` and at least one of `id` (alias `value`), `color` (alias `colour`,
or three columns `r`,`g`,`b`); optional `exclude_from_mean` (yes/true/1/x).
A row named `ignore` (or `ignore:<note>`) declares an ignore value and/or
colour instead of a class. Lines starting with `#` are comments; `;` or tab
also work as the delimiter.

Meanings (`core.data.labels.LabelSpec`): class i is the i-th class listed;
`id` is its value in a single-band label (no ids anywhere: 0..K-1), `color`
its colour in an RGB label and on screen (no colour: a distinct display
colour is chosen, the same every run). Colours are "#rrggbb", "r,g,b" or
[r, g, b]. Ids lie in 0..65535; 255 may be a class value (INRIA's
buildings), otherwise a 255 pixel is ignore. Names are normalised for file
names and TensorBoard tags: runs of characters other than letters, digits,
`_ . -` become `_` ("Low vegetation" -> "Low_vegetation").

Every mistake raises ClassFileError: one line naming the file, the line
(CSV) or entry (JSON) and what was expected.
"""
from __future__ import annotations

import colorsys
import csv
import io
import json
import os
import re
from pathlib import Path

from core.data.labels import IGNORE_INDEX, LabelSpec

_HEX = re.compile(r"#?([0-9a-fA-F]{6})")
_NAME_JUNK = re.compile(r"[^A-Za-z0-9_.\-]+")
_TRUE, _FALSE = ("yes", "true", "1", "x", "y"), ("", "no", "false", "0", "n")
# Well-separated colours (Tableau 10) for classes listed without one.
_DISPLAY = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
            (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
            (188, 189, 34), (23, 190, 207))


class ClassFileError(ValueError):
    """A class file that cannot be read (one line naming the file and entry)."""


def parse_color(value) -> tuple[int, int, int]:
    """"#rrggbb", "r,g,b" (brackets, parentheses, spaces allowed) or [r,g,b].

    Raises ValueError saying what was expected.
    """
    parts = value
    if isinstance(value, str):
        text = value.strip()
        match = _HEX.fullmatch(text)
        if match:
            h = match.group(1)
            return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
        parts = [p for p in re.split(r"[\s,;]+", text.strip("[]() ")) if p]
    if isinstance(parts, (list, tuple)) and len(parts) == 3:
        try:
            rgb = tuple(int(str(c).strip()) for c in parts)
        except ValueError:
            rgb = None
        if rgb is not None and all(0 <= c <= 255 for c in rgb):
            return rgb
    raise ValueError(f"colour {value!r} is not \"#rrggbb\", \"r,g,b\" or "
                     "[r, g, b] with values 0..255")


def _parse_id(value) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+", text) \
            or int(text) > 65535:
        raise ValueError(f"id {value!r} is not a whole number in 0..65535")
    return int(text)


def normalise_name(name) -> str:
    """A class name safe in file names and TensorBoard tags (see module doc)."""
    clean = _NAME_JUNK.sub("_", str(name).strip()).strip("_.-")
    if not clean:
        raise ValueError(f"class name {name!r} has no letters or digits")
    return clean


def display_colors(count: int, taken=()) -> list[tuple[int, int, int]]:
    """`count` distinct colours, none in `taken` nor black: the same every run."""
    taken, out = set(map(tuple, taken)) | {(0, 0, 0)}, []
    candidates = list(_DISPLAY)
    for i in range(4096):  # golden-ratio hues, alternating lightness
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65,
                                      0.95 if i % 2 else 0.75)
        candidates.append((round(r * 255), round(g * 255), round(b * 255)))
    for colour in candidates:
        if len(out) == count:
            break
        if colour not in taken:
            taken.add(colour)
            out.append(colour)
    return out


def _build(path: Path, name: str, classes: list, ignore: list,
           excluded: list) -> LabelSpec:
    """classes: [(where, name, id|None, colour|None, excluded)];
    ignore: [(where, id|None, colour|None)]; excluded: [(where, name)]."""
    def fail(where, what):
        raise ClassFileError(f"{path}: {where}: {what}.")
    if not 2 <= len(classes) <= IGNORE_INDEX:
        fail("classes", f"expected 2..{IGNORE_INDEX} classes, found {len(classes)}")
    names, ids, colours, seen = [], [], [], {}
    for where, cname, cid, colour, _ in classes:
        if cname.lower() in seen:
            fail(where, f"class name {cname!r} repeats {seen[cname.lower()]} "
                 "(names are compared ignoring case); expected distinct names")
        if cname.lower() == "ignore" or cname.lower().startswith("ignore:"):
            fail(where, "'ignore' is reserved for ignore entries; expected a "
                 "class name")
        seen[cname.lower()] = where
        names.append(cname)
        ids.append(cid)
        colours.append(colour)
    if any(i is None for i in ids) and any(i is not None for i in ids):
        where = classes[[i is None for i in ids].index(True)][0]
        fail(where, "no id while other classes have one; expected an id for "
             "every class or for none (then ids are 0..K-1)")
    for where, value, _ in ignore:
        if ids[0] is None and value is not None and value < len(classes):
            fail(where, f"id {value} is class {names[value]!r} (classes listed "
                 "without ids are 0..K-1); expected an id for every class")
    ignore_ids = [i for _, i, _ in ignore if i is not None]
    ignore_colours = [c for _, _, c in ignore if c is not None]
    owner = {}
    for where, value in [(c[0], ("id", c[2])) for c in classes] + \
            [(c[0], ("colour", c[3])) for c in classes] + \
            [(w, ("id", i)) for w, i, _ in ignore] + \
            [(w, ("colour", c)) for w, _, c in ignore]:
        if value[1] is None:
            continue
        if value in owner:
            shown = value[1] if value[0] == "id" else "(%d,%d,%d)" % value[1]
            fail(where, f"{value[0]} {shown} is already used by "
                 f"{owner[value]}; expected each {value[0]} once")
        owner[value] = where
    fill = iter(display_colors(colours.count(None),
                               [c for c in colours if c] + ignore_colours))
    palette = tuple(c if c is not None else next(fill) for c in colours)
    excluded = [n for _, n, _, _, e in classes if e] + \
        [_name_in(names, where, n, fail) for where, n in excluded]
    try:
        return LabelSpec(
            name=name, class_names=tuple(names), palette=palette,
            ids=None if ids[0] is None else tuple(ids),
            ignore_values=tuple(ignore_ids), ignore_colors=tuple(ignore_colours),
            excluded_from_mean=tuple(dict.fromkeys(excluded)))
    except ValueError as err:  # checks the lines above missed, still one line
        raise ClassFileError(f"{path}: {err}") from None


def _name_in(names, where, name, fail) -> str:
    lowered = {n.lower(): n for n in names}
    try:
        key = normalise_name(name).lower()
    except ValueError as err:
        fail(where, err)
    if key not in lowered:
        fail(where, f"{name!r} is not a class; expected one of {names}")
    return lowered[key]


def _flag(value) -> bool:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in _TRUE + _FALSE:
        return bool(value) if isinstance(value, bool) else text in _TRUE
    raise ValueError(f"exclude_from_mean {value!r} is not yes/no")


def _from_json(path: Path, text: str) -> LabelSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClassFileError(f"{path}: line {err.lineno} column {err.colno}: "
                             f"not valid JSON ({err.msg}).") from None
    if isinstance(data, list):
        data = {"classes": data}
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ClassFileError(f"{path}: expected a JSON object with a "
                             "\"classes\" list, or a bare list of classes.")
    extra = set(data) - {"name", "classes", "ignore", "exclude_from_mean"}
    if extra:
        raise ClassFileError(f"{path}: unknown key(s) {sorted(extra)}; expected "
                             "name, classes, ignore, exclude_from_mean.")
    classes, ignore = [], []
    for kind, entries in (("classes", data["classes"]),
                          ("ignore", data.get("ignore", []))):
        if not isinstance(entries, list):
            raise ClassFileError(f"{path}: \"{kind}\" must be a list.")
        for n, entry in enumerate(entries):
            where = f"{kind}[{n}]"
            try:
                if kind == "ignore" and not isinstance(entry, dict):
                    entry = ({"id": entry} if isinstance(entry, int)
                             else {"color": entry})
                if not isinstance(entry, dict):
                    raise ValueError("expected an object like {\"name\": "
                                     "\"building\", \"color\": \"#3C1098\"}")
                keys = {k.lower(): v for k, v in entry.items()}
                keys = {{"colour": "color", "value": "id"}.get(k, k): v
                        for k, v in keys.items()}
                bad = set(keys) - {"name", "id", "color", "exclude_from_mean"}
                if bad:
                    raise ValueError(f"unknown key(s) {sorted(bad)}; expected "
                                     "name, id, color, exclude_from_mean")
                cid = None if keys.get("id") is None else _parse_id(keys["id"])
                colour = (None if keys.get("color") is None
                          else parse_color(keys["color"]))
                if kind == "ignore":
                    if cid is None and colour is None:
                        raise ValueError("expected an id and/or a color")
                    ignore.append((where, cid, colour))
                    continue
                if "name" not in keys:
                    raise ValueError("expected a \"name\"")
                classes.append((where, normalise_name(keys["name"]), cid,
                                colour, _flag(keys.get("exclude_from_mean", ""))))
            except ValueError as err:
                raise ClassFileError(f"{path}: {where}: {err}.") from None
    excluded = data.get("exclude_from_mean", [])
    if not isinstance(excluded, list):
        raise ClassFileError(f"{path}: \"exclude_from_mean\" must be a list "
                             "of class names.")
    name = _safe_name(path, data.get("name"))
    return _build(path, name, classes, ignore,
                  [(f"exclude_from_mean[{i}]", n) for i, n in enumerate(excluded)])


def _from_csv(path: Path, text: str) -> LabelSpec:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ClassFileError(f"{path}: empty; expected a header such as "
                             "name,id,color and one row per class.")
    header_line = lines[0][1]
    delimiter = next((d for d in ",;\t" if d in header_line), ",")
    rows = list(csv.reader(io.StringIO("\n".join(l for _, l in lines)),
                           delimiter=delimiter))
    header = [{"colour": "color", "value": "id"}.get(h.strip().lower(),
                                                     h.strip().lower())
              for h in rows[0]]
    known = {"name", "id", "color", "r", "g", "b", "exclude_from_mean"}
    has_rgb = {"r", "g", "b"} <= set(header)
    if "name" not in header or not ({"id", "color"} & set(header) or has_rgb) \
            or set(header) - known or len(set(header)) != len(header):
        raise ClassFileError(
            f"{path}: line {lines[0][0]}: header {rows[0]}; expected distinct "
            "columns name and id and/or color (or r,g,b), optionally "
            "exclude_from_mean.")
    classes, ignore = [], []
    for (line_no, _), row in zip(lines[1:], rows[1:]):
        where = f"line {line_no}"
        if len(row) != len(header):
            raise ClassFileError(f"{path}: {where}: {len(row)} cells for "
                                 f"{len(header)} columns {header}; quote a "
                                 "colour r,g,b as \"r,g,b\".")
        cell = {h: v.strip() for h, v in zip(header, row)}
        try:
            cid = _parse_id(cell["id"]) if cell.get("id") else None
            colour = None
            if cell.get("color"):
                colour = parse_color(cell["color"])
            elif has_rgb and any(cell[k] for k in "rgb"):
                colour = parse_color([cell[k] for k in "rgb"])
            raw_name = cell["name"]
            if raw_name.lower() == "ignore" or raw_name.lower().startswith("ignore:"):
                if cid is None and colour is None:
                    raise ValueError("an ignore row needs an id and/or a color")
                ignore.append((where, cid, colour))
                continue
            classes.append((where, normalise_name(raw_name), cid, colour,
                            _flag(cell.get("exclude_from_mean", ""))))
        except ValueError as err:
            raise ClassFileError(f"{path}: {where}: {err}.") from None
    return _build(path, _safe_name(path, None), classes, ignore, [])


def _safe_name(path: Path, name) -> str:
    try:
        return normalise_name(path.stem if name is None else name)
    except ValueError as err:
        raise ClassFileError(f"{path}: \"name\": {err}.") from None


def load_class_file(path: str | os.PathLike) -> LabelSpec:
    """Reads a class file (JSON or CSV, see the module docstring).

    Args:
      path: the file; ".json" is JSON, ".csv"/".tsv"/".txt" CSV, any other
        suffix is JSON when it starts with "{" or "[".

    Returns:
      The LabelSpec: class names in file order (class i = i-th class), palette,
      ids (None when the file gives none), ignore values and colours, classes
      left out of the means.

    Raises:
      ClassFileError (a ValueError): one line naming the file, the line or
        entry, and what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ClassFileError(f"{path}: class file not found; expected a .json "
                             "or .csv file listing the classes.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ClassFileError(f"{path}: cannot read the class file as UTF-8 "
                             f"text ({err}).") from None
    suffix = path.suffix.lower()
    is_json = suffix == ".json" or (suffix not in (".csv", ".tsv", ".txt")
                                    and text.lstrip()[:1] in ("{", "["))
    return _from_json(path, text) if is_json else _from_csv(path, text)
