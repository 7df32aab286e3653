"""Class rasters -> polygons a GIS opens (GeoPackage, GeoJSON).

Polygonising is GDAL's (rasterio.features.shapes, 4-connected regions of
equal class, holes as interior rings, in map coordinates through the
raster's transform); geometry is shapely's; writing is GDAL's OGR drivers
through pyogrio. All three come with the `geo` extra.

Per polygon:
  class_name        the class of its pixels;
  area              of the written (simplified) geometry, in squared map units;
  pixels            its pixel count before simplification;
  mean_probability  the mean, over its pixels, of the predicted probability of
                    its class (when probabilities are given; else NaN).

`min_area` (squared map units) drops polygons whose pixel area (pixels times
the pixel's area) is smaller, before simplification. `simplify` (map units)
is Douglas-Peucker with topology preserved per polygon (shapely
`simplify(preserve_topology=True)`): no self-intersections, holes kept, and
every vertex of the pixel outline stays within `simplify` of the simplified
outline. Neighbouring polygons are simplified independently, so their
shared edges may part by up to the tolerance.

Memory: the class raster, an int32 polygon-id raster and the probability of
each pixel's class (float32): 9 bytes per pixel, plus the geometries.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Sequence

import numpy as np

from core.cog import require_rasterio

DRIVERS = {"gpkg": ("GPKG", ".gpkg"), "geojson": ("GeoJSON", ".geojson")}
FIELDS = ("class_name", "area", "pixels", "mean_probability")


def _geo_modules(what: str):
    rasterio = require_rasterio(what)
    try:
        import pyogrio  # pylint: disable=import-outside-toplevel
        import shapely  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ImportError(f"{what} needs shapely and pyogrio: "
                          "pip install 'ortholoop[geo]'") from None
    return rasterio, shapely, pyogrio


@dataclasses.dataclass
class Layer:
    """The polygons of one class: shapely geometries and their attributes."""
    class_name: str
    geometries: list
    pixels: list
    mean_probability: list

    @property
    def areas(self) -> list:
        return [float(g.area) for g in self.geometries]


def polygonize(classes: np.ndarray, class_names: Sequence[str], *, transform=None,
               probabilities: np.ndarray | None = None,
               class_probability: np.ndarray | None = None,
               keep: Sequence[str] | None = None, simplify: float = 0.0,
               min_area: float = 0.0) -> dict[str, Layer]:
    """Polygons of a class raster, one Layer per class.

    Args:
      classes: [H,W] uint8 class ids; ids >= len(class_names) (the no-data
        255) give no polygons.
      class_names: the K class names (layer names).
      transform: rasterio Affine of the raster (None: pixel coordinates).
      probabilities: [H,W,K] float (0..1) or uint8 (probability * 255).
      class_probability: instead, [H,W] the probability of each pixel's class
        (float 0..1 or uint8 * 255), what a streamed prediction keeps.
      keep: class names to polygonise (default all).
      simplify: Douglas-Peucker tolerance in map units (0: the pixel outlines).
      min_area: smallest polygon kept, squared map units (pixel area).
    Returns:
      {class name: Layer}, in class order, a Layer (maybe empty) per kept class.
    Raises:
      ValueError: an unknown class in `keep`, a negative tolerance or area.
    """
    rasterio, shapely, _ = _geo_modules("polygons (--vector)")
    from rasterio import features  # pylint: disable=import-outside-toplevel
    names = list(class_names)
    keep = names if keep is None else list(keep)
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise ValueError(f"classes {unknown} are not among the model's classes {names}")
    if simplify < 0 or min_area < 0:
        raise ValueError(f"simplify ({simplify}) and min_area ({min_area}) must be >= 0")
    classes = np.ascontiguousarray(classes, np.uint8)
    transform = transform if transform is not None else rasterio.Affine.identity()
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    wanted = np.zeros(256, bool)
    wanted[[names.index(k) for k in keep]] = True
    found = list(features.shapes(classes, mask=wanted[classes], connectivity=4,
                                 transform=transform))
    # Each pixel's polygon (1-based; the unsimplified outlines are pixel-exact,
    # so rasterising them by pixel centre gives back the regions). GeoJSON
    # dicts go to GDAL as they are, and to shapely in one call: per-polygon
    # shapely objects cost more than the polygonising itself.
    ids = features.rasterize(((g, i + 1) for i, (g, _) in enumerate(found)),
                             out_shape=classes.shape, transform=transform, fill=0,
                             dtype="int32") if found else np.zeros(classes.shape, np.int32)
    geometries = shapely.get_parts(shapely.from_geojson(json.dumps(
        {"type": "GeometryCollection", "geometries": [g for g, _ in found]}))) if found else []
    shapes = [(g, int(v)) for g, (_, v) in zip(geometries, found)]
    counts = np.bincount(ids.ravel(), minlength=len(shapes) + 1)
    if probabilities is not None or class_probability is not None:
        own = (_own_class_probability(classes, probabilities, len(names))
               if probabilities is not None else _scaled(class_probability, classes))
        sums = np.bincount(ids.ravel(), weights=own.ravel(), minlength=len(shapes) + 1)
        means = sums / np.maximum(counts, 1)
    else:
        means = np.full(len(shapes) + 1, np.nan)
    layers = {k: Layer(k, [], [], []) for k in keep}
    for i, (geom, value) in enumerate(shapes):
        if counts[i + 1] * pixel_area < min_area:
            continue
        if simplify > 0:
            geom = geom.simplify(simplify, preserve_topology=True)
        layer = layers[names[value]]
        layer.geometries.append(geom)
        layer.pixels.append(int(counts[i + 1]))
        layer.mean_probability.append(float(means[i + 1]))
    return layers


def _own_class_probability(classes, probabilities, num_classes) -> np.ndarray:
    """[H,W] float32 probability of each pixel's class (0 where no class)."""
    probabilities = np.asarray(probabilities)
    if probabilities.shape != classes.shape + (num_classes,):
        raise ValueError(f"probabilities of shape {probabilities.shape}; expected "
                         f"{classes.shape + (num_classes,)}")
    index = np.minimum(classes, num_classes - 1)[..., None].astype(np.intp)
    own = np.take_along_axis(probabilities, index, axis=-1)[..., 0].astype(np.float32)
    if probabilities.dtype == np.uint8:
        own /= 255.0
    own[classes >= num_classes] = 0.0
    return own


