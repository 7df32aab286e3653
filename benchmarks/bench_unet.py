"""Forward+backward throughput of our UNet against the same net in Keras.

  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_unet [--batch 8 --size 256
      --filters 32 --depth 4 --rounds 2 --warmup 0 --dtypes float32,mixed_bfloat16]

Builds UNet(filters, depth, residual=True, center="conv", 2 classes, RGB)
with `layers.UNet` and the same architecture from `tf.keras.layers` (Keras
mixed-precision dtype policy for its low-precision run; the logits layer in
float32, as the Keras guide recommends). Each step, inside one
`tf.function`, computes the logits in training mode, a float32 sparse
cross-entropy and the gradients of every trainable variable (no optimizer
update: the same work for both builds).

The machine is shared, so the four (build, dtype) configurations are timed
in interleaved rounds and the median step time of each is reported, with the
ratios that matter: ours bf16 / ours f32 (goal >= 3) and ours / Keras in the
same dtype (goal >= 1). Each step is timed twice: wall clock, and the CPU
time of this process (all its threads). When other jobs compete for the
cores, wall-clock ratios drift with their load while CPU-time ratios (the
work each build needs) stay comparable; both are printed. FLOPs are counted analytically from the convolution
shapes (2 per multiply-add); a training step is counted as 3x the forward
convolution FLOPs (forward, gradient w.r.t. inputs, w.r.t. kernels).

Last it prints this machine's bfloat16/float32 ratio on one large 3x3
convolution and whether the CPU has AMX: the ceiling of the whole step's
bf16 gain (AVX-512 BF16 alone doubles the multiply-add rate; AMX tiles
are what the ">= 3x" goal assumes).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from layers import UNet  # noqa: E402
from layers.conv import Conv2D, ConvTranspose2x  # noqa: E402

NUM_CLASSES = 2
IN_CHANNELS = 3


# --- the Keras baseline: same widths, blocks and layer order as layers.UNet --
def keras_conv_bn(x, f: int, k: int, dtype: str, act: bool = True):
    """Keras twin of layers.blocks.ConvBNAct (no conv bias, BN eps 1e-3)."""
    L = tf.keras.layers
    x = L.Conv2D(f, k, padding="same", use_bias=False, dtype=dtype,
                 kernel_initializer="he_normal")(x)
    x = L.BatchNormalization(momentum=0.99, epsilon=1e-3, dtype=dtype)(x)
    return L.ReLU(dtype=dtype)(x) if act else x


def keras_residual(x, f: int, dtype: str):
    """Keras twin of layers.blocks.ResidualBlock (1x1 conv-BN projection
    when the channel count changes)."""
    L = tf.keras.layers
    shortcut = keras_conv_bn(x, f, 1, dtype, act=False) if x.shape[-1] != f else x
    y = keras_conv_bn(keras_conv_bn(x, f, 3, dtype), f, 3, dtype, act=False)
    return L.ReLU(dtype=dtype)(L.Add(dtype=dtype)([y, shortcut]))


def keras_unet(size: int, filters: int, depth: int, dtype: str):
    keras = tf.keras
    L = keras.layers

    def conv_bn(x, f, k, act=True):
        return keras_conv_bn(x, f, k, dtype, act)

    def residual(x, f):
        return keras_residual(x, f, dtype)

    inputs = keras.Input([size, size, IN_CHANNELS])
    x = L.Normalization(mean=[0.0] * IN_CHANNELS, variance=[1.0] * IN_CHANNELS,
                        dtype=dtype)(inputs)
    skips = []
    for i in range(depth):
        x = residual(x, filters * 2 ** i)
        skips.append(x)
        x = L.MaxPooling2D(2, dtype=dtype)(x)
    x = conv_bn(conv_bn(x, filters * 2 ** depth, 3), filters * 2 ** depth, 3)
    for i in reversed(range(depth)):
        x = L.Conv2DTranspose(filters * 2 ** i, 2, strides=2, dtype=dtype)(x)
        x = L.Concatenate(dtype=dtype)([x, skips[i]])
        x = residual(x, filters * 2 ** i)
    x = L.Conv2D(NUM_CLASSES, 1, dtype=dtype)(x)
    logits = L.Activation("linear", dtype="float32")(x)
    return keras.Model(inputs, logits)


# --- FLOPs from the convolution shapes ---------------------------------------
def conv_flops_per_image(model: UNet, size: int) -> int:
    """Forward convolution FLOPs (2 x multiply-adds) of one size x size image.

    Walks the built model's convolutions with their input resolution: level
    i of the encoder/decoder runs at size / 2**i, the center at size / 2**D,
    the upsampler of level i reads size / 2**(i+1).
    """
    total = 0

    def add(conv: Conv2D, side: int) -> None:
        nonlocal total
        k = conv.kernel_size
        cin, cout = conv.w.shape[2], conv.w.shape[3]
        out = side // conv.stride
        total += 2 * out * out * k * k * cin * cout

    def convs(module):
        return [m for m in (module,) + tuple(module.submodules)
                if isinstance(m, Conv2D)]

    for i, block in enumerate(model.encoder):
        for conv in convs(block):
            add(conv, size // 2 ** i)
    for conv in convs(model.center):
        add(conv, size // 2 ** model.depth)
    for i, up in enumerate(model.upsamplers):
        side = size // 2 ** (i + 1)
        if isinstance(up, ConvTranspose2x):
            total += 2 * side * side * up.w.shape[3] * 4 * up.w.shape[2]
        else:
            for conv in convs(up):
                add(conv, 2 * side)
    for i, block in enumerate(model.decoder):
        for conv in convs(block):
            add(conv, size // 2 ** i)
    add(model.head, size)
    return total


# --- timing --------------------------------------------------------------------
def make_step(call, variables_fn):
    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = call(images)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return loss, tape.gradient(loss, variables_fn())
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed steps after the first (tracing) one")
    parser.add_argument("--dtypes", default="float32,mixed_bfloat16")
    parser.add_argument("--builds", default="ours,keras")
    args = parser.parse_args()

    images = tf.random.uniform([args.batch, args.size, args.size, IN_CHANNELS],
                               0, 255, seed=1)
    labels = tf.random.uniform([args.batch, args.size, args.size], 0,
                               NUM_CLASSES, tf.int32, seed=2)

    # FLOPs from the shapes of a built float32 model (any input size builds it).
    counter = UNet(NUM_CLASSES, in_channels=IN_CHANNELS, filters=args.filters,
                   depth=args.depth, residual=True, center="conv")
    counter(tf.zeros([1, 2 ** args.depth, 2 ** args.depth, IN_CHANNELS]))
    flops = conv_flops_per_image(counter, args.size)

    steps = {}
    for dtype in args.dtypes.split(","):
        for build in args.builds.split(","):
            if build == "ours":
                model = UNet(NUM_CLASSES, in_channels=IN_CHANNELS,
                             filters=args.filters, depth=args.depth,
                             residual=True, center="conv", policy=dtype)
                step = make_step(lambda x, m=model: m(x, training=True),
                                 lambda m=model: m.trainable_variables)
            else:
                model = keras_unet(args.size, args.filters, args.depth, dtype)
                step = make_step(lambda x, m=model: m(x, training=True),
                                 lambda m=model: m.trainable_variables)
            steps[(build, dtype)] = step

    times = {key: [] for key in steps}
    cpu_times = {key: [] for key in steps}
    for key, step in steps.items():
        start = time.perf_counter()
        for _ in range(args.warmup + 1):  # the first call traces
            step(images, labels)[0].numpy()
        print(f"warm-up {key[0]:5s} {key[1]:15s} {time.perf_counter() - start:7.1f} s",
              flush=True)
    for _ in range(args.rounds):
        for key, step in steps.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            step(images, labels)[0].numpy()
            times[key].append(time.perf_counter() - start)
            cpu_times[key].append(time.process_time() - cpu_start)

    train_flops = 3 * flops
    print(f"\nUNet filters={args.filters} depth={args.depth} residual conv-center, "
          f"{args.size}x{args.size}x{IN_CHANNELS}, batch {args.batch}, "
          f"{args.rounds} timed rounds (median)")
    print(f"forward conv FLOPs per image: {flops / 1e9:.2f} G; "
          f"training step (3x): {train_flops / 1e9:.2f} G per image")
    wall, cpu = {}, {}
    for key in steps:
        wall[key] = statistics.median(times[key])
        cpu[key] = statistics.median(cpu_times[key])
        ips = args.batch / wall[key]
        print(f"{key[0]:5s} {key[1]:15s} step {wall[key]:6.2f} s wall "
              f"{cpu[key]:6.2f} s cpu | {ips:6.2f} images/s "
              f"{ips * train_flops / 1e9:6.1f} GFLOP/s wall | "
              f"{args.batch * train_flops / cpu[key] / 1e9:6.1f} GFLOP per cpu-s")
    print()
    low = [d for d in args.dtypes.split(",") if d != "float32"]
    pairs = []
    for build in args.builds.split(","):
        for d in low:
            pairs.append((f"{build} {d} vs {build} float32",
                          (build, "float32"), (build, d)))
    for d in args.dtypes.split(","):
        pairs.append((f"ours vs keras in {d}", ("keras", d), ("ours", d)))
    for label, slow, fast in pairs:
        if slow in wall and fast in wall:
            print(f"{label:38s} speed-up {wall[slow] / wall[fast]:5.2f}x wall, "
                  f"{cpu[slow] / cpu[fast]:5.2f}x cpu")
    print_conv_ceiling()


def print_conv_ceiling() -> None:
    """The hardware's bf16/f32 ratio on one large convolution: a whole step,
    ~90 % convolutions, cannot gain more than its convolutions do."""
    from benchmarks.bench_train import peak_conv_flops  # pylint: disable=import-outside-toplevel
    from core.precision import cpu_flags  # pylint: disable=import-outside-toplevel

    flags = cpu_flags()
    bf16, f32 = peak_conv_flops(tf.bfloat16, 5), peak_conv_flops(tf.float32, 5)
    print(f"\npeak conv 8x64x64x256 * 3x3x256x256: bfloat16 {bf16[0] / 1e9:.0f} GFLOP/s, "
          f"float32 {f32[0] / 1e9:.0f} GFLOP/s: {bf16[0] / f32[0]:.2f}x wall, "
          f"{bf16[1] / f32[1]:.2f}x cpu (CPU flags: avx512_bf16 "
          f"{'yes' if 'avx512_bf16' in flags else 'no'}, amx_bf16 "
          f"{'yes' if 'amx_bf16' in flags else 'no'})")


if __name__ == "__main__":
    main()
