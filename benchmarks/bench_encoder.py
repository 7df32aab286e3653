"""Training-step time of our U-Net with a ResNet-50 encoder against the same
network built from Keras layers and trained with `Model.fit` (issue 13).

  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_encoder [--batch 8
      --size 256 --classes 6 --rounds 3 --steps_per_round 5
      --dtypes float32,mixed_bfloat16 --keras_jit auto]

Smoke form (a minute): --size 64 --rounds 1 --steps_per_round 2.

- ours: `layers.UNet(K, encoder="resnet50")` built as `tools.train` builds
  it (`train_loop.build`: model, cross-entropy loss, SGD momentum with the
  one-cycle schedule, the policy's dynamic loss scale, `distribute_step`
  on the default strategy), stepped by `run_steps` with
  `--steps_per_loop` steps per call (1: one call per step, like `fit`'s
  steps_per_execution=1; tools.train's default is 10). No training
  metrics (neither has any).
- Keras: `keras.applications.ResNet50(weights=None, include_top=False)`
  cut at the layers our encoder's features equal
  (tests/tools/test_import_encoder.py: conv1_relu, conv2_block3_out,
  conv3_block4_out, conv4_block6_out for depth 4), the same decoder from
  Keras layers (`benchmarks.bench_unet.keras_conv_bn` / `keras_residual`),
  a K-class 1x1 head with float32 output; `compile(SGD(momentum=0.9),
  SparseCategoricalCrossentropy(from_logits=True))`, trained by `fit`.
  Low precision by `keras.mixed_precision.set_global_policy` while it is
  built. `model.jit_compile` is printed ("auto" resolves to False on a
  CPU-only machine); `--keras_jit auto,on` times XLA too, and the ratios
  use the faster Keras setting.

The machine is shared, so the configs are timed in interleaved rounds:
each round runs `--steps_per_round` steps of every config (one `fit` call
per round for Keras, timed batch by batch with a callback that forces the
loss; the first batch of each call is left out). Medians of wall-clock and
process-CPU seconds per step are reported (CPU time shows each system's
work when other jobs compete for the cores). The same random images and
labels (a small repeated tf.data) feed both.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bench_unet import keras_conv_bn, keras_residual, print_conv_ceiling  # noqa: E402
from core import precision  # noqa: E402
from layers import count_parameters  # noqa: E402
from train_loop import build, steps as steps_lib  # noqa: E402
from train_loop.config import LoopConfig, ModelConfig, TrainConfig, to_dict  # noqa: E402

IN_CHANNELS = 3
MEAN, STD = 127.5, 58.0  # in-graph normalisation of both networks
FILTERS, DEPTH = 32, 4  # tools.train's defaults: decoder widths 32..256, strides 2..16
# Keras ResNet50 layers whose outputs equal our encoder's features, by stride.
KERAS_FEATURES = {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out",
                  16: "conv4_block6_out", 32: "conv5_block3_out"}


def random_data(batch: int, size: int, classes: int, batches: int = 2):
    """`batches` batches of random uint8-valued float32 images and labels."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, [batches * batch, size, size, IN_CHANNELS]).astype(np.float32)
    labels = rng.integers(0, classes, [batches * batch, size, size]).astype(np.uint8)
    return images, labels


