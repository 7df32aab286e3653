r"""Imports Keras-applications ImageNet weights into our pretrained encoders.

  python -m tools.import_encoder --encoder=resnet50 --output_dir=weights/resnet50
  python -m tools.import_encoder --encoder=convnext_tiny --output_dir=weights/convnext_tiny \
      --keras_weights=convnext_tiny_notop.h5        # offline: a downloaded file
  python -m tools.train --flagfile=demo.flags --encoder=resnet50 \
      --encoder_weights=weights/resnet50

Builds the Keras application without its classifier (ImageNet weights,
downloaded by Keras when the machine is online, or read from
--keras_weights), copies every variable into our `layers.resnet.ResNet50` /
`layers.convnext.ConvNeXtTiny` built for three bands R, G, B, and writes to
--output_dir a TensorFlow checkpoint `encoder.*` plus `encoder.json`: the input
normalisation the weights expect, read from Keras itself (ResNet-50:
`preprocess_input`, caffe style: BGR order, ImageNet mean subtracted, no
scaling; ConvNeXt: the `Normalization` layer inside the model, ImageNet mean
and std on 0-255). The first kernel is reordered so that our encoder takes
R, G, B whatever order Keras feeds. Keras is used here (and in the tests of
this tool) only; the library reads the checkpoint with TensorFlow alone.

Name/order mapping (`copy_keras_weights`): ResNet-50 layer `conv1_*` -> stem,
`conv{s}_block{b}_{0,1,2,3}_{conv,bn}` -> stages[s-2][b-1].{shortcut, unit1,
unit2, unit3}, the Keras conv bias folded into the batch norm's moving mean
(moving_mean - bias: the same outputs, see layers/resnet.py); ConvNeXt
`*_stem_conv`/`_stem_layernorm`, `*_downsampling_{layernorm,conv}_{i}`,
`*_stage_{i}_block_{j}_{depthwise_conv, layernorm, pointwise_conv_1,
pointwise_conv_2, layer_scale}` and the final `layer_normalization`, with the
depthwise kernel transposed to [7,7,C,1] and Dense kernels reshaped to 1x1
convolutions. Every Keras weight is used exactly once (checked).
"""
from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from tools import encoder_flags  # noqa: F401  (--encoder, shared with tools.train)
from tools import outputs, renamed_flags

flags.DEFINE_string("output_dir", None, "Folder to write (created; an earlier import there is "
                    "replaced, any other content refused).")
flags.DEFINE_string("keras_weights", None, "A Keras weights file of the application "
                    "without its top (e.g. resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5); "
                    "default: Keras downloads the ImageNet weights.")
FLAGS = flags.FLAGS

APPLICATIONS = {"resnet50": "ResNet50", "convnext_tiny": "ConvNeXtTiny"}
# The std of ImageNet's pixels, R, G, B, on 0-255 (torchvision's figures,
# which ConvNeXt's Normalization layer holds too).
IMAGENET_PIXEL_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def keras_application(encoder: str, weights: str | None = "imagenet"):
    """The Keras application without its top, input [None, None, 3].

    `weights`: "imagenet" (download), None (random) or a file path."""
    import keras  # pylint: disable=import-outside-toplevel

    builder = getattr(keras.applications, APPLICATIONS[encoder])
    load = weights if weights in (None, "imagenet") else None
    model = builder(weights=load, include_top=False, input_shape=(None, None, 3))
    if load is None and weights is not None:
        model.load_weights(weights)
    return model


