"""Whole-tile prediction throughput and memory (core.inference).

  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_inference [--size 2048
      --window 256 --batch 4 --tta_size 512 --precision mixed_bfloat16 --no_memory]

Model: `layers.UNet(6 classes, 5 bands, filters=32, depth=4)` with random
weights (the weights do not change the cost), mixed_bfloat16 by default: on
this project's CPUs (AVX-512 BF16) it is about 2x faster than float32, which
keeps the default run near 3 minutes on 2 shared cores; --precision=float32
for the plain figures. On one random 5-band uint8
tile of --size pixels it times, in the same process:

  naive     non-overlapping windows one at a time: `model(window[None])` in
            eager mode, softmax and argmax in NumPy (how a notebook does it);
  single    `TilePredictor`, overlap 0, batch 1: the same graph one window at
            a time, to split the gain into graph-vs-eager and batching;
  batched   `TilePredictor`, overlap 0 (the same windows), batches of --batch
            in one tf.function, accumulation in NumPy;
  blended   `TilePredictor`, overlap 0.25 with Hann blending and reflected
            borders: more windows, plus the weighting and accumulation;
  tta8      blended with the 8 dihedral transforms, on a --tta_size crop
            (8x the model work: the whole 2048 tile would take several
            minutes on a CPU), compared with blended on the same crop.

Reported: megapixels/s (wall clock) and the CPU time of this process, and
the ratios behind the goals: batched >= 2x naive; blended per window <= 1.5x
batched per window ("beyond the extra windows it needs").

Memory (unless --no_memory): a child process predicts a 6000x6000x5 uint8
tile with a 1x1-convolution model (cheap, so the figure is the predictor's
own memory, not a U-Net's activations) and reports the growth of its peak
RSS against `inference.peak_memory_bytes`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core import inference  # noqa: E402

NUM_CLASSES, BANDS = 6, 5


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def naive_predict(model, tile, window):
    """Non-overlapping windows, one eager model call each (tile a multiple of window)."""
    height, width = tile.shape[:2]
    classes = np.empty((height, width), np.uint8)
    for y in range(0, height, window):
        for x in range(0, width, window):
            logits = model(tile[None, y:y + window, x:x + window].astype(np.float32)).numpy()[0]
            e = np.exp(logits - logits.max(-1, keepdims=True))
            classes[y:y + window, x:x + window] = np.argmax(e / e.sum(-1, keepdims=True), -1)
    return classes


def count_windows(size, window, overlap):
    return len(inference.window_grid(size, window, overlap)) ** 2


def _status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def memory_child(size: int, window: int, batch: int) -> None:
    """Runs in a child: peak RSS growth of one TilePredictor call on a big tile."""

    class Pointwise(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).normal(
                size=(BANDS, NUM_CLASSES)).astype(np.float32) / 100)

        def __call__(self, images, training=False):
            return tf.einsum("bhwc,ck->bhwk", tf.cast(images, tf.float32), self.w)

    predictor = inference.TilePredictor(Pointwise(), window=window, overlap=0.25,
                                        batch_size=batch)
    predictor(np.zeros((window, window, BANDS), np.uint8))  # trace, warm up
    tile = np.empty((size, size, BANDS), np.uint8)
    rng = np.random.default_rng(1)
    for row in range(0, size, 500):  # no full-size int64 temporary
        tile[row:row + 500] = rng.integers(0, 256, tile[row:row + 500].shape, dtype=np.uint8)
    try:  # Linux: reset the high-water mark to the current RSS, then read it back
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        before, peak = _status_bytes("VmRSS"), lambda: _status_bytes("VmHWM")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731
    _, wall, _ = timed(lambda: predictor(tile))
    after = peak()
    stated = inference.peak_memory_bytes(size, size, BANDS, NUM_CLASSES, window, batch)
    print(json.dumps({"measured_growth": after - before, "stated": stated,
                      "tile_bytes": tile.nbytes, "seconds": wall}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tta_size", type=int, default=512)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--no_memory", action="store_true")
    parser.add_argument("--memory_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(6000, 512, 4)

    from layers import UNet
    model = UNet(NUM_CLASSES, in_channels=BANDS, filters=32, depth=4, policy=args.precision,
                 mean=[100.0] * BANDS, std=[50.0] * BANDS)
    print(f"model: layers.UNet(filters=32, depth=4, {NUM_CLASSES} classes, {BANDS} bands, "
          f"{args.precision}); tile {args.size}x{args.size}x{BANDS} uint8; window "
          f"{args.window}; batch {args.batch}; TF {tf.__version__}, {os.cpu_count()} CPUs")
    tile = np.random.default_rng(0).integers(0, 256, (args.size, args.size, BANDS), np.uint8)
    mp = args.size ** 2 / 1e6
    single = inference.TilePredictor(model, window=args.window, overlap=0.0, batch_size=1)
    batched = inference.TilePredictor(model, window=args.window, overlap=0.0,
                                      batch_size=args.batch)
    blended = inference.TilePredictor(model, window=args.window, overlap=0.25,
                                      batch_size=args.batch)
    tta = inference.TilePredictor(model, window=args.window, overlap=0.25,
                                  batch_size=args.batch, tta="d4")
    warm = tile[:args.window, :args.window]
    for predictor in (single, batched, blended, tta):  # trace once, outside the timings
        predictor(warm)
    naive_predict(model, warm, args.window)

    rows = {}
    for name, fn, windows in (
            ("naive", lambda: naive_predict(model, tile, args.window),
             count_windows(args.size, args.window, 0.0)),
            ("single", lambda: single(tile), count_windows(args.size, args.window, 0.0)),
            ("batched", lambda: batched(tile), count_windows(args.size, args.window, 0.0)),
            ("blended", lambda: blended(tile), count_windows(args.size, args.window, 0.25))):
        _, wall, cpu = timed(fn)
        rows[name] = (wall, cpu, windows)
        print(f"{name:8s} {windows:4d} windows  {mp / wall:7.3f} MP/s  wall {wall:7.2f} s  "
              f"cpu {cpu:7.2f} s  {wall / windows * 1e3:7.1f} ms/window")
    crop = tile[:args.tta_size, :args.tta_size]
    _, plain_wall, plain_cpu = timed(lambda: blended(crop))
    _, tta_wall, tta_cpu = timed(lambda: tta(crop))
    print(f"tta8 on {args.tta_size}x{args.tta_size}: {args.tta_size ** 2 / 1e6 / tta_wall:.3f} MP/s"
          f"; cost x{tta_wall / plain_wall:.2f} wall, x{tta_cpu / plain_cpu:.2f} cpu "
          f"(blended {plain_wall:.2f} s, tta8 {tta_wall:.2f} s)")

    (nw, nc, _), (bw, bc, bn), (ow, oc, on) = rows["naive"], rows["batched"], rows["blended"]
    sw, sc, _ = rows["single"]
    print(f"goal batched >= 2x naive: x{nw / bw:.2f} wall, x{nc / bc:.2f} cpu "
          f"(= graph vs eager x{nw / sw:.2f} wall, then batching x{sw / bw:.2f} wall)")
    print(f"goal blended <= 1.5x batched beyond its {on / bn:.2f}x windows: "
          f"x{(ow / on) / (bw / bn):.2f} wall, x{(oc / on) / (bc / bn):.2f} cpu per window")

    if not args.no_memory:
        child = subprocess.run([sys.executable, "-m", "benchmarks.bench_inference",
                                "--memory_child"], capture_output=True, text=True, check=True)
        m = json.loads(child.stdout.strip().splitlines()[-1])
        stated = m["stated"]
        print(f"memory, 6000x6000x5 uint8 tile, window 512, batch 4, K={NUM_CLASSES}, 1x1 model: "
              f"stated {stated['total'] / 2**30:.3f} GiB (accumulators "
              f"{stated['accumulators'] / 2**30:.3f} + batch {stated['batch'] / 2**20:.0f}"
              f" MiB); measured peak RSS growth {m['measured_growth'] / 2**30:.3f} GiB "
              f"(input tile {m['tile_bytes'] / 2**20:.0f} MiB held by the caller, not counted; "
              f"{m['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
