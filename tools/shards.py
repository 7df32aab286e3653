"""Many files on many machines: shards of the inputs, atomic outputs, merge.

A job over many rasters runs as N shards (processes, machines, array-job
tasks); shard i predicts the inputs sorted by path at positions i, i+N, ...,
so the shards cover every input exactly once whatever the order the file
system lists them in. N and i come from the flags, else from the scheduler:

  TF_CONFIG              {"cluster": {"chief": [..], "worker": [..]},
                          "task": {"type": "worker", "index": 1}}: N = chief +
                          workers, i = the task's position (chief first);
  SLURM_ARRAY_TASK_ID    with SLURM_ARRAY_TASK_COUNT (i = ID - SLURM_ARRAY_TASK_MIN);
  JOB_COMPLETION_INDEX   (a Kubernetes Indexed Job) with --num_shards for N.

Every output is written under a temporary name and moved onto its own with
os.replace (atomic on one file system), so an output that exists is
complete; a rerun skips the inputs whose outputs all exist and a killed job
resumes where it stopped.

`--merge`: a VRT mosaic of all class rasters (GDAL's VRT XML, what
gdalbuildvrt writes) and one vector file of all polygons.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator, Mapping, Sequence
from xml.sax.saxutils import escape


def from_environment(env: Mapping[str, str] = os.environ,
                     num_shards: int | None = None) -> tuple[int, int] | None:
    """(count, index) the scheduler's variables give, or None.

    Raises:
      ValueError: a malformed TF_CONFIG or a JOB_COMPLETION_INDEX without a
        count (num_shards).
    """
    if env.get("TF_CONFIG"):
        try:
            config = json.loads(env["TF_CONFIG"])
            cluster, task = config.get("cluster", {}), config["task"]
            order = [(kind, n) for kind in ("chief", "worker")
                     for n in range(len(cluster.get(kind, [])))]
            return len(order), order.index((task["type"], int(task["index"])))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"TF_CONFIG: expected a cluster with chief/worker tasks "
                             f"and this task's type and index ({err})") from None
    if env.get("SLURM_ARRAY_TASK_ID"):
        if not env.get("SLURM_ARRAY_TASK_COUNT"):
            raise ValueError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(env["SLURM_ARRAY_TASK_COUNT"]), int(env["SLURM_ARRAY_TASK_ID"]) - first
    if env.get("JOB_COMPLETION_INDEX"):
        if not num_shards:
            raise ValueError("JOB_COMPLETION_INDEX is set: give --num_shards (the Job's "
                             "completions) to split the inputs")
        return num_shards, int(env["JOB_COMPLETION_INDEX"])
    return None


def resolve(num_shards: int | None, shard_index: int | None,
            env: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(count, index): the flags, else the environment, else (1, 0)."""
    if shard_index is not None:
        count, index = num_shards or 1, shard_index
        where = "--shard_index"
    else:
        found = from_environment(env, num_shards)
        count, index = found if found else (num_shards or 1, 0)
        where = "the scheduler's task index"
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"{where}: shard {index} of {count}; expected 0 <= index < "
                         f"--num_shards")
    return count, index


def select(paths: Sequence[str], count: int, index: int) -> list[str]:
    """Shard `index` of `count`: the sorted paths at index, index + count, ..."""
    return sorted(paths)[index::count]