def keras_normalisation(encoder: str, keras_model) -> dict:
    """What the weights expect, read from Keras: per input colour R, G, B the
    mean and std of `(x - mean) / std` on 0-255, and `order`: the Keras
    input channel each colour goes to (ResNet-50 feeds B, G, R)."""
    if encoder == "convnext_tiny":
        layer = keras_model.get_layer("convnext_tiny_prestem_normalization")
        mean = np.asarray(layer.mean, np.float64).reshape(-1)
        std = np.sqrt(np.asarray(layer.variance, np.float64).reshape(-1))
        return {"mean": mean.tolist(), "std": std.tolist(), "order": [0, 1, 2],
                "how": "keras.applications.ConvNeXtTiny's own Normalization layer "
                       "(convnext_tiny_prestem_normalization), inside the Keras model"}
    import keras  # pylint: disable=import-outside-toplevel

    # preprocess_input is affine per channel with a channel permutation:
    # probe it with 0 and with one colour at a time.
    preprocess = keras.applications.resnet50.preprocess_input
    base = np.asarray(preprocess(np.zeros([1, 1, 1, 3], np.float32))).reshape(3)
    mean, std, order = [0.0] * 3, [0.0] * 3, [0] * 3
    for c in range(3):
        probe = np.zeros([1, 1, 1, 3], np.float32)
        probe[..., c] = 100.0
        delta = np.asarray(preprocess(probe)).reshape(3) - base
        k = int(np.argmax(np.abs(delta)))
        order[c] = k
        std[c] = float(100.0 / delta[k])
        mean[c] = float(-base[k] * std[c])
    return {"mean": mean, "std": std, "order": order,
            "how": "keras.applications.resnet50.preprocess_input (caffe style: RGB -> "
                   "BGR, ImageNet mean subtracted, no scaling), probed"}


def _keras_layers(model) -> dict:
    found = {}

    def walk(layer):
        for sub in getattr(layer, "layers", []):
            found[sub.name] = sub
            walk(sub)

    walk(model)
    return found


def copy_keras_weights(keras_model, encoder, order=(0, 1, 2)) -> int:
    """Copies the Keras application's variables into our built 3-band encoder.

    Args:
      keras_model: from `keras_application`.
      encoder: our `ResNet50` / `ConvNeXtTiny`, called once on 3 bands.
      order: Keras input channel of our R, G, B (`keras_normalisation`).
    Returns:
      The number of Keras weights copied (all of them).
    Raises:
      ValueError: a Keras weight left unused or a shape that does not match.
    """
    from layers.convnext import ConvNeXtTiny  # pylint: disable=import-outside-toplevel

    layers = _keras_layers(keras_model)
    used: set = set()

    def weights(name):
        layer = layers[name]
        for w in layer.weights:
            used.add(id(w))
        return [np.asarray(w.numpy()) for w in layer.weights]

    def put(variable, value):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(f"{variable.name}: shape {tuple(variable.shape)}, Keras "
                             f"gives {value.shape}")
        variable.assign(value.astype(np.float32))

    def first_kernel(kernel):
        return kernel[:, :, list(order), :]  # our R, G, B from Keras' channels

    if isinstance(encoder, ConvNeXtTiny):
        p = "convnext_tiny"
        kernel, bias = weights(f"{p}_stem_conv")
        put(encoder.stem.w, first_kernel(kernel))
        put(encoder.stem.b, bias)
        norms = [(f"{p}_stem_layernorm", encoder.stem_norm)]
        for i, (norm, conv) in enumerate(zip(encoder.downsample_norms, encoder.downsamples)):
            norms.append((f"{p}_downsampling_layernorm_{i}", norm))
            kernel, bias = weights(f"{p}_downsampling_conv_{i}")
            put(conv.w, kernel)
            put(conv.b, bias)
        for i, stage in enumerate(encoder.stages):
            for j, block in enumerate(stage):
                q = f"{p}_stage_{i}_block_{j}"
                kernel, bias = weights(f"{q}_depthwise_conv")
                put(block.depthwise.w, np.transpose(kernel, (0, 1, 3, 2)))
                put(block.depthwise.b, bias)
                norms.append((f"{q}_layernorm", block.norm))
                for ours, theirs in ((block.pointwise1, "pointwise_conv_1"),
                                     (block.pointwise2, "pointwise_conv_2")):
                    kernel, bias = weights(f"{q}_{theirs}")
                    put(ours.w, kernel[None, None])
                    put(ours.b, bias)
                (gamma,) = weights(f"{q}_layer_scale")
                put(block.layer_scale.scale, gamma)
        if encoder.out_norm is not None:
            last = [l for l in keras_model.layers if type(l).__name__ == "LayerNormalization"]
            norms.append((last[-1].name, encoder.out_norm))
        for name, norm in norms:
            gamma, beta = weights(name)
            put(norm.scale, gamma)
            put(norm.offset, beta)
    else:
        units = [("conv1", encoder.stem)]
        for s, stage in enumerate(encoder.stages):
            for b, block in enumerate(stage):
                q = f"conv{s + 2}_block{b + 1}"
                units += [(f"{q}_1", block.unit1), (f"{q}_2", block.unit2),
                          (f"{q}_3", block.unit3)]
                if block.shortcut is not None:
                    units.append((f"{q}_0", block.shortcut))
        for name, unit in units:
            kernel, bias = weights(f"{name}_conv")
            gamma, beta, moving_mean, moving_variance = weights(f"{name}_bn")
            put(unit.conv.w, first_kernel(kernel) if unit is encoder.stem else kernel)
            put(unit.bn.scale, gamma)
            put(unit.bn.offset, beta)
            # BN(conv + bias) == BN'(conv) with the moving mean shifted by the bias.
            put(unit.bn.moving_mean, moving_mean - bias)
            put(unit.bn.moving_variance, moving_variance)
    if encoder.strides[-1] == 32:  # the whole network: every Keras weight used
        unused = [w.path for w in keras_model.weights if id(w) not in used]
        if unused:
            raise ValueError(f"Keras weights left unused by the mapping: {unused[:5]}")
    return len(used)


