"""Convolutions: Conv2D and the two 2x upsamplings of the U-Net decoder.

Variables are float32 (`w` [kh, kw, in, out], optional `b` [out]); each call
casts the input and the kernel to the policy's compute dtype, so a
`mixed_bfloat16` model runs its convolutions in bfloat16 (oneDNN on CPU:
2x float32's throughput with AVX-512 BF16, more with AMX).
"""
from __future__ import annotations

import tensorflow as tf

from core.precision import Policy
from layers.base import Module, he_normal, once, static_channels


def _positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _padding(value: str) -> str:
    if value not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID'; got {value!r}")
    return value


class Conv2D(Module):
    """2-D convolution, NHWC, He-normal kernel, optional bias.

    Args:
      filters: output channels.
      kernel_size: square kernel side.
      stride: spatial stride.
      dilation: dilation rate (atrous convolution); stride must then be 1.
      use_bias: add a bias `b` (off before a batch norm, whose offset makes
        it redundant).
      padding: "SAME" or "VALID".

    Call: `x` [B,H,W,C] any float dtype -> [B,H',W',filters] compute dtype.
    """

    def __init__(self, filters: int, kernel_size: int = 3, *, stride: int = 1,
                 dilation: int = 1, use_bias: bool = True,
                 padding: str = "SAME", policy: "str | Policy" = "float32",
                 name: str | None = "conv"):
        super().__init__(policy=policy, name=name)
        self.filters = _positive("filters", filters)
        self.kernel_size = _positive("kernel_size", kernel_size)
        self.stride = _positive("stride", stride)
        self.dilation = _positive("dilation", dilation)
        if self.stride > 1 and self.dilation > 1:
            raise ValueError("Conv2D: stride and dilation cannot both exceed 1")
        self.padding = _padding(padding)
        self.use_bias = bool(use_bias)

    @once
    def _build(self, x: tf.Tensor) -> None:
        cin = static_channels(x, self.name)
        k = self.kernel_size
        self.w = self.make_variable(
            "w", lambda: he_normal((k, k, cin, self.filters), fan_in=k * k * cin))
        if self.use_bias:
            self.b = self.make_variable("b", lambda: tf.zeros([self.filters]))

    def _own_decay_variables(self) -> tuple[tf.Variable, ...]:
        return (self.w,) if hasattr(self, "w") else ()

    def _convolve(self, x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | None):
        """conv2d(x, kernel) + bias in the compute dtype (kernel/bias float32)."""
        dtype = self.compute_dtype
        y = tf.nn.conv2d(tf.cast(x, dtype), tf.cast(kernel, dtype),
                         strides=self.stride, padding=self.padding,
                         dilations=self.dilation)
        return y if bias is None else tf.nn.bias_add(y, tf.cast(bias, dtype))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        self._build(x)
        return self._convolve(x, self.w, self.b if self.use_bias else None)

    def scaled(self, x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
        """`self(x) * scale + shift` per output channel, computed as one
        convolution with the kernel scaled (in float32, before the cast) and
        `shift` as its bias: the batch-norm folding of inference. On CPU the
        conv, the bias and a following ReLU then run as one fused oneDNN
        convolution instead of three passes over the activations.

        Args: `scale`, `shift` float32 [filters]; `self` must have no bias.
        """
        self._build(x)
        if self.use_bias:
            raise ValueError(f"{self.name}: scaled() folds a shift into a conv "
                             "without a bias; this conv has one")
        return self._convolve(x, self.w * scale, shift)


class ConvTranspose2x(Module):
    """2x upsampling by a transposed convolution, kernel 2, stride 2.

    With kernel size equal to the stride the output windows do not overlap:
    output pixel (2i+a, 2j+b) is `x[i, j] @ w[a, b]`. That is one 1x1
    convolution to 4*filters channels followed by `depth_to_space`, a
    matrix product and a reshuffle that run much faster on CPU than the
    general `conv2d_transpose` (and its gradient), with identical results.

    Variables: `w` [2, 2, filters, in] (the `conv2d_transpose` layout), `b`.
    Call: `x` [B,H,W,C] -> [B,2H,2W,filters] compute dtype.
    """

    def __init__(self, filters: int, *, use_bias: bool = True,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = _positive("filters", filters)
        self.use_bias = bool(use_bias)

    @once
    def _build(self, x: tf.Tensor) -> None:
        cin = static_channels(x, self.name)
        # Each output pixel receives one tap, i.e. fan_in = cin.
        self.w = self.make_variable(
            "w", lambda: he_normal((2, 2, self.filters, cin), fan_in=cin))
        if self.use_bias:
            self.b = self.make_variable("b", lambda: tf.zeros([self.filters]))

    def _own_decay_variables(self) -> tuple[tf.Variable, ...]:
        return (self.w,) if hasattr(self, "w") else ()

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        self._build(x)
        dtype = self.compute_dtype
        cin = self.w.shape[-1]
        # [a, b, out, in] -> [in, a, b, out] -> [1, 1, in, 4*out]: channel
        # (a*2 + b)*out + o is what depth_to_space puts at offset (a, b).
        kernel = tf.reshape(tf.transpose(tf.cast(self.w, dtype), [3, 0, 1, 2]),
                            [1, 1, cin, 4 * self.filters])
        y = tf.nn.conv2d(tf.cast(x, dtype), kernel, strides=1, padding="VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.tile(tf.cast(self.b, dtype), [4]))
        return tf.nn.depth_to_space(y, 2)


def upsample_nearest_2x(x: tf.Tensor) -> tf.Tensor:
    """Nearest-neighbour 2x upsampling that keeps the dtype: [B,H,W,C] -> [B,2H,2W,C]."""
    shape = tf.shape(x)
    y = tf.tile(x[:, :, None, :, None, :], [1, 1, 2, 1, 2, 1])
    return tf.reshape(y, [shape[0], 2 * shape[1], 2 * shape[2], x.shape[-1]])


class ResizeConv2x(Module):
    """2x upsampling by nearest-neighbour resize then a 3x3 convolution.

    The alternative to transposed convolutions that avoids their checkerboard
    artefacts (Odena et al., 2016). Variables: the inner Conv2D's `w`, `b`.
    Call: `x` [B,H,W,C] -> [B,2H,2W,filters] compute dtype.
    """

    def __init__(self, filters: int, *, use_bias: bool = True,
                 policy: "str | Policy" = "float32", name: str | None = None):
        super().__init__(policy=policy, name=name)
        self.filters = _positive("filters", filters)
        with self.name_scope:
            self.conv = Conv2D(filters, 3, use_bias=use_bias, policy=policy,
                               name="conv")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(x, self.compute_dtype)
        return self.conv(upsample_nearest_2x(x))


class DepthwiseConv2D(Module):
    """Depthwise 2-D convolution (one filter per channel, multiplier 1), NHWC.

    ConvNeXt's 7x7 spatial mixing. Variables: `w` [k, k, C, 1] (the
    `tf.nn.depthwise_conv2d` layout), optional `b` [C].
    Call: `x` [B,H,W,C] -> [B,H',W',C] compute dtype.
    """

    def __init__(self, kernel_size: int = 7, *, stride: int = 1, use_bias: bool = True,
                 padding: str = "SAME", policy: "str | Policy" = "float32",
                 name: str | None = "depthwise"):
        super().__init__(policy=policy, name=name)
        self.kernel_size = _positive("kernel_size", kernel_size)
        self.stride = _positive("stride", stride)
        self.padding = _padding(padding)
        self.use_bias = bool(use_bias)

    @once
    def _build(self, x: tf.Tensor) -> None:
        cin = static_channels(x, self.name)
        k = self.kernel_size
        self.w = self.make_variable("w", lambda: he_normal((k, k, cin, 1), fan_in=k * k))
        if self.use_bias:
            self.b = self.make_variable("b", lambda: tf.zeros([cin]))

    def _own_decay_variables(self) -> tuple[tf.Variable, ...]:
        return (self.w,) if hasattr(self, "w") else ()

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        self._build(x)
        dtype = self.compute_dtype
        s = self.stride
        y = tf.nn.depthwise_conv2d(tf.cast(x, dtype), tf.cast(self.w, dtype),
                                   strides=[1, s, s, 1], padding=self.padding)
        return tf.nn.bias_add(y, tf.cast(self.b, dtype)) if self.use_bias else y


UPSAMPLERS = {"transpose": ConvTranspose2x, "resize": ResizeConv2x}


def make_upsampler(kind: str, filters: int, *, policy: "str | Policy" = "float32",
                   name: str | None = None) -> Module:
    """A 2x upsampler by name: "transpose" or "resize"."""
    try:
        cls = UPSAMPLERS[kind]
    except KeyError:
        raise ValueError(f"unknown upsampling {kind!r}; expected one of "
                         f"{sorted(UPSAMPLERS)}") from None
    return cls(filters, policy=policy, name=name)