# --- ours: the step tools.train runs ---------------------------------------------
def build_ours(dtype: str, classes: int, images, labels, batch: int):
    """(run one round of n steps -> [(wall, cpu)] per step, model)."""
    config = TrainConfig(model=ModelConfig(filters=FILTERS, depth=DEPTH, policy=dtype,
                                           encoder="resnet50"),
                         loss="ce", loop=LoopConfig(train_steps=10_000))
    run_cfg = {"model": dict(num_classes=classes, in_channels=IN_CHANNELS,
                             **to_dict(config.model)),
               "data": {"mean": [MEAN] * IN_CHANNELS, "std": [STD] * IN_CHANNELS}}
    strategy = tf.distribute.get_strategy()
    model = build.make_model(run_cfg, config)
    optimizer = build.make_optimizer(config)
    loss_scale = precision.DynamicLossScale.for_policy(dtype)
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    build.build_variables(model, optimizer, config, images[:1])
    step = steps_lib.distribute_step(strategy, steps_lib.make_train_step(
        model, build.make_loss(config), optimizer, schedule=build.make_schedule(config),
        step_counter=step_counter, loss_scale=loss_scale, clip_norm=config.optim.clip_norm))
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda ctx: ds.batch(batch, drop_remainder=True).repeat()))

    def run(n: int, per_loop: int):
        times = []
        for _ in range(max(1, n // per_loop)):
            wall, cpu = time.perf_counter(), time.process_time()
            steps_lib.run_steps(step, iterator, per_loop)["loss"].numpy()
            times.append(((time.perf_counter() - wall) / per_loop,
                          (time.process_time() - cpu) / per_loop))
        return times

    return run, model


# --- Keras: the same network from Keras layers, trained by fit ---------------------
def keras_unet_resnet50(size: int, classes: int, dtype: str):
    """ResNet-50 (Keras applications) features at strides 2..2**DEPTH, then
    layers.UNet's decoder for encoder="resnet50": conv center of
    FILTERS * 2**DEPTH channels, per level a 2x2 transposed conv, concat with
    the feature of that stride if any (none at stride 1), a residual block."""
    keras = tf.keras
    L = keras.layers
    keras.mixed_precision.set_global_policy(dtype)
    try:
        inputs = keras.Input([size, size, IN_CHANNELS])
        x = L.Normalization(mean=[MEAN] * IN_CHANNELS, variance=[STD ** 2] * IN_CHANNELS)(inputs)
        resnet = keras.applications.ResNet50(weights=None, include_top=False, input_tensor=x)
        skips = [resnet.get_layer(KERAS_FEATURES[2 ** i]).output if i else None
                 for i in range(DEPTH)]
        x = resnet.get_layer(KERAS_FEATURES[2 ** DEPTH]).output
        width = FILTERS * 2 ** DEPTH
        x = keras_conv_bn(keras_conv_bn(x, width, 3, dtype), width, 3, dtype)
        for i in reversed(range(DEPTH)):
            x = L.Conv2DTranspose(FILTERS * 2 ** i, 2, strides=2, dtype=dtype)(x)
            if skips[i] is not None:
                x = L.Concatenate(dtype=dtype)([x, skips[i]])
            x = keras_residual(x, FILTERS * 2 ** i, dtype)
        x = L.Conv2D(classes, 1, dtype=dtype)(x)
        logits = L.Activation("linear", dtype="float32")(x)
        return keras.Model(inputs, logits)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def build_keras(dtype: str, classes: int, images, labels, batch: int, jit: str):
    """(run one round of n steps -> [(wall, cpu)] per step, model)."""
    keras = tf.keras
    model = keras_unet_resnet50(images.shape[1], classes, dtype)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile={"auto": "auto", "on": True, "off": False}[jit])
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    ds = ds.batch(batch, drop_remainder=True).repeat()
    stamps = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # the step has finished before the stamp
            stamps.append((time.perf_counter(), time.process_time()))

    def run(n: int, per_loop: int):  # pylint: disable=unused-argument
        stamps.clear()
        model.fit(ds, steps_per_epoch=n + 1, epochs=1, verbose=0, shuffle=False,
                  callbacks=[Timer()])
        return [tuple(d) for d in np.diff(np.array(stamps), axis=0)]

    return run, model


def keras_counts(model) -> tuple[int, int, int]:
    """(trainable, total, conv biases of its ResNet layers) of a Keras model."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    biases = sum(int(np.prod(l.bias.shape)) for l in model.layers
                 if isinstance(l, tf.keras.layers.Conv2D) and l.name.startswith("conv")
                 and l.name.endswith("_conv") and l.use_bias)
    return trainable, model.count_params(), biases


# --- main --------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps_per_round", type=int, default=5)
    p.add_argument("--steps_per_loop", type=int, default=1,
                   help="our steps per run_steps call (tools.train's default: 10)")
    p.add_argument("--dtypes", default="float32,mixed_bfloat16")
    p.add_argument("--keras_jit", default="auto", help="comma list of auto,on,off")
    args = p.parse_args()
    if args.size % 2 ** DEPTH or args.size < 32:
        p.error(f"--size must be a multiple of {2 ** DEPTH} and >= 32; got {args.size}")
    if args.steps_per_round % args.steps_per_loop:
        p.error("--steps_per_round must be a multiple of --steps_per_loop")
    t0 = time.perf_counter()
    images, labels = random_data(args.batch, args.size, args.classes)
    dtypes = args.dtypes.split(",")

    runs, counts, first = {}, {}, {}
    for dtype in dtypes:
        configs = [("ours", lambda: build_ours(dtype, args.classes, images, labels, args.batch))]
        configs += [(f"keras jit {j}", lambda j=j: build_keras(
            dtype, args.classes, images, labels, args.batch, j))
            for j in args.keras_jit.split(",")]
        for system, make in configs:
            start = time.perf_counter()
            run, model = make()
            run(args.steps_per_loop, args.steps_per_loop)  # traces (ours), builds train_function
            first[(system, dtype)] = time.perf_counter() - start
            runs[(system, dtype)] = run
            if system == "ours":
                counts[system] = count_parameters(model)
            else:
                counts[system] = keras_counts(model)
                print(f"{system} {dtype}: model.jit_compile = {model.jit_compile}")
            print(f"built {system:13s} {dtype:15s} + first step {first[(system, dtype)]:6.1f} s",
                  flush=True)

    times = {key: [] for key in runs}
    for r in range(args.rounds):
        for key, run in runs.items():
            times[key] += run(args.steps_per_round, args.steps_per_loop)
        print(f"round {r + 1}/{args.rounds} done at {time.perf_counter() - t0:.0f} s", flush=True)

    print()
    print_conv_ceiling()
    ours_t, ours_nt = counts["ours"]
    print(f"\nparameters: ours {ours_t:,} trainable / {ours_t + ours_nt:,} total")
    for system, values in counts.items():
        if system == "ours":
            continue
        kt, ktotal, biases = values
        print(f"parameters: {system}: {kt:,} trainable / {ktotal:,} total; Keras - ours = "
              f"{kt - ours_t:+,} trainable, {ktotal - ours_t - ours_nt:+,} total")
        exact = (kt - ours_t, ktotal - ours_t - ours_nt) == (biases, biases - 2 * IN_CHANNELS)
        print(f"  explained: {biases:,} biases of ResNet-50's convolutions before a batch "
              f"norm (ours has none, folded into moving_mean on import), and ours' "
              f"{2 * IN_CHANNELS} input mean/std variables (Keras' Normalization keeps "
              f"constants): {'exact' if exact else 'DOES NOT ADD UP'}")
        break

    med = {key: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
           for key, ts in times.items()}
    print(f"\nU-Net + ResNet-50 encoder (to stride {2 ** DEPTH}), {args.size}x{args.size}x"
          f"{IN_CHANNELS}, batch {args.batch}, {args.classes} classes; medians of "
          f"{args.rounds} interleaved rounds x {args.steps_per_round} steps\n")
    print("| system | dtype | s/step wall | CPU-s/step | images/s | first step + build (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for (system, dtype), (wall, cpu) in med.items():
        print(f"| {system} | {dtype} | {wall:.3f} | {cpu:.3f} | {args.batch / wall:.2f} | "
              f"{first[(system, dtype)]:.1f} |")

    def speedup(slow, fast):
        return (f"{med[slow][0] / med[fast][0]:.2f}x wall, "
                f"{med[slow][1] / med[fast][1]:.2f}x CPU")

    print("\n| ratio | speed-up |\n|---|---|")
    for dtype in dtypes:
        keras_keys = [k for k in med if k[1] == dtype and k[0] != "ours"]
        fastest = min(keras_keys, key=lambda k: med[k][0])
        print(f"| ours / Keras fit ({fastest[0]}), {dtype} (goal >= 1) | "
              f"{speedup(fastest, ('ours', dtype))} |")
    for system in dict.fromkeys(k[0] for k in med):
        for dtype in dtypes[1:]:
            print(f"| {system}: {dtype} / {dtypes[0]} | "
                  f"{speedup((system, dtypes[0]), (system, dtype))} |")
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