def build_encoder(encoder: str):
    """Our encoder for R, G, B, float32, built (variables exist)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from layers.pretrained import ENCODERS  # pylint: disable=import-outside-toplevel

    module = ENCODERS[encoder]()
    module(tf.zeros([1, 32, 32, 3]))
    return module


def import_encoder(encoder: str, out: str, keras_weights: str | None = "imagenet",
                   keras_model=None) -> dict:
    """Builds, copies and writes (see the module docstring); returns encoder.json."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from layers import pretrained  # pylint: disable=import-outside-toplevel

    if os.path.isdir(out):
        foreign = [f for f in os.listdir(out)
                   if f != pretrained.INFO_FILE and not f.startswith("encoder.")
                   and f != "checkpoint"]
        if foreign:
            raise ValueError(f"--output_dir={out} holds other files ({foreign[:3]}); choose an "
                             f"empty or new folder (nothing there is deleted)")
    if keras_model is None:
        keras_model = keras_application(encoder, keras_weights)
    norm = keras_normalisation(encoder, keras_model)
    module = build_encoder(encoder)
    count = copy_keras_weights(keras_model, module, norm["order"])
    os.makedirs(out, exist_ok=True)
    tf.train.Checkpoint(encoder=module).write(os.path.join(out, "encoder"))
    info = {
        "format": pretrained.FORMAT, "encoder": encoder,
        "source": f"keras.applications.{APPLICATIONS[encoder]}, weights="
                  f"{keras_weights if keras_weights else 'random (weights=None)'}",
        "keras_weights_copied": count,
        "bands": list(pretrained.WEIGHT_BANDS), "input_range": [0, 255],
        "mean": norm["mean"], "std": norm["std"], "pixel_std": list(IMAGENET_PIXEL_STD),
        "normalisation": norm["how"], "checkpoint": "encoder",
    }
    with open(os.path.join(out, pretrained.INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return info


def main(argv):
    del argv
    if not FLAGS["encoder"].present or not FLAGS.output_dir:
        raise app.UsageError("--encoder and --output_dir are required")
    if FLAGS.encoder == "unet":
        raise app.UsageError("--encoder=unet is the hand-built encoder, which has no "
                             "pretrained weights; give resnet50 or convnext_tiny")
    if FLAGS.keras_weights and not os.path.isfile(FLAGS.keras_weights):
        raise app.UsageError(f"--keras_weights={FLAGS.keras_weights}: no such file")
    try:
        outputs.check_output_dir(FLAGS.output_dir, "--output_dir")  # before the download and the copy
        info = import_encoder(FLAGS.encoder, FLAGS.output_dir, FLAGS.keras_weights or "imagenet")
    except ValueError as err:
        raise SystemExit(f"tools.import_encoder: {err}") from None
    except Exception as err:  # pylint: disable=broad-except
        # Keras' download raises URLError/HTTPError/OSError subclasses; one line.
        if FLAGS.keras_weights:
            raise
        raise SystemExit(f"tools.import_encoder: could not get the ImageNet weights "
                         f"({type(err).__name__}: {str(err)[:200]}); on an offline machine "
                         f"download the Keras 'notop' weights file elsewhere and pass "
                         f"--keras_weights=FILE") from None
    print(f"wrote {FLAGS.output_dir}: {info['keras_weights_copied']} Keras weights, "
          f"normalisation mean {info['mean']} std {info['std']}")


if __name__ == "__main__":
    app.run(main, flags_parser=renamed_flags.parser("import_encoder"))
