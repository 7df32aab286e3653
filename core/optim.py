"""Hand-written optimizers: SGD with (Nesterov) momentum, and AdamW.

Each update rule is a pure function (`sgd_momentum_update`, `adamw_update`)
with its maths in the docstring; a `tf.Module` owns the state around it, in
the style of Sonnet 2's `momentum.py`. `_Optimizer` holds what the two share:
lazy slots, decoupled weight decay on the `decay_variables` only, skipped
loss-scaling steps (`finite`) and tf.distribute.

Parameter groups (`add_group`, fine-tuning a pretrained encoder): a named
set of variables whose learning rate is multiplied by `lr_multiplier`, and
which is frozen (variables and slots left bit-identical, weight decay
included) while `iterations < freeze_steps`. Both are variables of the
optimizer, so they are in its checkpoint and a resumed run continues with
them. A group may carry a `frozen_flag` (float32 variable, the model's batch
norms read it); `begin_step()`, called by the train step before the forward
pass, sets it to 1 while the group is frozen at this step, 0 after, and it
keeps that value after the step (so a batch-norm recompute between steps
sees the state of the step just trained).

Under a tf.distribute strategy, `apply` called inside `strategy.run` sums the
per-replica gradients (as Keras does: scale each replica's loss by
1 / global_batch_size) and updates the mirrored variables once per device in
cross-replica context (`merge_call` + `extended.update`). Called in
cross-replica context (or without a strategy) it applies the gradients as
given.
"""
from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

OPTIMIZERS = ("sgd", "adamw")
# Weight decay when none is given: SGD's (and Keras') 0, torch.optim.AdamW's 0.01.
DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "adamw": 0.01}


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

    torch.optim.SGD keeps a buffer of gradients instead, and applies the
    current learning rate to all of it:

        b' = m b + g,   p' = p - a b'             (torch, heavy ball)

    At a constant a the two agree (v = -a b) up to float32 round-off. When
    a changes (one-cycle, plateau) they do not: here the velocity carries
    the past steps at the learning rates they were taken with, in torch they
    are re-scaled by the new one. From v = b = 0, two steps with learning
    rates a1 then a2 and gradients g1, g2:

        Keras-style (here): p2 = p - a1 g1 - m a1 g1 - a2 g2
        torch:              p2 = p - a1 g1 - m a2 g1 - a2 g2

    a difference of m g1 (a2 - a1). (Torch's weight_decay is also L2 added
    to g, not this decoupled decay.)

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


def _one_minus(beta, dtype) -> tf.Tensor:
    """1 - beta, in double for a Python float as torch (1 - 0.999 in float32 is 1.3e-5 off)."""
    if isinstance(beta, (int, float)):
        return tf.constant(1.0 - beta, dtype)
    return 1.0 - tf.cast(beta, dtype)


def _one_minus_power(beta, step: tf.Tensor, dtype) -> tf.Tensor:
    """1 - beta**step without the cancellation of `1 - pow` in float32:
    -expm1(step * log(beta)); log(beta) in double when beta is a Python float
    (0.999 has no exact float32 form, and 1 - 0.999**1 would be off by 1e-5)."""
    if isinstance(beta, (int, float)):
        log_beta = tf.constant(math.log(beta) if beta > 0 else -math.inf, dtype)
    else:
        log_beta = tf.math.log(tf.cast(beta, dtype))
    return -tf.math.expm1(tf.cast(step, dtype) * log_beta)