def partial_name(path: str) -> str:
    """The temporary name of an output: a.tif -> a.part.tif (same extension,
    so writers that read it still know the format)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.part{ext}"


@contextlib.contextmanager
def atomic(path: str) -> Iterator[str]:
    """Yields a temporary path to write; moves it onto `path` on success,
    removes it on error."""
    temporary = partial_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def complete(paths: Sequence[str]) -> bool:
    """True when every output exists (atomic writes: existing = complete)."""
    return all(os.path.isfile(p) for p in paths)


def write_vrt(paths: Sequence[str], out: str) -> dict:
    """A VRT mosaic of north-up rasters of one CRS, resolution, band count
    and dtype (what `gdalbuildvrt` builds); nodata pixels of one raster do
    not hide another's. Written atomically.

    Returns:
      {"width", "height", "transform"} of the mosaic.
    Raises:
      ValueError: no rasters, or one that differs from the first (named).
    """
    import rasterio  # pylint: disable=import-outside-toplevel
    if not paths:
        raise ValueError(f"{out}: no class rasters to merge")
    infos = []
    for path in paths:
        with rasterio.open(path) as ds:
            infos.append({"path": path, "crs": ds.crs, "t": ds.transform, "w": ds.width,
                          "h": ds.height, "count": ds.count, "dtype": ds.dtypes[0],
                          "nodata": ds.nodata, "block": ds.block_shapes[0],
                          "colormap": ds.colormap(1) if ds.count == 1 and _has_colormap(ds)
                          else None})
    first = infos[0]
    for info in infos[1:]:
        for key, what in (("crs", "CRS"), ("count", "band count"), ("dtype", "pixel type")):
            if info[key] != first[key]:
                raise ValueError(f"{info['path']}: {what} {info[key]} differs from "
                                 f"{first['path']}'s {first[key]}; cannot mosaic them")
        if (abs(info["t"].a - first["t"].a) > 1e-9 * abs(first["t"].a)
                or abs(info["t"].e - first["t"].e) > 1e-9 * abs(first["t"].e)
                or info["t"].b or info["t"].d):
            raise ValueError(f"{info['path']}: pixel size {info['t'].a, info['t'].e} differs "
                             f"from {first['path']}'s or is rotated; cannot mosaic them")
    sx, sy = first["t"].a, first["t"].e  # sy < 0: north-up
    left = min(i["t"].c for i in infos)
    top = max(i["t"].f for i in infos)
    right = max(i["t"].c + i["w"] * sx for i in infos)
    bottom = min(i["t"].f + i["h"] * sy for i in infos)
    width, height = round((right - left) / sx), round((bottom - top) / sy)
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if first["crs"] is not None:
        lines.append(f"  <SRS>{escape(first['crs'].to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{left!r}, {sx!r}, 0.0, {top!r}, 0.0, {sy!r}</GeoTransform>")
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16",
                 "float32": "Float32"}[first["dtype"]]
    out_dir = os.path.dirname(os.path.abspath(out))
    for band in range(1, first["count"] + 1):
        lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{band}">')
        if first["nodata"] is not None:
            lines.append(f"    <NoDataValue>{first['nodata']:g}</NoDataValue>")
        if first["colormap"]:
            lines.append("    <ColorInterp>Palette</ColorInterp>\n    <ColorTable>")
            for index in range(max(first["colormap"]) + 1):
                r, g, b, a = first["colormap"].get(index, (0, 0, 0, 0))
                lines.append(f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>')
            lines.append("    </ColorTable>")
        for info in infos:
            x_off = (info["t"].c - left) / sx
            y_off = (info["t"].f - top) / sy
            source = "ComplexSource" if first["nodata"] is not None else "SimpleSource"
            lines += [
                f"    <{source}>",
                f'      <SourceFilename relativeToVRT="1">'
                f"{escape(os.path.relpath(os.path.abspath(info['path']), out_dir))}"
                "</SourceFilename>",
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SourceProperties RasterXSize="{info["w"]}" RasterYSize="{info["h"]}" '
                f'DataType="{gdal_type}" BlockXSize="{info["block"][1]}" '
                f'BlockYSize="{info["block"][0]}"/>',
                f'      <SrcRect xOff="0" yOff="0" xSize="{info["w"]}" ySize="{info["h"]}"/>',
                f'      <DstRect xOff="{x_off:.10g}" yOff="{y_off:.10g}" '
                f'xSize="{info["w"]}" ySize="{info["h"]}"/>']
            if first["nodata"] is not None:
                lines.append(f"      <NODATA>{first['nodata']:g}</NODATA>")
            lines.append(f"    </{source}>")
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>\n")
    with atomic(out) as temporary, open(temporary, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return {"width": width, "height": height,
            "transform": (left, sx, 0.0, top, 0.0, sy)}


def _has_colormap(ds) -> bool:
    try:
        ds.colormap(1)
    except ValueError:  # rasterio: "NULL color table"
        return False
    return True
