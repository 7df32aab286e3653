"""Training-step throughput: our step functions against Keras `Model.fit`.

  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_train            # --quick
  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_train --full     # 256x256

What is timed (issue 6, "Performance"):
- ours: `layers.UNet(filters=32, depth=4, residual=True)` trained by
  `train_loop.make_train_step` (cross-entropy, SGD momentum, one-cycle
  schedule, as `tools.train` runs it) and `run_steps`, for float32 /
  mixed_bfloat16, jit off / on, steps_per_loop 1 / 10. No training metrics,
  like the `fit` baseline (`--train_metrics` adds the confusion matrix
  tools.train updates; it does not compile under XLA at the time of writing);
- Keras: the same architecture from `tf.keras.layers`
  (`benchmarks.bench_unet.keras_unet`), `compile(SGD momentum, sparse CE)`
  and ONE long `fit` call per dtype with a per-batch timing callback (a short
  `fit` carries ~2 s of fixed overhead); its first batches are discarded.
  Its default configuration on this CPU is float32, no XLA (Keras'
  jit_compile="auto" is off on CPU-only machines), steps_per_execution 1;
- the peak bfloat16 (and float32) convolution throughput of this machine: a
  big `tf.nn.conv2d`, best of several calls.
Batches are synthetic tensors repeated by tf.data: no data loading is timed.
Step times are medians; images/s = batch / step. The machine is shared, so
each time is also taken in CPU seconds of this process (all threads): on a
loaded machine wall time stretches with other users' work, CPU time much
less; the ratios are printed for both.
Training FLOPs = 3 x forward convolution FLOPs counted from the model's conv
shapes (forward, gradient w.r.t. inputs, w.r.t. kernels).

`--quick` (the default) runs 128x128 patches and few steps so it ends in a
few minutes on 2 cores; `--full` runs the issue's 256x256 with more steps.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bench_unet import conv_flops_per_image, keras_unet  # noqa: E402
from core import losses, metrics, optim, schedules  # noqa: E402
from layers import UNet  # noqa: E402
from train_loop import steps as steps_lib  # noqa: E402

NUM_CLASSES, IN_CHANNELS = 2, 3


def synthetic_batch(batch: int, size: int):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, [batch, size, size, IN_CHANNELS]).astype(np.float32)
    labels = (images[..., 0] > 127).astype(np.uint8)
    return images, labels


# --- peak convolution throughput -------------------------------------------------
def peak_conv_flops(dtype: tf.DType, reps: int) -> float:
    """FLOP/s of a large 3x3 convolution (best of `reps` calls)."""
    shape, channels = [8, 64, 64, 256], 256
    x = tf.cast(tf.random.uniform(shape), dtype)
    k = tf.cast(tf.random.uniform([3, 3, channels, channels]) * 0.01, dtype)
    conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")[0, 0, 0, 0])
    conv(x, k).numpy()
    times = [_timed(lambda: conv(x, k).numpy()) for _ in range(reps)]
    flops = 2.0 * np.prod(shape) * 9 * channels
    return flops / min(t[0] for t in times), flops / min(t[1] for t in times)


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _median(times, div: float = 1.0) -> tuple[float, float]:
    return (statistics.median(t[0] for t in times) / div,
            statistics.median(t[1] for t in times) / div)


# --- ours ----------------------------------------------------------------------
def time_ours(images, labels, dtype: str, jit: bool, loops: dict[int, int],
              total_steps: int = 10_000):
    """Median seconds per step for each steps_per_loop in `loops`
    ({steps_per_loop: timed calls}); the first call (tracing) is excluded."""
    model = UNet(NUM_CLASSES, in_channels=IN_CHANNELS, filters=ARGS.filters,
                 depth=ARGS.depth, residual=True, center="conv", policy=dtype,
                 mean=[127.5] * 3, std=[73.6] * 3)
    model(images[:1], training=False)
    optimizer = optim.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    step = steps_lib.make_train_step(
        model, losses.get_loss("ce"), optimizer,
        schedule=lambda s: schedules.one_cycle(s, total_steps, 0.01),
        metrics=metrics.ConfusionMatrix(NUM_CLASSES) if ARGS.train_metrics else None)
    it = iter(tf.data.Dataset.from_tensors({"image": images, "label": labels}).repeat())
    # num_steps is a tensor argument: one trace serves every steps_per_loop.
    start = time.perf_counter()
    steps_lib.run_steps(step, it, 1, jit_compile=jit)["loss"].numpy()
    first = time.perf_counter() - start
    out = {}
    for spl, calls in loops.items():
        times = [_timed(lambda: steps_lib.run_steps(step, it, spl, jit_compile=jit)
                        ["loss"].numpy()) for _ in range(calls)]
        out[spl] = _median(times, spl)
    return out, first, model, step


def breakdown(images, labels, model, step, reps: int) -> dict:
    """CPU seconds of forward (+loss), forward+backward and the full step
    (`step`, which adds the optimizer and schedule) on our model, timed in
    interleaved rounds so the shared machine's load hits all three alike."""
    loss_fn = losses.get_loss("ce")
    variables = model.trainable_variables

    @tf.function
    def forward(x, y):
        return loss_fn(y, model(x, training=True))

    @tf.function
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tf.linalg.global_norm(tape.gradient(loss, variables))

    x, y = tf.constant(images), tf.constant(labels)
    full = tf.function(step)
    fns = {"forward": lambda: forward(x, y).numpy(),
           "forward+backward": lambda: forward_backward(x, y).numpy(),
           "step": lambda: full({"image": x, "label": y})["loss"].numpy()}
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return {name: _median(t)[1] for name, t in times.items()}


