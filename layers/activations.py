"""Pointwise non-linearities of the talk, chosen by name, and dropout.

All functions keep the input dtype (bfloat16 in, bfloat16 out), so they run in
the policy's compute dtype without casts. Dropout lives here too: like the
activations it is a parameter-free pointwise op applied between layers.

  relu        max(0, x)
  leaky_relu  max(0.1 x, x)           (the talk's slope, 0.1)
  elu         x if x >= 0 else exp(x) - 1
  sigmoid     1 / (1 + exp(-x))
  tanh        tanh(x)
  gelu        x * Phi(x), Phi the unit normal CDF (exact erf form, as
              Keras' "gelu" and torch's nn.GELU(); ConvNeXt's activation)
  linear      x
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

LEAKY_RELU_ALPHA = 0.1


def _leaky_relu(x: tf.Tensor) -> tf.Tensor:
    return tf.nn.leaky_relu(x, alpha=LEAKY_RELU_ALPHA)


def _gelu(x: tf.Tensor) -> tf.Tensor:
    return tf.nn.gelu(x, approximate=False)


def _linear(x: tf.Tensor) -> tf.Tensor:
    return x


ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "relu": tf.nn.relu,
    "leaky_relu": _leaky_relu,
    "elu": tf.nn.elu,
    "sigmoid": tf.math.sigmoid,
    "tanh": tf.math.tanh,
    "gelu": _gelu,
    "linear": _linear,
}


def get_activation(name: "str | Callable[[tf.Tensor], tf.Tensor]"
                   ) -> Callable[[tf.Tensor], tf.Tensor]:
    """The activation function for a name (a callable is returned as is).

    Raises:
      ValueError: naming the known activations, for an unknown name.
    """
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of "
                         f"{sorted(ACTIVATIONS)}") from None


def dropout(x: tf.Tensor, rate: float, *, training: bool,
            seed: int | None = None) -> tf.Tensor:
    """Inverted dropout: zero a fraction `rate` of `x` and scale by 1/(1-rate).

    Identity at inference or when `rate == 0`, so no op is added to the graph.

    Args:
      x: any shape, any float dtype (kept).
      rate: probability of dropping each element, in [0, 1).
      training: Python bool.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1); got {rate}")
    if not training or rate == 0.0:
        return x
    return tf.nn.dropout(x, rate=rate, seed=seed)
