"""The `Module` base of every layer: lazy variable creation and decay roles.

House style (Sonnet 2): `__init__` only stores and validates hyper-parameters;
variables are made on the first call, when the input's channel count is known,
by a method decorated with `once`. Variables are always float32; a layer casts
them to its policy's compute dtype when it uses them.

Weight decay is chosen by role, not by name: a layer lists the variables it
wants decayed in `_own_decay_variables()` (a convolution lists its kernel), and
`Module.decay_variables` gathers them over the whole module tree.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, TypeVar

import tensorflow as tf

from core.precision import Policy, get_policy

_F = TypeVar("_F", bound=Callable)


def once(method: _F) -> _F:
    """Makes `method(self, ...)` run only on its first call for each instance.

    Used for the build step: the first `__call__` creates the variables, later
    calls (including retraces of a `tf.function`) skip it. The flag is set only
    after the method returns, so a build that raises can be retried.
    """
    flag = "_once_done_" + method.__name__

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if getattr(self, flag, False):
            return None
        result = method(self, *args, **kwargs)
        object.__setattr__(self, flag, True)
        return result

    return wrapper  # type: ignore[return-value]


def he_normal(shape: tuple[int, ...], fan_in: int) -> tf.Tensor:
    """He (Kaiming) normal initial value, float32, truncated at two sigmas.

    The standard deviation sqrt(2 / fan_in) is divided by 0.8796 (the std of a
    unit normal truncated to [-2, 2]) so that the truncated draw keeps the
    variance He et al. derived for ReLU networks (same rule as Keras).
    """
    stddev = math.sqrt(2.0 / max(1, fan_in)) / 0.87962566103423978
    return tf.random.truncated_normal(shape, stddev=stddev, dtype=tf.float32)


def static_channels(x: tf.Tensor, layer: str) -> int:
    """The static size of the last axis of `x`, or a clear error."""
    channels = x.shape[-1]
    if channels is None:
        raise ValueError(
            f"{layer}: the channel axis (last) of the input must be known "
            f"statically to create the variables; got shape {x.shape}")
    return int(channels)


class Module(tf.Module):
    """Base of the layers: a policy, lazy build and weight-decay roles.

    Args:
      policy: a `core.precision.Policy` or its name; the compute dtype of the
        layer (variables are float32 whatever the policy).
      name: the module's name scope.
    """

    def __init__(self, policy: "str | Policy" = "float32",
                 name: str | None = None):
        super().__init__(name=name)
        self._policy = get_policy(policy)

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def compute_dtype(self) -> tf.DType:
        return self._policy.compute_dtype

    def make_variable(self, name: str, initial_value, *,
                      trainable: bool = True,
                      on_read: bool = False) -> tf.Variable:
        """Creates a float32 variable in this module's name scope.

        Creation runs under `tf.init_scope` so a first call inside a
        `tf.function` still makes ordinary eager variables whose initial value
        is computed once. `on_read=True` gives a variable each replica updates
        locally and that reads as the replica mean (batch-norm statistics
        under `tf.distribute`, like Keras).

        Args:
          name: variable name (`w`, `b`, `scale`, ...).
          initial_value: a NumPy array or a zero-argument callable returning
            a tensor (a callable, not a tensor, when the first call may run
            inside a `tf.function`: the value must be made eagerly).
        """
        kwargs = {}
        if on_read:
            kwargs = dict(synchronization=tf.VariableSynchronization.ON_READ,
                          aggregation=tf.VariableAggregation.MEAN)
        with tf.init_scope(), self.name_scope:
            value = initial_value() if callable(initial_value) else initial_value
            return tf.Variable(tf.cast(value, self._policy.variable_dtype),
                               name=name, trainable=trainable, **kwargs)

    def _own_decay_variables(self) -> tuple[tf.Variable, ...]:
        """The variables of this module itself (not its children) to decay."""
        return ()

    @property
    def decay_variables(self) -> tuple[tf.Variable, ...]:
        """Variables weight decay applies to: every convolution kernel.

        Gathered by role over this module and all its submodules, in the
        deterministic order `tf.Module` walks them; empty before the first
        call builds the variables.
        """
        found: list[tf.Variable] = []
        seen: set = set()
        for module in (self,) + tuple(self.submodules):
            if isinstance(module, Module):
                for v in module._own_decay_variables():
                    if v.ref() not in seen:
                        seen.add(v.ref())
                        found.append(v)
        return tuple(found)


def count_parameters(module: tf.Module) -> tuple[int, int]:
    """(trainable, non_trainable) numbers of scalars in a module's variables.

    Counts the variables that exist, so call the model once first (variables
    are built lazily). For a UNet, non-trainable ones are the batch-norm moving
    statistics and the per-band input `mean` and `std`.
    """
    trainable = sum(int(v.shape.num_elements()) for v in module.trainable_variables)
    total = sum(int(v.shape.num_elements()) for v in module.variables)
    return trainable, total - trainable