# --- Keras fit -----------------------------------------------------------------
def time_fit(images, labels, dtype: str, jit: bool, spe: int, warmup: int, timed: int):
    """Median seconds per step of one long `fit` call, first `warmup`
    executions discarded."""
    keras = tf.keras
    model = keras_unet(ARGS.size, ARGS.filters, ARGS.depth, dtype)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit, steps_per_execution=spe)
    stamps = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(logs["loss"])  # results are ready before the stamp
            stamps.append((time.perf_counter(), time.process_time()))

    ds = tf.data.Dataset.from_tensors((images, labels.astype(np.int32))).repeat()
    executions = warmup + timed
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=executions * spe, epochs=1, verbose=0,
              callbacks=[Timer()])
    total = time.perf_counter() - start
    per_step = np.diff(np.array(stamps), axis=0)[warmup - 1:] / spe
    return (float(np.median(per_step[:, 0])), float(np.median(per_step[:, 1]))), total


# --- main ----------------------------------------------------------------------
def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="256x256 and more steps "
                   "(default: --quick, 128x128, few steps)")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dtypes", default="float32,mixed_bfloat16")
    p.add_argument("--jit", default="off,on", help="XLA settings of our step")
    p.add_argument("--no_breakdown", action="store_true")
    p.add_argument("--train_metrics", action="store_true",
                   help="update a ConfusionMatrix in our step, as tools.train does")
    args = p.parse_args()
    args.size = args.size or (256 if args.full else 128)
    # {steps_per_loop: timed calls}, fit executions (warm-up, timed)
    args.loops = {1: 6, 10: 2} if args.full else {1: 3, 10: 1}
    # XLA is slow on this CPU: --quick times it with steps_per_loop 1 only.
    args.jit_loops = args.loops if args.full else {1: 2}
    args.fit = (3, 12) if args.full else (2, 5)
    args.reps = 5 if args.full else 3
    return args


