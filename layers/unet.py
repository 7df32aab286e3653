"""The U-Net family of the talk on tf.Module: 3, 4 or 5 skips, plain or
residual blocks, four centers, mixed precision by a policy.

Data flow for depth D and base width F (level i has F * 2**i channels):

  images [B,H,W,C] raw bands -> (x - mean) / std            float32
  encoder i = 0..D-1: block_i -> skip_i, 2x2 max pool        compute dtype
  center: F * 2**D channels at H/2**D, then optional dropout
  decoder i = D-1..0: 2x upsample to F * 2**i channels,
                      concat [up, skip_i], block_i
  head: 1x1 conv with bias -> logits [B,H,W,K]               float32

With a pretrained encoder (`encoder="resnet50"` or `"convnext_tiny"`,
`layers.pretrained`), the encoder blocks are replaced by that network up to
stride 2**D: skip_i is its feature at stride 2**i where it has one (ResNet-50
from stride 2, ConvNeXt from stride 4; none at stride 1), the center runs on
its stride-2**D feature, and the decoder is the same (levels without a skip
take the upsampled features alone).

PARAMETER_COUNT_NOTE below compares our parameter count with the talk's
(checked by tests/layers/test_unet.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from core.precision import Policy, get_policy
from layers.activations import dropout as apply_dropout, get_activation
from layers.base import Module
from layers.blocks import ConvBlock, ResidualBlock
from layers.centers import check_center, make_center
from layers.conv import Conv2D, UPSAMPLERS, make_upsampler
from layers.pretrained import ENCODERS, check_encoder

DEPTHS = (3, 4, 5)

PARAMETER_COUNT_NOTE = """
The talk (Keras, get_unet_model(filters=32, n_block=4, n_class=2,
residual=True), RGB) printed 10,730,984 total = 10,725,096 trainable +
5,888 non-trainable.

Ours, UNet(2, in_channels=3, filters=32, depth=4, residual=True,
center="conv"), by count_parameters after one call:
  7,989,992 total = 7,982,178 trainable + 7,814 non-trainable.
(Plain blocks, residual=False: 7,768,968 = 7,763,074 + 5,894.)

