"""SGD with momentum or Nesterov momentum and decoupled weight decay.

The update rule is the pure function `sgd_momentum_update`; the `SGD` module
owns the state around it (learning rate, momentum, iteration counter and one
velocity slot per variable), in the style of Sonnet 2's `momentum.py`.

Under a tf.distribute strategy, `apply` called inside `strategy.run` sums the
per-replica gradients (as Keras does: scale each replica's loss by
1 / global_batch_size) and updates the mirrored variables once per device in
cross-replica context (`merge_call` + `extended.update`). Called in
cross-replica context (or without a strategy) it applies the gradients as
given.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def sgd_momentum_update(param: tf.Tensor, grad: tf.Tensor, velocity: tf.Tensor,
                        learning_rate: tf.Tensor, momentum: tf.Tensor,
                        weight_decay: float, nesterov: bool
                        ) -> tuple[tf.Tensor, tf.Tensor]:
    """One step of SGD with momentum, Keras 3's formulation.

    With parameters p, gradient g (taken at p), velocity v, learning rate a,
    momentum m and weight decay d:

        p1 = p - a d p                      decoupled weight decay, first
        v' = m v - a g
        p' = p1 + v'                        heavy ball
        p' = p1 + m v' - a g                Nesterov

    which is `tf.keras.optimizers.SGD(a, m, nesterov, weight_decay=d)`. Note
    the decay uses the learning rate (it follows the schedule) but not the
    momentum, and the gradient is that of p, not p1.

    Args:
      param, grad, velocity: tensors of one shape and float dtype.
      learning_rate, momentum: scalars of that dtype.
      weight_decay: d >= 0 (0 for variables that are not decayed).
      nesterov: Nesterov momentum if True.
    Returns:
      (new_param, new_velocity).
    """
    if weight_decay:
        param = param - param * tf.cast(weight_decay, param.dtype) * learning_rate
    velocity = velocity * momentum - grad * learning_rate
    if nesterov:
        return param + (velocity * momentum - grad * learning_rate), velocity
    return param + velocity, velocity


class _SlotIndex:
    """variable.ref() -> slot index; a plain object so tf.Module does not track it."""

    def __init__(self):
        self.index: dict = {}


class SGD(tf.Module):
    """Stochastic gradient descent with (Nesterov) momentum and weight decay.

    Attributes:
      learning_rate: float32 tf.Variable (a schedule assigns it).
      momentum: float32 tf.Variable (one-cycle assigns it too).
      iterations: int64 tf.Variable, number of `apply` calls (skipped
        non-finite steps included, so schedules keep their pace).
      velocity: list of slots, one per variable of the first `apply` (or
        `build`) call, in that order; created lazily.

    Args:
      learning_rate: initial learning rate > 0.
      momentum: initial momentum in [0, 1).
      nesterov: Nesterov momentum.
      weight_decay: decoupled decay d >= 0 (see sgd_momentum_update).
    """

    def __init__(self, learning_rate: float, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0,
                 name: str = "sgd"):
        super().__init__(name=name)
        if not float(learning_rate) >= 0:
            raise ValueError(f"SGD: learning_rate must be >= 0, got {learning_rate}")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if not float(weight_decay) >= 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        # ONLY_FIRST_REPLICA lets a schedule assign them inside strategy.run.
        replicated = dict(trainable=False,
                          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        with self.name_scope:
            self.learning_rate = tf.Variable(float(learning_rate), dtype=tf.float32,
                                             name="learning_rate", **replicated)
            self.momentum = tf.Variable(float(momentum), dtype=tf.float32,
                                        name="momentum", **replicated)
            self.iterations = tf.Variable(0, dtype=tf.int64, name="iterations",
                                          **replicated)
        self.velocity = []
        self._slots = _SlotIndex()

    @property
    def built(self) -> bool:
        return bool(self._slots.index)

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Creates the velocity slots (call under strategy.scope() if any).

        `apply` calls it on first use; calling it eagerly first is only
        needed to restore a checkpoint before the first step (restoring into
        an unbuilt optimizer also works: the slots are filled when created).
        """
        if self.built:
            return
        strategy = tf.distribute.get_strategy()
        # init_scope: slots are created once, eagerly, even from a tf.function.
        with tf.init_scope(), strategy.scope(), self.name_scope:
            for i, var in enumerate(variables):
                self._slots.index[var.ref()] = i
                self.velocity.append(tf.Variable(
                    tf.zeros(var.shape, var.dtype), trainable=False,
                    name=f"velocity_{i}"))

    def apply(self, grads: Sequence[tf.Tensor | None],
              variables: Sequence[tf.Variable], *,
              decay_variables: Sequence[tf.Variable] | None = None,
              finite: tf.Tensor | None = None,
              aggregate_gradients: bool = True) -> None:
        """Applies one update.

        Args:
          grads: one gradient (or None, skipped) per variable, float32.
          variables: the trainable variables, the same set on every call.
          decay_variables: variables weight decay applies to, matched by
            identity; None means all `variables` (as Keras).
          finite: optional bool scalar; where False the variables and slots
            are left unchanged (a skipped loss-scaling step). Implemented
            with tf.where, so it is legal inside strategy.run where a
            tf.cond around merge_call is not.
          aggregate_gradients: inside strategy.run, sum the gradients over
            replicas first (False if the caller already all-reduced them).
        Raises:
          ValueError: grads and variables of different lengths, or a
            variable that was not in the first call.
        """
        grads, variables = list(grads), list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"SGD.apply: {len(grads)} gradients for "
                             f"{len(variables)} variables")
        if decay_variables is None:
            decayed = {v.ref() for v in variables}
        else:
            decayed = {v.ref() for v in decay_variables}
        pairs = [(tf.convert_to_tensor(g), v) for g, v in zip(grads, variables)
                 if g is not None]
        ctx = tf.distribute.get_replica_context()
        if ctx is None:  # cross-replica context: gradients are already global
            return self._apply_cross_replica(tf.distribute.get_strategy(), pairs,
                                             variables, decayed, finite)
        if aggregate_gradients and ctx.num_replicas_in_sync > 1:
            summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [g for g, _ in pairs])
            pairs = list(zip(summed, [v for _, v in pairs]))
        # Python state goes by closure: merge_call would regroup it per replica.
        grads = [g for g, _ in pairs]
        targets = [v for _, v in pairs]

        @tf.autograph.experimental.do_not_convert
        def merged(strategy, grads, finite):
            return self._apply_cross_replica(strategy, list(zip(grads, targets)),
                                             variables, decayed, finite)

        return ctx.merge_call(merged, args=(grads, finite))

    @tf.autograph.experimental.do_not_convert
    def _apply_cross_replica(self, strategy, pairs, variables, decayed, finite):
        self.build(variables)
        updates = []
        for grad, var in pairs:
            index = self._slots.index.get(var.ref())
            if index is None:
                raise ValueError(f"SGD.apply: variable {var.name} was not among the "
                                 "variables of the first apply/build call")
            decay = self.weight_decay if var.ref() in decayed else 0.0
            updates.append(strategy.extended.update(
                var, self._update_one,
                args=(grad, self.velocity[index], self.learning_rate, self.momentum,
                      finite),
                kwargs=dict(weight_decay=decay), group=False))
        with tf.control_dependencies(tf.nest.flatten(updates)):
            return self.iterations.assign_add(1)

    def _update_one(self, var, grad, velocity, learning_rate, momentum, finite,
                    weight_decay):
        lr = tf.cast(learning_rate, var.dtype)
        mu = tf.cast(momentum, var.dtype)
        new_param, new_velocity = sgd_momentum_update(
            tf.convert_to_tensor(var), tf.cast(grad, var.dtype),
            tf.convert_to_tensor(velocity), lr, mu, weight_decay, self.nesterov)
        if finite is not None:
            new_param = tf.where(finite, new_param, var)
            new_velocity = tf.where(finite, new_velocity, velocity)
        return tf.group(velocity.assign(new_velocity), var.assign(new_param))