def main() -> None:
    global ARGS  # pylint: disable=global-statement
    ARGS = args = parse_args()
    t0 = time.perf_counter()
    images, labels = synthetic_batch(args.batch, args.size)
    peak = {d: peak_conv_flops(d, 5) for d in (tf.bfloat16, tf.float32)}
    print(f"peak conv (8x64x64x256 * 3x3x256x256): bfloat16 {peak[tf.bfloat16][0] / 1e9:.1f} "
          f"GFLOP/s ({peak[tf.bfloat16][1] / 1e9:.1f} per CPU-s), float32 "
          f"{peak[tf.float32][0] / 1e9:.1f} GFLOP/s ({peak[tf.float32][1] / 1e9:.1f} per CPU-s)",
          flush=True)

    rows, default_model, flops = {}, None, None
    for dtype in args.dtypes.split(","):
        (wall, cpu), total = time_fit(images, labels, dtype, False, 1, *args.fit)
        rows[("fit", dtype, False, 1)] = (wall, cpu)
        print(f"fit   {dtype:15s} jit off spe  1: {wall:6.3f} s/step, {cpu:6.3f} CPU-s/step "
              f"(one fit call of {sum(args.fit)} steps took {total:.1f} s)", flush=True)
        for jit in (j == "on" for j in args.jit.split(",")):
            try:
                times, first, model, step = time_ours(images, labels, dtype, jit,
                                                      args.jit_loops if jit else args.loops)
            except Exception as e:  # pylint: disable=broad-except
                print(f"ours  {dtype:15s} jit {'on ' if jit else 'off'}: failed: "
                      f"{type(e).__name__}: {str(e).splitlines()[0][:120]}", flush=True)
                continue
            flops = flops or 3 * conv_flops_per_image(model, args.size)
            if dtype == "mixed_bfloat16" and not jit:
                default_model = (model, step)
            for spl, (wall, cpu) in times.items():
                rows[("ours", dtype, jit, spl)] = (wall, cpu)
                print(f"ours  {dtype:15s} jit {'on ' if jit else 'off'} spl {spl:2d}: "
                      f"{wall:6.3f} s/step, {cpu:6.3f} CPU-s/step "
                      f"(first call with tracing {first:.1f} s)", flush=True)

    print(f"\nUNet filters={args.filters} depth={args.depth} residual, {args.size}x{args.size}"
          f"x{IN_CHANNELS}, batch {args.batch}; training FLOPs {flops / 1e9:.2f} G/image")
    print(f"{'config':38s} {'images/s':>9s} {'GFLOP/s':>8s} {'%peak bf16':>10s} "
          f"{'%peak (CPU-s)':>13s}")
    for (build, d, jit, spl), (wall, cpu) in rows.items():
        ips = args.batch / wall
        name = f"{build} {d} jit {'on' if jit else 'off'} {'spl' if build == 'ours' else 'spe'} {spl}"
        print(f"{name:38s} {ips:9.2f} {ips * flops / 1e9:8.1f} "
              f"{100 * ips * flops / peak[tf.bfloat16][0]:9.1f}% "
              f"{100 * args.batch * flops / cpu / peak[tf.bfloat16][1]:12.1f}%")

    def ratio(a, b):  # speed of a over b, (wall, CPU)
        return f"{rows[b][0] / rows[a][0]:.2f}x wall, {rows[b][1] / rows[a][1]:.2f}x CPU"

    ours_default, fit_default = ("ours", "mixed_bfloat16", False, 10), ("fit", "float32", False, 1)
    print("\nratios (goal):")
    for d in args.dtypes.split(","):
        if ("ours", d, False, 10) in rows:
            print(f"  ours / fit, {d} (jit off, spl 10 vs spe 1): "
                  f"{ratio(('ours', d, False, 10), ('fit', d, False, 1))}  (>= 1)")
    if ours_default in rows and fit_default in rows:
        print(f"  ours default (mixed_bfloat16, no jit, spl 10) / fit default (float32): "
              f"{ratio(ours_default, fit_default)}  (>= 2)")
        wall, cpu = rows[ours_default]
        print(f"  ours default training FLOP/s / peak bf16 conv: "
              f"{100 * args.batch * flops / wall / peak[tf.bfloat16][0]:.1f}% wall, "
              f"{100 * args.batch * flops / cpu / peak[tf.bfloat16][1]:.1f}% CPU  (>= 65%)")
    for d in args.dtypes.split(","):
        if ("ours", d, True, 10) in rows and ("ours", d, False, 10) in rows:
            print(f"  jit on / off, {d}: {ratio(('ours', d, True, 10), ('ours', d, False, 10))}")
        if ("ours", d, False, 1) in rows and ("ours", d, False, 10) in rows:
            print(f"  spl 10 / spl 1, {d}: {ratio(('ours', d, False, 10), ('ours', d, False, 1))}")
    if ("ours", "mixed_bfloat16", False, 10) in rows and ("ours", "float32", False, 10) in rows:
        print(f"  ours mixed_bfloat16 / float32: "
              f"{ratio(('ours', 'mixed_bfloat16', False, 10), ('ours', 'float32', False, 10))}")

    if default_model is not None and not args.no_breakdown:
        parts = breakdown(images, labels, *default_model, args.reps)
        fwd, fb, full = parts["forward"], parts["forward+backward"], parts["step"]
        conv_cpu = flops / 3 * args.batch / peak[tf.bfloat16][1]
        print(f"\nwhere the time goes (ours mixed_bfloat16, no jit, CPU-s per step, "
              f"median of {args.reps} interleaved rounds):")
        print(f"  forward + loss      {fwd:6.3f}  (its convs at peak bf16: {conv_cpu:.3f})")
        print(f"  backward            {fb - fwd:6.3f}  (its convs at peak: {2 * conv_cpu:.3f})")
        print(f"  optimizer, schedule {full - fb:6.3f}")
        print(f"  full step           {full:6.3f}  (all convs at peak: {3 * conv_cpu:.3f})")
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