def _scaled(class_probability, classes) -> np.ndarray:
    """[H,W] probability of the own class as float32 0..1 (0 where no class)."""
    if class_probability.shape != classes.shape:
        raise ValueError(f"class_probability of shape {class_probability.shape}; expected "
                         f"{classes.shape}")
    own = class_probability.astype(np.float32)
    if class_probability.dtype == np.uint8:
        own /= 255.0
    return own


def vector_paths(stem: str, fmt: str, layer_names: Sequence[str]) -> list[str]:
    """The files `write_layers` writes: <stem>.gpkg, or <stem>_<class>.geojson
    per class (GeoJSON holds one layer per file)."""
    if fmt not in DRIVERS:
        raise ValueError(f"vector format {fmt!r}; expected one of {sorted(DRIVERS)}")
    if fmt == "gpkg":
        return [stem + ".gpkg"]
    return [f"{stem}_{_safe(name)}.geojson" for name in layer_names]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def write_layers(stem: str, layers: dict[str, Layer], fmt: str, crs=None) -> list[str]:
    """Writes the layers (see `vector_paths`), each file atomically.

    Args:
      stem: output path without extension.
      layers: {name: Layer} from `polygonize` (or merged ones).
      fmt: "gpkg" or "geojson".
      crs: rasterio CRS (or anything with to_wkt()) or None.
    Returns:
      the written paths.
    """
    _, shapely, pyogrio = _geo_modules("writing polygons")
    from pyogrio import raw  # pylint: disable=import-outside-toplevel
    del pyogrio
    driver, _ = DRIVERS[fmt]
    paths = vector_paths(stem, fmt, list(layers))
    wkt = crs.to_wkt() if crs is not None else None
    temporaries = []
    for n, (name, layer) in enumerate(layers.items()):
        path = paths[0] if fmt == "gpkg" else paths[n]
        temporary = path + ".part" + DRIVERS[fmt][1]
        if temporary not in temporaries:
            temporaries.append(temporary)
            if os.path.exists(temporary):  # a killed run's leftover
                os.remove(temporary)
        geometry = np.array(shapely.to_wkb(np.array(layer.geometries, dtype=object)),
                            dtype=object) if layer.geometries else np.array([], dtype=object)
        fields = [np.array([name] * len(layer.geometries), dtype=object),
                  np.array(layer.areas, np.float64), np.array(layer.pixels, np.int64),
                  np.array(layer.mean_probability, np.float64)]
        with warnings.catch_warnings():  # a raster without CRS gives a layer without
            warnings.filterwarnings("ignore", "'crs' was not provided")
            raw.write(temporary, geometry, fields, fields=list(FIELDS), layer=_safe(name),
                      driver=driver, crs=wkt, geometry_type="Polygon",
                      promote_to_multi=False, append=False)
    for temporary in temporaries:
        os.replace(temporary, temporary[:-len(".part" + DRIVERS[fmt][1])])
    return paths


def read_layers(path: str) -> dict[str, dict]:
    """{layer: {"geometry": [shapely], field: array}} of a vector file (for
    merging shards and for tests)."""
    _, shapely, pyogrio = _geo_modules("reading polygons")
    out = {}
    for name, _ in pyogrio.list_layers(path):
        meta, _, geometry, values = pyogrio.raw.read(path, layer=name)
        out[name] = {"geometry": list(shapely.from_wkb(geometry)) if len(geometry) else [],
                     "crs": meta["crs"]}
        out[name].update(zip(meta["fields"], values))
    return out
