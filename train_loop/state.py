"""Everything a run must restore to continue exactly where it stopped.

One `tf.train.Checkpoint` holds the model, the optimizer (momentum slots,
learning rate, momentum), the step, the loss scale, the plateau and
early-stopping state and the best validation score, so rerunning the same
command resumes the schedule, the scaler and the callbacks' patience as well
as the weights.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf


@dataclasses.dataclass
class TrainState:
    """The checkpointed objects of a run (created under the strategy scope)."""
    model: tf.Module
    optimizer: tf.Module
    step: tf.Variable
    loss_scale: tf.Module
    plateau: Optional[tf.Module]
    early_stopping: Optional[tf.Module]
    best_metric: tf.Variable

    @classmethod
    def create(cls, model, optimizer, loss_scale, plateau=None, early_stopping=None):
        return cls(
            model=model,
            optimizer=optimizer,
            # Every replica counts the same steps; one update stands for all.
            step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA),
            loss_scale=loss_scale,
            plateau=plateau,
            early_stopping=early_stopping,
            best_metric=tf.Variable(-1.0, dtype=tf.float64, trainable=False,
                                    name="best_metric"),
        )

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """A checkpoint of every part of the state (plus `extra` objects, such
        as a data iterator)."""
        parts = dict(model=self.model, optimizer=self.optimizer, step=self.step,
                     loss_scale=self.loss_scale, best_metric=self.best_metric)
        if self.plateau is not None:
            parts["plateau"] = self.plateau
        if self.early_stopping is not None:
            parts["early_stopping"] = self.early_stopping
        parts.update(extra)
        return tf.train.Checkpoint(**parts)