Non-trainable. The talk's 5,888 = 2 x 2,944 moving statistics, and 2,944
is exactly two batch-normalised convolutions per level: encoder
32+64+128+256 = 480 channels, center 512, decoder 480, 2 x 1,472 = 2,944.
Ours has those same 2,944 BN channels (our plain model: 5,888 + 6), plus
the BN of the eight projection shortcuts of the residual blocks (1x1 conv
+ BN, ResNet's option B; encoder 480 and decoder 480 channels: +1,920), plus
the stored input normalisation `mean` and `std` (3 + 3): 7,814.

Trainable. Our convolutions that feed a batch norm have no bias (the BN
offset makes it redundant): -2,944 against Keras' default Conv2D. Our
residual blocks add 217,184 projection weights and 1,920 BN scale/offset.
A Keras plain U-Net of the same widths with biased convs and a BN after each
conv has 7,766,018 trainable parameters; the talk's residual model has
2,959,078 more without any extra batch norm, so its residual variant adds
about 2.96M parameters in layers without batch norm (convolutions, most
likely) whose shapes the slides do not show (3x3 instead of 1x1 shortcut convolutions, for example,
would add 3,135,776: the same order, not the exact figure). We keep the
standard ResNet block (1x1 projection + BN), so ours has 2,740,992 fewer
parameters (-25.5%) with the same widths, depth, 3x3 convolutions, 2x2
transposed-conv upsampling and concatenated skips.
"""


def _per_band(values: "Sequence[float] | np.ndarray | None", default: float,
              in_channels: int, what: str) -> np.ndarray:
    if values is None:
        return np.full([in_channels], default, np.float32)
    array = np.asarray(values, np.float32).reshape(-1)
    if array.shape != (in_channels,):
        raise ValueError(f"UNet {what} must have in_channels={in_channels} "
                         f"values (one per band); got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"UNet {what} must be finite; got {array.tolist()}")
    return array


class UNet(Module):
    """U-Net with 3-5 skips, plain or residual blocks and a chosen center.

    Args:
      num_classes: K, channels of the logits.
      in_channels: C, bands of the input images (checked on every call).
      filters: channels of the first level (doubled at every level down).
      depth: number of skips / pooling steps, 3, 4 or 5; H and W must be
        multiples of 2**depth.
      residual: residual blocks (with projection shortcuts) instead of two
        plain conv-BN-activation units per level.
      center: "conv", "residual", "serial_dilated" or "parallel_dilated".
      policy: `core.precision.Policy` or name: "float32", "mixed_float16",
        "mixed_bfloat16". Variables are float32 whatever the policy.
      mean, std: per-band normalisation of the raw input (length C); default
        0 and 1. Stored as non-trainable float32 variables `mean`, `std`
        created here, so every checkpoint and SavedModel carries them.
      activation: name from `layers.activations` (talk: relu, leaky_relu,
        elu, ...).
      upsample: "transpose" (2x2 stride-2 transposed conv) or "resize"
        (nearest 2x then 3x3 conv).
      dropout: rate applied to the center's output when training.
      cross_replica_bn: synchronised batch norm under tf.distribute.
      bn_momentum: moving-average momentum of every batch norm (Keras'
        0.99); `train_loop.bn_recompute` re-estimates the statistics anyway
        before evaluations, so it matters for the stretches between them.
      encoder: "unet" (the hand-built encoder above) or a pretrained
        network from `layers.pretrained.ENCODERS` ("resnet50",
        "convnext_tiny"); `filters` and `residual` then shape the decoder.
        Its weights are loaded by `layers.pretrained.load_encoder_weights`.
      freezable_encoder: give a pretrained encoder's batch norms the switch
        `encoder_frozen` (float32 variable, 1 = frozen: training-mode calls
        normalise by the moving statistics and update nothing), set by the
        optimizer's parameter group (`core.optim`) while the encoder is
        frozen. A training-time option, not part of `config`.

    Call: `model(images, training=False)` with images [B,H,W,C] of any real
    dtype (uint8, float32, ...) -> logits [B,H,W,K] float32.
    """

    def __init__(self, num_classes: int, *, in_channels: int, filters: int = 32,
                 depth: int = 4, residual: bool = True, center: str = "conv",
                 policy: "str | Policy" = "float32",
                 mean: "Sequence[float] | None" = None,
                 std: "Sequence[float] | None" = None,
                 activation: str = "relu", upsample: str = "transpose",
                 dropout: float = 0.0, cross_replica_bn: bool = False,
                 bn_momentum: float = 0.99, encoder: str = "unet",
                 freezable_encoder: bool = False, name: str | None = "unet"):
        policy = get_policy(policy)
        super().__init__(policy=policy, name=name)
        for what, value in (("num_classes", num_classes),
                            ("in_channels", in_channels), ("filters", filters)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"UNet {what} must be a positive integer; "
                                 f"got {value!r}")
        if depth not in DEPTHS:
            raise ValueError(f"UNet depth must be one of {DEPTHS}; got {depth!r}")
        check_center(center)
        get_activation(activation)
        if upsample not in UPSAMPLERS:
            raise ValueError(f"unknown upsampling {upsample!r}; expected one of "
                             f"{sorted(UPSAMPLERS)}")
        if not 0.0 <= bn_momentum <= 1.0:
            raise ValueError(f"UNet bn_momentum must be in [0, 1]; got {bn_momentum}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNet dropout must be in [0, 1); got {dropout}")
        check_encoder(encoder)
        std_values = _per_band(std, 1.0, int(in_channels), "std")
        if np.any(std_values <= 0):
            raise ValueError(f"UNet std must be > 0 for every band; got "
                             f"{std_values.tolist()}")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.filters = int(filters)
        self.depth = int(depth)
        self.residual = bool(residual)
        self.center_name = center
        self.dropout = float(dropout)
        self._config = dict(
            num_classes=self.num_classes, in_channels=self.in_channels,
            filters=self.filters, depth=self.depth, residual=self.residual,
            center=center, policy=policy.name, activation=activation,
            upsample=upsample, dropout=self.dropout,
            cross_replica_bn=bool(cross_replica_bn), bn_momentum=float(bn_momentum),
            encoder=encoder)
        self.encoder_name = encoder
        self.mean = self.make_variable(
            "mean", _per_band(mean, 0.0, self.in_channels, "mean"), trainable=False)
        self.std = self.make_variable("std", std_values, trainable=False)

        block = ResidualBlock if residual else ConvBlock
        common = dict(activation=activation, cross_replica_bn=cross_replica_bn,
                      bn_momentum=bn_momentum, policy=policy)
        widths = [self.filters * 2 ** i for i in range(self.depth)]
        self.encoder_frozen = None
        if encoder != "unet" and freezable_encoder:
            # ONLY_FIRST_REPLICA: the optimizer assigns it inside strategy.run.
            with self.name_scope:
                self.encoder_frozen = tf.Variable(
                    0.0, trainable=False, name="encoder_frozen",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        with self.name_scope:
            if encoder == "unet":
                self.encoder = [block(w, name=f"encoder{i}", **common)
                                for i, w in enumerate(widths)]
            else:
                self.encoder = ENCODERS[encoder](
                    max_stride=2 ** self.depth, cross_replica_bn=cross_replica_bn,
                    bn_momentum=bn_momentum, frozen=self.encoder_frozen, policy=policy,
                    name=encoder)
            self.center = make_center(center, self.filters * 2 ** self.depth,
                                      module_name="center", **common)
            self.upsamplers = [make_upsampler(upsample, w, policy=policy,
                                              name=f"up{i}")
                               for i, w in enumerate(widths)]
            self.decoder = [block(w, name=f"decoder{i}", **common)
                            for i, w in enumerate(widths)]
            self.head = Conv2D(self.num_classes, 1, use_bias=True,
                               policy=policy, name="head")

    @property
    def config(self) -> dict:
        """The constructor arguments (JSON types) except `mean`/`std`, whose
        values live in the variables: `UNet(**model.config, mean=..., std=...)`
        rebuilds the same architecture."""
        return dict(self._config)

    @property
    def encoder_variables(self) -> tuple:
        """The trainable variables of a pretrained encoder (the parameter
        group that fine-tuning freezes or slows down); () for "unet"."""
        if self.encoder_name == "unet":
            return ()
        return tuple(self.encoder.trainable_variables)

    def _check_input(self, images: tf.Tensor) -> tf.Tensor:
        """Static and run-time checks of [B,H,W,C]; returns `images`."""
        if images.shape.rank is not None and images.shape.rank != 4:
            raise ValueError(f"UNet expects images [B,H,W,C]; got shape "
                             f"{images.shape}")
        channels = images.shape[-1]
        if channels is not None and channels != self.in_channels:
            raise ValueError(f"UNet was built for in_channels={self.in_channels} "
                             f"bands; got images with {channels} channels "
                             f"(shape {images.shape})")
        multiple = 2 ** self.depth
        for axis, size in (("height", images.shape[1]), ("width", images.shape[2])):
            if size is not None and size % multiple:
                raise ValueError(
                    f"UNet depth={self.depth} needs image height and width "
                    f"that are multiples of 2**depth={multiple}; got {axis} "
                    f"{size} (shape {images.shape})")
        if images.shape[1] is None or images.shape[2] is None:
            # Only known at run time (a tf.function traced with None sizes).
            tf.debugging.assert_equal(
                tf.math.floormod(tf.shape(images)[1:3], multiple), 0,
                message=(f"UNet depth={self.depth} needs image height and "
                         f"width that are multiples of 2**depth={multiple}"))
        return images

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        """images [B,H,W,C] raw bands -> logits [B,H,W,K] float32."""
        images = self._check_input(tf.convert_to_tensor(images))
        # (x - mean) / std as one multiply-add, in float32 for raw uint8/uint16.
        inv_std = 1.0 / self.std
        x = tf.cast(images, tf.float32) * inv_std - self.mean * inv_std
        x = tf.cast(x, self.compute_dtype)
        if self.encoder_name == "unet":
            skips = []
            for block in self.encoder:
                x = block(x, training=training)
                skips.append(x)
                x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
        else:
            features = self.encoder(x, training=training)
            skips = [features.get(2 ** i) for i in range(self.depth)]
            x = features[2 ** self.depth]
        x = self.center(x, training=training)
        x = apply_dropout(x, self.dropout, training=training)
        for i in reversed(range(self.depth)):
            x = self.upsamplers[i](x)
            if skips[i] is not None:
                x = tf.concat([x, skips[i]], axis=-1)
            x = self.decoder[i](x, training=training)
        return tf.cast(self.head(x), tf.float32)
