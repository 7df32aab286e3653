"""Reading a GeoTIFF: core.data.raster.read_raster against rasterio (GDAL).

  python -m benchmarks.bench_read [--size 2000 --bands 4 --compress LZW
      --repeats 7 --layout strips|tiled]

Writes one --size x --size x --bands uint8 GeoTIFF with rasterio (random
8x8 blocks: LZW compresses it about 1.6x, like an orthophoto), then times in the same process, alternating, --repeats times:

  read_raster   core.data.raster.read_raster(path) (tifffile + imagecodecs),
                returns [H,W,C];
  rasterio      rasterio.open(path).read() ([C,H,W], GDAL's native order),
                and the same followed by np.moveaxis(..., 0, -1) +
                np.ascontiguousarray (what a caller needing [H,W,C] pays).

Prints the median wall time of each and the ratio read_raster / rasterio;
checks that both read the same pixels. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import numpy as np


def _write(path: str, size: int, bands: int, compress: str, layout: str) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (bands, size // 8 + 1, size // 8 + 1), dtype=np.uint8)
    data = np.repeat(np.repeat(base, 8, 1), 8, 2)[:, :size, :size]
    options = {"tiled": True, "blockxsize": 256, "blockysize": 256} if layout == "tiled" else {}
    # ExtraSamples 0 for a 4th band: an RGB+IR orthophoto, not RGBA.
    photometric = {"photometric": "RGB", "alpha": "UNSPECIFIED"} if bands == 4 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", height=size, width=size,
                           count=bands, dtype="uint8", compress=compress,
                           crs="EPSG:25833",
                           transform=from_origin(368000, 5807000, 0.05, 0.05),
                           **photometric, **options) as dst:
            dst.write(data)


def _time(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--compress", default="LZW")
    parser.add_argument("--layout", choices=("strips", "tiled"), default="strips")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import rasterio
    from core.data.raster import read_raster

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.tif")
        _write(path, args.size, args.bands, args.compress, args.layout)
        mb = os.path.getsize(path) / 1e6

        def gdal_chw():
            with rasterio.open(path) as src:
                return src.read()

        def gdal_hwc():
            return np.ascontiguousarray(np.moveaxis(gdal_chw(), 0, -1))

        ours, chw, hwc = [], [], []
        for _ in range(args.repeats):   # alternate: the machine is shared and noisy
            t, mine = _time(lambda: read_raster(path).array)
            ours.append(t)
            t, ref = _time(gdal_chw)
            chw.append(t)
            t, _ = _time(gdal_hwc)
            hwc.append(t)
        if not np.array_equal(mine, np.moveaxis(ref, 0, -1)):
            raise SystemExit("read_raster and rasterio read different pixels")

    ours_s, chw_s, hwc_s = (statistics.median(v) for v in (ours, chw, hwc))
    print(f"{args.size}x{args.size}x{args.bands} uint8 {args.compress} {args.layout}, "
          f"{mb:.1f} MB on disk, median of {args.repeats}:")
    print(f"  read_raster (tifffile+imagecodecs) [H,W,C]  {ours_s * 1e3:8.1f} ms")
    print(f"  rasterio read()                     [C,H,W]  {chw_s * 1e3:8.1f} ms")
    print(f"  rasterio read() + to [H,W,C]                 {hwc_s * 1e3:8.1f} ms")
    print(f"  ratio read_raster / rasterio read():         {ours_s / chw_s:8.2f}")
    print(f"  ratio read_raster / rasterio + [H,W,C]:      {ours_s / hwc_s:8.2f}")


if __name__ == "__main__":
    main()
