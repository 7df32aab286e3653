"""DEPRECATED shim, to delete: the archive layouts moved to core.data.datasets.

Kept only so that core/data/prepare.py (the lead's file) runs unchanged
until it calls `core.data.datasets.find_sources` itself; then delete this
file. It maps the registry's answer back to the old interface:
`find_sources(dataset, src, elevation, eroded, label_spec) ->
(sources, default_bands, spec)` with mutable `Source(name, image, label,
elevation, val)` objects, for the three data sets the old prepare accepts.
"""
from __future__ import annotations

from pathlib import Path

from core.data import datasets
from core.data.tiles import TileError

POTSDAM_VAL_IDS = datasets.POTSDAM_VAL_IDS
POTSDAM_BANDS = datasets.POTSDAM.bands
INRIA_VAL_NUMBERS = datasets.INRIA_VAL_NUMBERS


class Source:
    """One tile's input files (old interface: one elevation, a val flag)."""

    def __init__(self, name, image, label, elevation=None, val=False):
        self.name, self.image, self.label = name, Path(image), Path(label)
        self.elevation = Path(elevation) if elevation else None
        self.val = val


def _missing_elevation(dataset: str, source: datasets.Source, elevation: str,
                       src: Path) -> TileError:
    if dataset == "potsdam":
        a, b = (int(v) for v in source.name.split("_")[-2:])
        pattern = (f"dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.*"
                   if elevation == "ndsm" else f"dsm_potsdam_{a:02d}_{b:02d}.tif")
        return TileError(f"No {elevation} for {source.image}: expected {pattern} "
                         f"under {src}.")
    return TileError(f"No elevation for {source.image}: expected "
                     f"{src / 'elevation'}/{source.name}.tif.")


def find_sources(dataset: str, src: Path, elevation: str, eroded,
                 label_spec: str | None):
    """Old interface over `datasets.find_sources` (see the module docstring)."""
    src = Path(src)
    record = datasets.get_dataset(dataset)
    found = datasets.find_sources(record, src, eroded=eroded)
    sources = []
    for s in found:
        elev = None
        if elevation != "none":
            # The old folder layout read elevation/ for either kind.
            elev = s.elevations.get(elevation) or (
                s.elevations.get("dsm") if dataset == "folder" else None)
            if elev is None:
                raise _missing_elevation(dataset, s, elevation, src)
        sources.append(Source(s.name, s.image, s.label, elev, s.split == "val"))
    spec = (datasets.get_dataset(label_spec).labels if label_spec is not None
            else record.labels)
    return sources, record.bands, spec