def adamw_update(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor,
                 learning_rate: tf.Tensor, beta_1, beta_2, epsilon: float,
                 weight_decay: float, step: tf.Tensor
                 ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One step of AdamW, torch.optim.AdamW's formulation (amsgrad=False).

    With parameters p, gradient g (taken at p), first and second moments m
    and v, learning rate a, betas b1 and b2, epsilon e, weight decay d and
    t = 1, 2, ... the number of this update:

        p1 = p (1 - a d)                    decoupled weight decay, first
        m' = b1 m + (1 - b1) g
        v' = b2 v + (1 - b2) g^2
        p' = p1 - a / (1 - b1^t) * m' / (sqrt(v') / sqrt(1 - b2^t) + e)

    As in torch: the decay uses the learning rate but not the moments, e is
    added after the bias correction of v (Keras adds its epsilon before it,
    which is e sqrt(1 - b2^t) here), and the corrections use the current b1
    and b2, so a schedule that cycles b1 (torch's OneCycleLR with
    cycle_momentum=True) changes 1 - b1^t with it.

    Args:
      param, grad, m, v: tensors of one shape and float dtype.
      learning_rate: scalar of that dtype.
      beta_1, beta_2: scalars in [0, 1), Python floats or tensors.
      epsilon: e >= 0.
      weight_decay: d >= 0 (0 for variables that are not decayed).
      step: integer scalar t >= 1.
    Returns:
      (new_param, new_m, new_v).
    """
    dtype = param.dtype
    if weight_decay:
        param = param * (1.0 - learning_rate * tf.cast(weight_decay, dtype))
    # m + (1 - b1)(g - m): torch's lerp, the same value up to round-off.
    m = m + _one_minus(beta_1, dtype) * (grad - m)
    v = v * tf.cast(beta_2, dtype) + _one_minus(beta_2, dtype) * grad * grad
    step_size = learning_rate / _one_minus_power(beta_1, step, dtype)
    denom = tf.sqrt(v) / tf.sqrt(_one_minus_power(beta_2, step, dtype)) + tf.cast(epsilon, dtype)
    return param - step_size * m / denom, m, v


class _SlotIndex:
    """variable.ref() -> slot index; a plain object so tf.Module does not track it."""

    def __init__(self):
        self.index: dict = {}
        self.group_of: dict = {}  # variable.ref() -> group name
        self.flags: dict = {}     # group name -> the model's frozen flag


class ParameterGroup(tf.Module):
    """A group's learning-rate multiplier and freeze length (checkpointed).

    Attributes:
      lr_multiplier: float32 tf.Variable, scales the learning rate.
      freeze_steps: int64 tf.Variable, steps (optimizer iterations) during
        which the group is not updated at all.
    """

    def __init__(self, name: str, lr_multiplier: float, freeze_steps: int):
        super().__init__(name=name)
        if not float(lr_multiplier) >= 0:
            raise ValueError(f"parameter group {name}: lr_multiplier must be >= 0, "
                             f"got {lr_multiplier}")
        if int(freeze_steps) < 0:
            raise ValueError(f"parameter group {name}: freeze_steps must be >= 0, "
                             f"got {freeze_steps}")
        with self.name_scope:
            self.lr_multiplier = tf.Variable(float(lr_multiplier), dtype=tf.float32,
                                             trainable=False, name="lr_multiplier")
            self.freeze_steps = tf.Variable(int(freeze_steps), dtype=tf.int64,
                                            trainable=False, name="freeze_steps")

    def frozen(self, iterations: tf.Tensor) -> tf.Tensor:
        """bool scalar: frozen at the step whose index is `iterations`."""
        return tf.less(iterations, self.freeze_steps)


def _slot_dtype(dtype: tf.DType) -> tf.DType:
    """Slots of half-precision variables are float32 (Adam's v would underflow)."""
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


class _Optimizer(tf.Module):
    """What SGD and AdamW share: learning rate, iteration counter, slots,
    weight decay on the listed variables, skipped steps, tf.distribute.

    A subclass names its slot lists in `_SLOTS`, returns the scalars its rule
    needs from `_hyper` (variables passed through `extended.update`, so each
    device reads its own copy) and applies the rule in `_rule`.
    """

    _SLOTS: tuple = ()

    def __init__(self, learning_rate: float, weight_decay: float, name: str):
        super().__init__(name=name)
        kind = type(self).__name__
        if not float(learning_rate) >= 0:
            raise ValueError(f"{kind}: learning_rate must be >= 0, got {learning_rate}")
        if not float(weight_decay) >= 0:
            raise ValueError(f"{kind}: weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = float(weight_decay)
        self.learning_rate = self._scalar("learning_rate", float(learning_rate), tf.float32)
        self.iterations = self._scalar("iterations", 0, tf.int64)
        for slot in self._SLOTS:
            setattr(self, slot, [])
        self.groups: dict = {}
        self._slots = _SlotIndex()

    def _scalar(self, name: str, value, dtype) -> tf.Variable:
        # ONLY_FIRST_REPLICA lets a schedule assign it inside strategy.run.
        with self.name_scope:
            return tf.Variable(value, dtype=dtype, name=name, trainable=False,
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    built = property(lambda self: bool(self._slots.index))

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Creates the slots (call under strategy.scope() if any).

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
                for slot in self._SLOTS:
                    getattr(self, slot).append(tf.Variable(
                        tf.zeros(var.shape, _slot_dtype(var.dtype)), trainable=False,
                        name=f"{slot}_{i}"))

    def add_group(self, name: str, variables: Sequence[tf.Variable], *,
                  lr_multiplier: float = 1.0, freeze_steps: int = 0,
                  frozen_flag: tf.Variable | None = None) -> ParameterGroup:
        """Makes `variables` a parameter group (see the module docstring).

        Call once, before training (under the strategy's scope if any),
        before restoring a checkpoint: the restore then sets the group's
        variables to the checkpointed values.

        Args:
          name: the group's name (its key in the checkpoint).
          variables: trainable variables, in no other group.
          lr_multiplier: >= 0; the group's learning rate is lr * this.
          freeze_steps: >= 0; no update at steps 0 .. freeze_steps - 1.
          frozen_flag: optional float32 variable set by `begin_step`.
        """
        if name in self.groups:
            raise ValueError(f"{type(self).__name__}: parameter group {name!r} exists")
        with tf.init_scope(), tf.distribute.get_strategy().scope(), self.name_scope:
            group = ParameterGroup(name, lr_multiplier, freeze_steps)
        for var in variables:
            if var.ref() in self._slots.group_of:
                raise ValueError(f"{var.name} is already in parameter group "
                                 f"{self._slots.group_of[var.ref()]!r}")
            self._slots.group_of[var.ref()] = name
        self.groups[name] = group
        if frozen_flag is not None:
            self._slots.flags[name] = frozen_flag
            with tf.init_scope():
                frozen_flag.assign(tf.cast(group.frozen(self.iterations), tf.float32))
        return group

    def begin_step(self) -> None:
        """Sets each group's frozen flag for the step about to run (call
        before the forward pass; nothing to do without groups)."""
        for name, flag in self._slots.flags.items():
            flag.assign(tf.cast(self.groups[name].frozen(self.iterations), flag.dtype))

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
            identity; None means all `variables` (as Keras and torch).
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
            raise ValueError(f"{type(self).__name__}.apply: {len(grads)} gradients for "
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
        hyper = self._hyper()
        updates = []
        for grad, var in pairs:
            index = self._slots.index.get(var.ref())
            if index is None:
                raise ValueError(f"{type(self).__name__}.apply: variable {var.name} was not "
                                 "among the variables of the first apply/build call")
            decay = self.weight_decay if var.ref() in decayed else 0.0
            slots = [getattr(self, slot)[index] for slot in self._SLOTS]
            kwargs = dict(weight_decay=decay)
            group = self.groups.get(self._slots.group_of.get(var.ref()))
            if group is not None:
                # Variables, not values: each device reads its own copy.
                kwargs.update(lr_multiplier=group.lr_multiplier, group=group)
            updates.append(strategy.extended.update(
                var, self._update_one, args=(grad, slots, hyper, finite),
                kwargs=kwargs, group=False))
        with tf.control_dependencies(tf.nest.flatten(updates)):
            # `unscale` makes `finite` the same on every replica: any copy will do.
            self._after_update(None if finite is None
                               else strategy.experimental_local_results(finite)[0])
            return self.iterations.assign_add(1)

    def _hyper(self) -> tuple:
        raise NotImplementedError

    def _after_update(self, finite) -> None:  # AdamW counts the applied updates
        pass

    def _rule(self, param, grad, slots, hyper, weight_decay) -> tuple:
        """(new_param, *new_slots) in the slots' dtype."""
        raise NotImplementedError

    def _update_one(self, var, grad, slots, hyper, finite, weight_decay,
                    lr_multiplier=None, group=None):
        if group is not None:
            # The learning rate comes first in every optimizer's hyper; a
            # frozen group is masked like a skipped step.
            hyper = (hyper[0] * lr_multiplier,) + tuple(hyper[1:])
            live = tf.logical_not(group.frozen(self.iterations))
            finite = live if finite is None else tf.logical_and(finite, live)
        dtype = slots[0].dtype
        new_param, *new_slots = self._rule(
            tf.cast(var, dtype), tf.cast(grad, dtype),
            [tf.convert_to_tensor(s) for s in slots], hyper, weight_decay)
        new_param = tf.cast(new_param, var.dtype)
        if finite is not None:
            new_param = tf.where(finite, new_param, var)
            new_slots = [tf.where(finite, n, s) for n, s in zip(new_slots, slots)]
        return tf.group(*[s.assign(n) for s, n in zip(slots, new_slots)],
                        var.assign(new_param))


class SGD(_Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and weight decay.

    Keras' formulation, v <- m v - lr g; p <- p + v (see
    sgd_momentum_update): under a changing learning rate it differs from
    torch.optim.SGD's b <- m b + g; p <- p - lr b, which applies the new
    learning rate to the whole momentum buffer.

    Attributes:
      learning_rate: float32 tf.Variable (a schedule assigns it).
      momentum: float32 tf.Variable (one-cycle assigns it too).
      iterations: int64 tf.Variable, number of `apply` calls (skipped
        non-finite steps included, so schedules keep their pace).
      velocity: list of slots, one per variable of the first `apply` (or
        `build`) call, in that order; created lazily.

    Args:
      learning_rate: initial learning rate >= 0.
      momentum: initial momentum in [0, 1).
      nesterov: Nesterov momentum.
      weight_decay: decoupled decay d >= 0 (see sgd_momentum_update).
    """

    _SLOTS = ("velocity",)

    def __init__(self, learning_rate: float, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0,
                 name: str = "sgd"):
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        super().__init__(learning_rate, weight_decay, name)
        self.nesterov = bool(nesterov)
        self.momentum = self._scalar("momentum", float(momentum), tf.float32)

    def _hyper(self):
        return (self.learning_rate, self.momentum)

    def _rule(self, param, grad, slots, hyper, weight_decay):
        lr, momentum = (tf.cast(h, param.dtype) for h in hyper)
        return sgd_momentum_update(param, grad, slots[0], lr, momentum, weight_decay,
                                   self.nesterov)


class AdamW(_Optimizer):
    """Adam with decoupled weight decay, as torch.optim.AdamW.

    Under one-cycle the schedule assigns `momentum`, which here is beta_1:
    torch's OneCycleLR cycles beta_1 between base_momentum and max_momentum
    when cycle_momentum=True (its default), and this follows torch.

    Attributes:
      learning_rate: float32 tf.Variable (a schedule assigns it).
      beta_1: float32 tf.Variable; `momentum` is the same variable, the
        name a schedule and the train step use for every optimizer.
      beta_2, epsilon, weight_decay: Python floats (see adamw_update).
      iterations: int64 tf.Variable, number of `apply` calls (skipped
        non-finite steps included, so schedules keep their pace).
      updates: int64 tf.Variable, updates actually applied: the t of the
        bias corrections (a skipped float16 step does not count, as with
        torch's GradScaler, which then does not call `step`). One count for
        all variables: torch counts per parameter, which differs only for a
        variable that gets no gradient at some step.
      m, v: lists of float32 slots (first and second moments), one per
        variable of the first `apply` (or `build`) call; created lazily.
    """

    _SLOTS = ("m", "v")

    def __init__(self, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, weight_decay: float = 0.01, name: str = "adamw"):
        for label, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(beta) < 1.0:
                raise ValueError(f"AdamW: {label} must be in [0, 1), got {beta}")
        if not float(epsilon) >= 0:
            raise ValueError(f"AdamW: epsilon must be >= 0, got {epsilon}")
        super().__init__(learning_rate, weight_decay, name)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.beta_1 = self._scalar("beta_1", float(beta_1), tf.float32)
        self.updates = self._scalar("updates", 0, tf.int64)

    @property
    def momentum(self) -> tf.Variable:
        """beta_1: what one-cycle cycles (see the class docstring)."""
        return self.beta_1

    def _hyper(self):
        # t of this update; when the step is skipped the result is discarded.
        return (self.learning_rate, self.beta_1, self.updates + 1)

    def _after_update(self, finite):
        self.updates.assign_add(1 if finite is None else tf.cast(finite, tf.int64))

    def _rule(self, param, grad, slots, hyper, weight_decay):
        lr, beta_1, step = hyper
        return adamw_update(param, grad, slots[0], slots[1], tf.cast(lr, param.dtype),
                            beta_1, self.beta_2, self.epsilon, weight_decay, step)


def make_optimizer(name: str, learning_rate: float, *, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float | None = None,
                   beta_2: float = 0.999, epsilon: float = 1e-8) -> _Optimizer:
    """The optimizer a config names: "sgd" or "adamw".

    `momentum` is SGD's momentum or AdamW's beta_1 (what one-cycle cycles);
    `weight_decay` None is DEFAULT_WEIGHT_DECAY[name]; `beta_2` and
    `epsilon` are AdamW's.

    Raises:
      ValueError: an unknown name, or nesterov=True for AdamW.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    if weight_decay is None:
        weight_decay = DEFAULT_WEIGHT_DECAY[name]
    if name == "sgd":
        return SGD(learning_rate, momentum=momentum, nesterov=nesterov,
                   weight_decay=weight_decay)
    if nesterov:
        raise ValueError("nesterov=True is an SGD option; AdamW has no Nesterov variant here")
    return AdamW(learning_rate, beta_1=momentum, beta_2=beta_2, epsilon=epsilon,
                 weight_decay=weight_decay)
