"""Dtype policies and dynamic loss scaling for mixed precision.

A policy is given to a model at construction, never read from a global:
variables stay float32, convolutions run in the compute dtype, and softmax,
losses, batch-norm statistics and logits run in float32.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Policy:
    """A named pair of dtypes.

    Attributes:
      name: "float32", "mixed_float16" or "mixed_bfloat16".
      compute_dtype: dtype of convolutions and activations.
      variable_dtype: dtype of every variable (always float32 here).
    """
    name: str
    compute_dtype: tf.DType
    variable_dtype: tf.DType = tf.float32

    @property
    def needs_loss_scaling(self) -> bool:
        """float16 underflows small gradients; bfloat16 has float32's range."""
        return self.compute_dtype == tf.float16


POLICIES = {
    "float32": Policy("float32", tf.float32),
    "mixed_float16": Policy("mixed_float16", tf.float16),
    "mixed_bfloat16": Policy("mixed_bfloat16", tf.bfloat16),
}


def get_policy(policy: "str | Policy") -> Policy:
    """Returns the Policy for a name (or the Policy itself).

    Raises:
      ValueError: naming the accepted names, for an unknown one.
    """
    if isinstance(policy, Policy):
        return policy
    try:
        return POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"unknown precision policy {policy!r}; expected one of "
            f"{sorted(POLICIES)}") from None
