"""Peak memory of `tools.predict --stream` on a raster larger than memory.

  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_stream_memory \\
      [--size 30000 --bands 4 --files 4 --window 512 --block 2048 --root /tmp/bench]

Writes a --size x --size x --bands uint8 raster as --files x --files tiled
GeoTIFFs and a VRT mosaic of them (tools/shards.write_vrt: what
gdalbuildvrt writes), written by window so this process never holds it,
and a workdir with a U-Net of random weights (6 classes, filters 8, depth 4:
the weights do not change the memory of the predictor). Then two child
processes run `tools.predict --stream` with the same flags: on a crop of
2 x 2 windows (the baseline: Python, TensorFlow, the model, the activations
of one full batch of 4 windows) and on the VRT. Reported as JSON: each child's peak RSS
(getrusage of the children), wall time, the bound of
core.streaming.peak_memory_bytes, and whether the large run's growth over
the baseline stays under it.

The default 30000 x 30000 x 4 case (3.6 GB of pixels, 14.4 GB as float32)
takes long on a CPU (the model runs on 0.9 gigapixels times the overlap);
tests/tools/test_stream_memory.py runs it at 4096 x 4096 with a tiny model.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_mosaic(root: str, size: int, bands: int, files: int) -> str:
    """--files^2 tiles of blocky random pixels and their VRT; returns the VRT."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from tools import shards
    rng = np.random.default_rng(0)
    edges = np.linspace(0, size, files + 1).astype(int)
    paths = []
    for i in range(files):
        for j in range(files):
            h, w = edges[i + 1] - edges[i], edges[j + 1] - edges[j]
            path = os.path.join(root, f"tile_{i}_{j}.tif")
            paths.append(path)
            if os.path.exists(path):
                continue
            with rasterio.open(path + ".part.tif", "w", driver="GTiff", height=h, width=w,
                               count=bands, dtype="uint8", crs="EPSG:25832", tiled=True,
                               photometric="MINISBLACK",  # GDAL's default: RGB + alpha
                               blockxsize=512, blockysize=512, compress="deflate",
                               transform=from_origin(edges[j] * 0.1, 1e5 - edges[i] * 0.1,
                                                     0.1, 0.1)) as ds:
                for row in range(0, h, 1024):  # by strips: never the whole tile
                    rows = min(1024, h - row)
                    coarse = rng.integers(0, 256, (bands, rows // 16 + 1, w // 16 + 1),
                                          dtype=np.uint8)
                    strip = np.kron(coarse, np.ones((1, 16, 16), np.uint8))[:, :rows, :w]
                    ds.write(strip, window=Window(0, row, w, rows))
            os.replace(path + ".part.tif", path)
    vrt = os.path.join(root, f"mosaic_{size}.vrt")
    shards.write_vrt(paths, vrt)
    return vrt


def write_crop(root: str, vrt: str, side: int) -> str:
    import rasterio
    from rasterio.windows import Window
    path = os.path.join(root, f"crop_{side}.tif")
    with rasterio.open(vrt) as src:
        window = Window(0, 0, side, side)
        profile = dict(driver="GTiff", height=side, width=side, count=src.count,
                       dtype="uint8", photometric="MINISBLACK", crs=src.crs,
                       transform=src.window_transform(window))
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return path


def write_model(root: str, bands: int, classes: int, filters: int, depth: int) -> str:
    """A workdir with a random U-Net (the tests' make_workdir, self-contained)."""
    import tensorflow as tf
    from layers import UNet
    from train_loop import workdir as workdir_lib
    workdir = os.path.join(root, "model")
    names = list("RGBI")[:bands] if bands <= 4 else [f"b{i}" for i in range(bands)]
    kwargs = {"num_classes": classes, "in_channels": bands, "filters": filters,
              "depth": depth}
    data = {"dataset": "bench", "class_names": [f"class{k}" for k in range(classes)],
            "palette": [[(37 * k) % 256, (91 * k) % 256, (53 * k) % 256]
                        for k in range(classes)],
            "bands": names, "mean": [128.0] * bands, "std": [60.0] * bands}
    model = UNet(**kwargs, mean=data["mean"], std=data["std"])
    model(tf.zeros([1, 2 ** depth, 2 ** depth, bands]), training=False)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(scale=0.3, size=v.shape).astype(np.float32))
    workdir_lib.write_config(workdir, {"model": kwargs, "data": data})
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               workdir_lib.checkpoint_dir(workdir, "best"), 1).save()
    return workdir


def run(model: str, path: str, out: str, args) -> dict:
    """One tools.predict --stream child: its wall time and the children's peak RSS."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
               GDAL_CACHEMAX=str(args.gdal_cache_mb))
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "tools.predict", f"--model={model}",
                           f"--input={path}", f"--output_dir={out}", "--stream",
                           f"--window={args.window}", f"--block={args.block}",
                           f"--overlap={args.overlap}"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"tools.predict failed on {path}:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return {"seconds": round(time.time() - start, 1), "peak_rss_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=30000)
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--files", type=int, default=4, help="tiles per side of the VRT")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--gdal_cache_mb", type=int, default=64,
                        help="GDAL_CACHEMAX of the children (MB), part of the bound")
    parser.add_argument("--model", default=None, help="a workdir (default: a random U-Net)")
    parser.add_argument("--root", default="/tmp/bench_stream_memory")
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from core import streaming

    os.makedirs(args.root, exist_ok=True)
    vrt = write_mosaic(args.root, args.size, args.bands, args.files)
    # Two windows a side: at least 4 windows, one full batch, so the baseline
    # holds the model's activations for a batch as the large run does.
    crop = write_crop(args.root, vrt, min(args.size, 2 * args.window))
    model = args.model or write_model(args.root, args.bands, args.classes, args.filters,
                                      args.depth)
    with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
        classes = len(json.load(f)["data"]["class_names"])
    # The baseline first: RUSAGE_CHILDREN's maximum then only rises for the large run.
    small = run(model, crop, os.path.join(args.root, "out_small"), args)
    large = run(model, vrt, os.path.join(args.root, "out"), args)
    bound = streaming.peak_memory_bytes(window=args.window, overlap=args.overlap,
                                        batch_size=4, channels=args.bands,
                                        num_classes=classes, block=args.block,
                                        gdal_cache_mb=args.gdal_cache_mb)
    growth = large["peak_rss_bytes"] - small["peak_rss_bytes"]
    print(json.dumps({
        "raster": f"{args.size}x{args.size}x{args.bands} uint8, VRT of {args.files ** 2} "
                  "GeoTIFFs",
        "window": args.window, "overlap": args.overlap, "block": args.block,
        "classes": classes, "gdal_cache_mb": args.gdal_cache_mb,
        "baseline": small, "large": large, "growth_bytes": max(growth, 0),
        "bound_bytes": bound, "within_bound": growth <= bound["total"],
        "large_peak_gib": round(large["peak_rss_bytes"] / 2 ** 30, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
