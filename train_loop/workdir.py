"""The experiment folder: where a run lives, how it resumes, how tools read it.

Layout (DESIGN.md):

    runs/<experiment-name>-<YYYYmmdd-HHhMMmn>/
      config.json          resolved config: "model" (UNet kwargs), "data"
                           (class names, palette, bands, mean, std), "train",
                           "pipeline"
      flags.txt            the resolved flags, usable as --flagfile
      checkpoints/latest/  tf.train.CheckpointManager, last K kept
      checkpoints/best/    best validation mean IoU
      tensorboard/{train,validation}/
      export/              SavedModel (tools.export)
      DONE                 written when training ends; a run without it resumes
      LOCK                 while a training runs in it: host, pid, start time

Re-running the same command resumes the newest run of the same experiment
name, or reports that it has finished; nothing here ever deletes a folder.
One training at a time per workdir (`train_loop.workdir_lock`).
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from core import export as export_lib

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
DONE_FILE = "DONE"


class WorkdirError(ValueError):
    """A workdir that cannot be used as asked (named in the message)."""


def checkpoint_dir(workdir: str, which: str) -> str:
    if which not in ("latest", "best"):
        raise WorkdirError(f"checkpoint must be 'latest' or 'best', got {which!r}")
    return os.path.join(workdir, "checkpoints", which)


def tensorboard_dir(workdir: str, split: str) -> str:
    return os.path.join(workdir, "tensorboard", split)


def is_finished(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, DONE_FILE))


def resolve_workdir(root: str, name: str, *, explicit: Optional[str] = None,
                    now: Optional[datetime.datetime] = None) -> Tuple[str, bool]:
    """Chooses the folder of a run.

    Args:
      root: parent folder of runs (e.g. "runs").
      name: experiment name.
      explicit: a folder the user named (--workdir); used as is.
      now: the time for a new folder's suffix (tests pin it).

    Returns:
      (workdir, existing): the newest `root/name-*` holding a config when
      there is one (existing=True: resume it, or report it finished, see
      `is_finished`), else a new timestamped folder.
    """
    if explicit:
        return explicit, os.path.exists(os.path.join(explicit, CONFIG_FILE))
    candidates = sorted(
        d for d in glob.glob(os.path.join(root, glob.escape(name) + "-*"))
        if os.path.exists(os.path.join(d, CONFIG_FILE)))
    if candidates:
        return candidates[-1], True
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%Hh%Mmn")
    return os.path.join(root, f"{name}-{stamp}"), False


def check_writable(workdir: str, need_bytes: int) -> None:
    """Fails before training, not at the first checkpoint, when the workdir
    cannot be written or its disk is too full.

    Args:
      workdir: the run's folder (created when missing).
      need_bytes: an estimate of what the run will write (see
        `estimate_run_bytes`).

    Raises:
      WorkdirError: naming the folder, and the free and needed space.
    """
    # Per process: workers of one multi-worker run probe the same folder.
    probe = os.path.join(workdir, f".write_probe.{os.getpid()}")
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
        os.remove(probe)  # our own probe file, nothing of the user's
    except OSError as err:
        raise WorkdirError(f"workdir {workdir} is not writable ({err.strerror or err}); "
                           f"choose another --workdir or --workdir_root") from err
    free = shutil.disk_usage(workdir).free
    if free < need_bytes:
        raise WorkdirError(
            f"workdir {workdir}: {free / 2**20:.0f} MiB free on its disk, but the run "
            f"needs about {need_bytes / 2**20:.0f} MiB (checkpoints with the data "
            f"iterator, summaries); free space, lower --keep_checkpoints or "
            f"--shuffle_buffer, or choose another --workdir")


def estimate_run_bytes(num_parameters: int, keep_checkpoints: int, shuffle_buffer: int,
                       patch_size: int, channels: int) -> int:
    """Disk a run writes: `keep + 1` latest checkpoints (weights, momentum
    and the data iterator's shuffle buffer of float32 patches), one best
    checkpoint, and 64 MiB for summaries and configs."""
    state = num_parameters * 4 * 2
    data = shuffle_buffer * patch_size * patch_size * (channels * 4 + 1)
    return (keep_checkpoints + 1) * (state + data) + state + 64 * 2**20


def write_config(workdir: str, config: dict, flags_text: str = "") -> list[str]:
    """Writes config.json (and flags.txt); on resume checks they still agree.

    A resumed run must build the same model from the same data; anything else
    would silently load mismatched weights. Its training settings may change
    (a longer --train_steps continues a run, a lower rate rescues one), but
    never unnoticed: they are returned for the caller to report.

    Returns:
      The training and pipeline settings that differ from the recorded run,
      as "train.optim.max_lr: 0.15 -> 0.1" (empty for a new run).

    Raises:
      WorkdirError: naming the workdir and the sections that differ.
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    changes = []
    if os.path.exists(path):
        old, new = read_config(workdir), _jsonable(config)
        changed = [k for k in ("model", "data") if old.get(k) != new.get(k)]
        if changed:
            raise WorkdirError(
                f"{workdir} holds a run with a different {' and '.join(changed)} "
                f"config ({path}); use another --workdir or --experiment_name")
        changes = [line for section in ("train", "pipeline")
                   for line in _differences(old.get(section), new.get(section), section)]
    _atomic_write(path, json.dumps(_jsonable(config), indent=2, sort_keys=True))
    if flags_text:
        _atomic_write(os.path.join(workdir, FLAGS_FILE), flags_text)
    return changes


def _differences(old, new, prefix: str) -> list[str]:
    """The leaves of two JSON values that differ, as "a.b: old -> new"."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new))
                for line in _differences(old.get(key), new.get(key), f"{prefix}.{key}")]
    return [] if old == new else [f"{prefix}: {json.dumps(old)} -> {json.dumps(new)}"]


def read_config(workdir: str) -> dict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise WorkdirError(f"{workdir} is not an ortholoop workdir: {path} not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise WorkdirError(f"{path} is damaged (cannot be read: {err})") from None


def mark_finished(workdir: str, summary: dict) -> None:
    _atomic_write(os.path.join(workdir, DONE_FILE), json.dumps(_jsonable(summary), indent=2))


def build_model(config: dict, *, for_training: bool = False, **overrides):
    """The UNet a workdir's config.json describes (untrained).

    `overrides` are UNet arguments that do not belong to the saved model,
    such as `cross_replica_bn` for the strategy at hand. `for_training`:
    the model a run starts from, i.e. with a pretrained encoder's weights
    (config "train" -> "encoder" -> "weights") loaded, the normalisation
    those weights expect as the in-graph mean/std
    (`layers.pretrained.input_normalisation`), and the encoder's freeze
    switch when it is frozen first. A checkpoint restored afterwards
    overrides all of these values.
    """
    import layers  # pylint: disable=import-outside-toplevel
    from layers import pretrained  # pylint: disable=import-outside-toplevel

    kwargs = dict(config["model"])
    data = config.get("data", {})
    mean, std = data.get("mean"), data.get("std")
    encoder = (config.get("train") or {}).get("encoder") or {}
    weights = encoder.get("weights") if for_training else None
    if weights:
        info = pretrained.read_encoder_info(weights, kwargs.get("encoder", "unet"))
        c = int(kwargs["in_channels"])
        mean, std = pretrained.input_normalisation(
            info, data.get("bands") or [f"band{i}" for i in range(c)],
            mean if mean is not None else [0.0] * c, std if std is not None else [1.0] * c,
            data.get("dtype"))
    if for_training and encoder.get("freeze_steps", 0) > 0:
        overrides.setdefault("freezable_encoder", True)
    model = layers.UNet(**kwargs, mean=mean, std=std, **overrides)
    if weights:
        side = 2 ** int(kwargs.get("depth", 4))
        model(tf.zeros([1, side, side, int(kwargs["in_channels"])]), training=False)
        pretrained.load_encoder_weights(model.encoder, weights, data["bands"])
    return model


def restore_model(workdir: str, which: str = "best"):
    """Rebuilds the model of a workdir and loads its weights.

    Args:
      workdir: an experiment folder written by `tools.train`.
      which: "best" (by validation mean IoU) or "latest"; "best" falls back to
        "latest" when no evaluation has run yet.

    Returns:
      (model, config dict).

    Raises:
      WorkdirError: no config or no checkpoint in the workdir, a damaged
        checkpoint (naming the file), or one of another model.
    """
    from core.export import damaged_message  # pylint: disable=import-outside-toplevel

    config = read_config(workdir)
    model = build_model(config)
    path = None
    for kind in (which, "latest") if which == "best" else (which,):
        state = os.path.join(checkpoint_dir(workdir, kind), "checkpoint")
        path = tf.train.latest_checkpoint(os.path.dirname(state))
        if path is None and os.path.exists(state):
            # TensorFlow logs and ignores an unparsable state file; falling
            # back to another checkpoint would be silently wrong.
            raise WorkdirError(f"{state} is damaged or names no checkpoint file that exists; "
                               f"use the other --checkpoint (best, latest) or train again")
        if path is not None:
            break
    if path is None:
        raise WorkdirError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
    # Build the lazy variables first so the restore is immediate and complete.
    size = 2 ** int(config["model"].get("depth", 4))
    model(tf.zeros([1, size, size, int(config["model"]["in_channels"])]), training=False)
    try:
        tf.train.Checkpoint(model=model).read(path).expect_partial().assert_existing_objects_matched()
    except AssertionError as err:
        raise WorkdirError(f"{path} does not hold the model {os.path.join(workdir, CONFIG_FILE)} "
                           f"describes ({str(err).splitlines()[0][:160]})") from None
    except Exception as err:  # pylint: disable=broad-except
        # OpError (bad index, checksum), IndexError ("read less bytes"), ...
        raise WorkdirError(damaged_message(path, err, "use the other --checkpoint "
                                           "(best, latest) or train again")) from None
    return model, config


def _encoder_weights_info(config: dict) -> dict | None:
    """The pretrained weights a run started from: their folder and
    encoder.json as recorded in config.json at the start, or None."""
    encoder = (config.get("train") or {}).get("encoder") or {}
    if not encoder.get("weights"):
        return None
    return {"folder": encoder["weights"], **(encoder.get("weights_info") or {})}


def load_model(path: str, checkpoint: str = "best"):
    """A model for inference from a SavedModel export or an experiment workdir
    (here, not in core.export: core does not read training workdirs).

    Args:
      path: a folder holding saved_model.pb (written by `export_saved_model`)
        or a workdir holding config.json (written by `tools.train`).
      checkpoint: "best" or "latest" (workdirs only).
    Returns:
      (model, info): `model(images, training=False) -> logits` with
      `num_classes`, `in_channels`, `depth`; info has class_names, palette,
      bands, mean, std, input_dtype and band_ranges (None when unknown) and,
      for an export, its predict_tile settings.
    Raises:
      ExportError: `path` is neither.
    """
    if export_lib.is_export(path):
        model = export_lib.LoadedModel(path)
        return model, model.info
    if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
        raise export_lib.ExportError(f"{path} is neither a SavedModel (saved_model.pb) nor "
                                     f"an experiment workdir ({CONFIG_FILE})")
    model, config = restore_model(path, which=checkpoint)
    data = config.get("data", {})
    k, c = int(model.num_classes), int(model.in_channels)
    info = {"num_classes": k, "in_channels": c, "depth": int(model.depth),
            "class_names": list(data.get("class_names") or [str(i) for i in range(k)]),
            "palette": [list(p) for p in data.get("palette") or []],
            "bands": list(data.get("bands") or [f"band{i}" for i in range(c)]),
            "mean": np.asarray(model.mean).tolist(), "std": np.asarray(model.std).tolist(),
            "dataset": data.get("dataset"),
            # A v1 store (no "dtype") held uint8 optical bands only.
            "input_dtype": data.get("dtype") or (
                "uint8" if data.get("format") == "ortholoop-tiles-npy-v1" else None),
            "band_ranges": data.get("band_ranges"),
            "encoder_weights": _encoder_weights_info(config)}
    if len(info["palette"]) != k:  # a distinct grey per class when none is known
        info["palette"] = [[int(v)] * 3 for v in np.linspace(0, 255, k)]
    return model, info


def restore_latest(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager,
                   log=print) -> Optional[str]:
    """Restores the newest readable checkpoint of `manager`, newest first.

    A truncated or unreadable checkpoint (a run killed while writing, a
    damaged disk) is reported, naming the file, and the one before it is
    tried, so one bad file costs `checkpoint_every` steps, not the run.

    Returns:
      The restored path, or None when there is nothing readable (a new run).
    """
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.read(path).assert_existing_objects_matched()
            return path
        except Exception as err:  # pylint: disable=broad-except
            # A damaged file surfaces as OpError, IndexError ("read less
            # bytes"), ValueError or a mismatch assertion: all mean unusable.
            log(f"WARNING: checkpoint {path} is unreadable "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                f"trying the previous one")
    return None


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: getattr(o, "tolist", lambda: str(o))()))


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"  # workers may write the same file at once
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
