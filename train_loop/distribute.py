"""Who does what when several workers train one run (MultiWorkerMirroredStrategy).

Every worker trains, evaluates and saves (saving reads replica-synchronised
variables, a collective), but only the chief writes into the workdir: the
others save into a folder of their own that nothing reads, and all of them
restore from the chief's checkpoints. Outside multi-worker training the one
worker is the chief.
"""
from __future__ import annotations

import os
from typing import Dict, Tuple

import tensorflow as tf

from train_loop import workdir as workdir_lib


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes checkpoints and summaries (the
    only worker outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return (task_type == "worker" and task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Workers (chief included) of the strategy's cluster; 1 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def worker_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
    """Where a non-chief worker writes its own (never read) checkpoints."""
    resolver = strategy.cluster_resolver
    return os.path.join(workdir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def summary_writers(workdir: str, strategy: tf.distribute.Strategy) -> Dict[str, object]:
    """TensorBoard writers {"train", "validation"}: files on the chief, no-ops elsewhere."""
    chief = is_chief(strategy)
    return {split: (tf.summary.create_file_writer(workdir_lib.tensorboard_dir(workdir, split))
                    if chief else tf.summary.create_noop_writer())
            for split in ("train", "validation")}


def checkpoint_managers(latest_checkpoint: tf.train.Checkpoint,
                        best_checkpoint: tf.train.Checkpoint, workdir: str,
                        strategy: tf.distribute.Strategy, keep: int
                        ) -> Tuple[tf.train.CheckpointManager, tf.train.CheckpointManager,
                                   tf.train.CheckpointManager]:
    """(latest, best, restore_from): the managers this worker saves with (in
    the workdir on the chief, in its worker_dir elsewhere) and the one it
    restores from (always the chief's `latest`)."""
    chief = is_chief(strategy)
    root = workdir if chief else worker_dir(workdir, strategy)
    latest = tf.train.CheckpointManager(
        latest_checkpoint, workdir_lib.checkpoint_dir(root, "latest"), max_to_keep=keep)
    best = tf.train.CheckpointManager(
        best_checkpoint, workdir_lib.checkpoint_dir(root, "best"), max_to_keep=1)
    restore_from = latest if chief else tf.train.CheckpointManager(
        latest_checkpoint, workdir_lib.checkpoint_dir(workdir, "latest"), max_to_keep=None)
    return latest, best, restore_from
