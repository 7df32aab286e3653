"""The trainer's parts from its config, assembled in one place: the model,
the loss, the optimizer, the learning-rate schedule and the monitors
(plateau, early stopping). `controller.train`, `tools.lr_find` and
tools.train's --max_lr=auto (`lr_finder.sweep_config`) all build from here,
variables and encoder group included (`build_variables`), so a range test
sweeps the model, loss and update that training will use.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

from core import losses, optim, schedules
from train_loop import workdir as workdir_lib
from train_loop.config import TrainConfig, to_dict


def run_config(config: TrainConfig, info: dict, pipeline_config, name: str) -> dict:
    """What config.json records of a run: the model's constructor arguments
    (with the data-derived class and channel counts), the data set's info,
    the training and pipeline configs and the experiment name."""
    return {"model": dict(num_classes=len(info["class_names"]),
                          in_channels=info["in_channels"], **to_dict(config.model)),
            "data": info, "train": to_dict(config), "pipeline": to_dict(pipeline_config),
            "experiment_name": name}


def make_model(run_cfg: dict, config: TrainConfig, *, cross_replica_bn: bool = False,
               for_training: bool = True):
    """The UNet of `run_config(...)` a run starts from, with the run's
    batch-norm momentum (`cross_replica_bn`: synchronised statistics over
    replicas) and, `for_training`, a pretrained encoder's weights loaded
    (`workdir.build_model`; False: random weights, e.g. to count them)."""
    return workdir_lib.build_model(run_cfg, for_training=for_training,
                                   cross_replica_bn=cross_replica_bn,
                                   bn_momentum=config.batch_norm.momentum)


def make_loss(config: TrainConfig) -> Callable:
    """`loss(labels, logits) -> scalar` for config.loss and its options
    (`core.losses.get_loss`, `TrainConfig.loss_kwargs`)."""
    return losses.get_loss(config.loss, **config.loss_kwargs())


def make_optimizer(config: TrainConfig, learning_rate: Optional[float] = None):
    """The optimizer of config.optim, at `learning_rate` (default: max_lr)."""
    o = config.optim
    if learning_rate is None and o.max_lr is None:
        raise ValueError("config.optim.max_lr is not chosen yet (--max_lr=auto): resolve it "
                         "with train_loop.lr_finder.auto_max_lr before building the optimizer")
    return optim.make_optimizer(
        o.optimizer, o.max_lr if learning_rate is None else learning_rate,
        momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay,
        beta_2=o.adam_beta_2, epsilon=o.adam_epsilon)


def add_encoder_group(optimizer, model, config: TrainConfig) -> None:
    """A pretrained encoder's variables as an optimizer parameter group: its
    learning-rate multiplier and its frozen first steps (config.encoder).
    Nothing for a model without `encoder_variables`. Call after
    `optimizer.build`, under the strategy scope."""
    if getattr(model, "encoder_variables", ()):
        optimizer.add_group("encoder", model.encoder_variables,
                            lr_multiplier=config.encoder.lr_multiplier,
                            freeze_steps=config.encoder.freeze_steps,
                            frozen_flag=model.encoder_frozen)


def build_variables(model, optimizer, config: TrainConfig, images) -> None:
    """Creates everything a restore or a sweep expects to exist: the model's
    lazy variables (one call on `images`, [1,H,W,C], with training=False so
    batch-norm statistics stay as they are), the optimizer's slots, and the
    pretrained encoder's parameter group (`add_encoder_group`: its lr
    multiplier and frozen first steps). Call once, under the strategy scope
    if any, before restoring a checkpoint or running a sweep; training and
    the LR range test then run the same update."""
    model(images, training=False)
    optimizer.build(model.trainable_variables)
    add_encoder_group(optimizer, model, config)


def make_schedule(config: TrainConfig) -> Optional[Callable]:
    """`step -> (lr, momentum)` for one_cycle; None for plateau and constant,
    where the optimizer keeps max_lr until the plateau rule lowers it."""
    o, total = config.optim, config.loop.train_steps
    if o.schedule != "one_cycle":
        return None
    return lambda step: schedules.one_cycle(
        step, total, o.max_lr, pct_start=o.pct_start, div_factor=o.div_factor,
        final_div_factor=o.final_div_factor, anneal=o.anneal,
        base_momentum=o.base_momentum, max_momentum=o.max_momentum)


def make_monitors(config: TrainConfig, optimizer) -> Tuple[Optional[schedules.ReduceOnPlateau],
                                                           Optional[schedules.EarlyStopping]]:
    """(plateau, early stopping) on validation mean IoU, None where off.
    Create them under the strategy scope: they hold checkpointed variables."""
    o = config.optim
    plateau = early = None
    if o.schedule == "plateau":
        plateau = schedules.ReduceOnPlateau(
            optimizer.learning_rate, factor=o.plateau_factor, patience=o.plateau_patience,
            cooldown=o.plateau_cooldown, min_lr=o.min_lr, min_delta=o.min_delta, mode="max")
    if o.early_stopping_patience > 0:
        early = schedules.EarlyStopping(patience=o.early_stopping_patience,
                                        min_delta=o.min_delta, mode="max")
    return plateau, early
