"""Serving: a tf.Module around a trained model, written as a SavedModel.

The SavedModel serves without this project installed (`tf.saved_model.load`
only needs TensorFlow). It holds:

  serving_default(images [N,H,W,C] float32, any H and W)
      -> {"probabilities": [N,H,W,K] float32, "classes": [N,H,W] uint8}
      The batch is reflect-padded to multiples of 2**depth, predicted in one
      model call, and cropped back.
  predict_tile(image [H,W,C] float32, one whole tile of any size)
      -> {"probabilities": [H,W,K] float32, "classes": [H,W] uint8}
      Sliding windows with Hann blending and optional test-time augmentation
      inside the graph (`core.inference.predict_tile_graph`). Window size,
      overlap, TTA and batch size are FIXED AT EXPORT TIME (recorded in
      model_info.json): a serving signature cannot have optional inputs, and
      a fixed window keeps the traced model shapes static.
  logits(images [N,S,S,C] float32, S a multiple of 2**depth) -> [N,S,S,K]
      (a plain restored function, not a signature: `tools.predict` drives
      its own sliding windows with it).
  model_info: a `tf.saved_model.Asset`, assets/model_info.json: class names,
      palette, bands, normalisation mean/std (the model's in-graph first op,
      (x - mean) / std: with a pretrained encoder, what its weights expect,
      see layers/pretrained.py; "encoder" names the encoder and where its
      weights came from), num_classes, in_channels, depth,
      the predict_tile settings, and what the inputs were in training:
      "input_dtype" (numpy dtype name of the optical bands: uint8, uint16,
      int16 or float32) and "band_ranges" {band: [min, max]} over the train
      split (null in both for a model whose store did not record them).

The signatures take raw band values as float32 (every uint8, uint16 and
int16 value is exact in float32): a client casts its `input_dtype` pixels
and the model's first op normalises them with mean/std. An input of another
bit depth must be rescaled to `input_dtype`'s values first (tools.predict
--rescale_input does it). NaN/inf values are no data: the model is given
what training and tools.predict give it there (0 in an optical band, the
image's mean height in an elevation band), and those pixels' class is 255.

Writing is atomic per folder: the SavedModel goes to a temporary sibling
`<export_dir>.tmp-XXXX`; only when it is complete is an existing export moved
to `<export_dir>.previous` (replacing an older `.previous`) and the new one
renamed into place. An interrupted export leaves the previous one whole. A
folder that exists and is not an export (no saved_model.pb) is never
replaced or deleted: the export is refused (an empty folder is fine). The
temporary folder is named `<export_dir>.tmp-<host>-<pid>-XXXX`: one that a
killed export (kill -9, power loss) left behind is removed by the next export
to the same place once its process is gone.

A damaged export or checkpoint (a corrupt saved_model.pb, a truncated
variables file, a corrupt index) is reported in one line naming the file
(`damaged_file`), never as a protobuf or IndexError traceback.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import tempfile
from typing import Any, Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from core import inference
from core.data.datasets import ELEVATION_BANDS
from core.data.labels import IGNORE_INDEX
from core.data.raster import SOURCE_DTYPES

MODEL_INFO = "model_info.json"
FORMAT_VERSION = 1


class ExportError(ValueError):
    """An export folder that cannot be written or read (named in the message)."""


def is_export(path: str) -> bool:
    """True when `path` is a SavedModel folder."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def pad_to_multiple(images: tf.Tensor, multiple: int) -> tf.Tensor:
    """Reflect-pads [N,H,W,C] at the bottom/right to multiples of `multiple`.

    Works for any size (even H=1, where plain REFLECT padding cannot).
    """
    shape = tf.shape(images)
    padded_h = (shape[1] + multiple - 1) // multiple * multiple
    padded_w = (shape[2] + multiple - 1) // multiple * multiple
    rows = inference.reflect_indices_tf(tf.range(padded_h), shape[1])
    cols = inference.reflect_indices_tf(tf.range(padded_w), shape[2])
    return tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)


class ServingModule(tf.Module):
    """The exported object: the model plus its serving functions.

    Args:
      model: `model(images, training=False) -> logits [N,H,W,K]` with
        attributes `num_classes`, `in_channels`, `depth` (a `layers.UNet`).
      info: model_info dict (see `make_model_info`); written as an asset.
      info_path: the file holding `info` (becomes the Asset).
    """

    def __init__(self, model, info: dict, info_path: str):
        super().__init__(name="serving")
        self.model = model
        self.model_info = tf.saved_model.Asset(info_path)
        channels, self._multiple = int(model.in_channels), 2 ** int(model.depth)
        # Holes in an elevation band are filled with the image's mean height
        # (as tiles.read_elevation does), in an optical band with 0.
        self._elevation = [b in ELEVATION_BANDS.values() for b in info["bands"]]
        self._num_classes = int(model.num_classes)
        self._tile = dict(window=int(info["window"]), overlap=float(info["overlap"]),
                          tta=tuple(info["tta"]), batch_size=int(info["batch_size"]))
        self.serving_default = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None, None, None, channels], tf.float32, name="images")])
        self.predict_tile = tf.function(self._predict_tile, input_signature=[
            tf.TensorSpec([None, None, channels], tf.float32, name="image")])
        self.logits = tf.function(self._logits, input_signature=[
            tf.TensorSpec([None, None, None, channels], tf.float32, name="images")])

    def _logits(self, images):
        return self.model(_finite(images, self._elevation)[0], training=False)

    def _serve(self, images):
        shape = tf.shape(images)
        filled, valid = _finite(images, self._elevation)
        logits = self.model(pad_to_multiple(filled, self._multiple), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))[:, :shape[1], :shape[2]]
        return {"probabilities": probabilities, "classes": _classes(probabilities, valid)}

    def _predict_tile(self, image):
        filled, valid = _finite(image, self._elevation)
        probabilities = inference.predict_tile_graph(
            self.model, filled, num_classes=self._num_classes, **self._tile)
        return {"probabilities": probabilities, "classes": _classes(probabilities, valid)}


def _finite(images: tf.Tensor, elevation: Sequence[bool]) -> tuple[tf.Tensor, tf.Tensor]:
    """NaN/inf (no data) replaced as tools.predict gives them to the model: 0
    in an optical band (core.data.raster.finite_values), the mean of the
    image's finite heights in an `elevation` band (tiles.read_elevation);
    a NaN would spread to its neighbours. `images` [..., H, W, C].

    Returns:
      (the filled images, [..., H, W] bool: every band of the pixel finite).
    """
    finite = tf.math.is_finite(images)
    fill = tf.zeros([], images.dtype)
    if any(elevation):
        count = tf.reduce_sum(tf.cast(finite, images.dtype), axis=[-3, -2], keepdims=True)
        total = tf.reduce_sum(tf.where(finite, images, fill), axis=[-3, -2], keepdims=True)
        fill = tf.where(tf.constant(elevation), total / tf.maximum(count, 1.0), fill)
    return tf.where(finite, images, fill), tf.reduce_all(finite, axis=-1)


def _classes(probabilities: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """uint8 argmax; IGNORE_INDEX where `valid` is False (a NaN/inf input)."""
    return tf.where(valid, tf.cast(tf.argmax(probabilities, -1), tf.uint8),
                    tf.constant(IGNORE_INDEX, tf.uint8))


def make_model_info(model, *, class_names: Sequence[str], palette: Sequence[Sequence[int]],
                    bands: Sequence[str], mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, window: int = 512,
                    overlap: float = 0.25, tta: Any = None, batch_size: int = 4,
                    input_dtype: str | None = None,
                    band_ranges: dict[str, Sequence[float]] | None = None,
                    encoder_weights: dict | None = None,
                    extra: dict | None = None) -> dict:
    """The model_info.json content, checked against the model.

    Args:
      input_dtype: dtype name of the optical bands in training ("uint8",
        "uint16", "int16", "float32"; info.json's `dtype`); None if unknown.
      band_ranges: {band: [min, max]} of the training bands (info.json
        band_stats, train split); None if unknown.
      encoder_weights: a pretrained encoder's encoder.json (source, the
        normalisation its weights expect), or None.

    Raises:
      ExportError: class names/palette/bands that do not match the model, an
        unknown input_dtype, band_ranges naming a band the model does not take.
    """
    k, c = int(model.num_classes), int(model.in_channels)
    if len(class_names) != k or len(palette) != k:
        raise ExportError(f"the model has {k} classes but {len(class_names)} class "
                          f"names and {len(palette)} palette colours were given")
    if len(bands) != c:
        raise ExportError(f"the model takes {c} bands but bands={list(bands)} were given")
    if mean is None:
        mean = np.asarray(model.mean).tolist() if hasattr(model, "mean") else [0.0] * c
    if std is None:
        std = np.asarray(model.std).tolist() if hasattr(model, "std") else [1.0] * c
    if input_dtype is not None and str(input_dtype) not in SOURCE_DTYPES:
        raise ExportError(f"input_dtype {input_dtype!r}: expected one of "
                          f"{', '.join(SOURCE_DTYPES)}")
    if band_ranges is not None:
        unknown = [b for b in band_ranges if b not in list(bands)]
        if unknown:
            raise ExportError(f"band_ranges names {unknown}, not among the model's "
                              f"bands {list(bands)}")
        band_ranges = {str(b): [float(band_ranges[b][0]), float(band_ranges[b][1])]
                       for b in bands if b in band_ranges}
    multiple = 2 ** int(model.depth)
    if window <= 0 or window % multiple:
        raise ExportError(f"window must be a positive multiple of {multiple}, got {window}")
    info = {
        "format_version": FORMAT_VERSION,
        "num_classes": k, "class_names": [str(n) for n in class_names],
        "palette": [[int(v) for v in color] for color in palette],
        "in_channels": c, "bands": [str(b) for b in bands],
        "mean": [float(v) for v in mean], "std": [float(v) for v in std],
        "depth": int(model.depth), "size_multiple": multiple,
        "window": int(window), "overlap": float(overlap),
        "tta": list(inference.parse_tta(tta)), "batch_size": int(batch_size),
        "input_dtype": None if input_dtype is None else str(input_dtype),
        "band_ranges": band_ranges,
        "normalisation": "(x - mean) / std per band, inside the model (its first op): "
                         "the signatures take raw band values",
        "encoder": {"name": str(getattr(model, "config", {}).get("encoder", "unet")),
                    "weights": encoder_weights},
        "signatures": {
            "serving_default": "images [N,H,W,C] float32 (raw band values of "
                               "input_dtype) -> probabilities [N,H,W,K] "
                               "float32, classes [N,H,W] uint8",
            "predict_tile": "image [H,W,C] float32 -> probabilities [H,W,K] float32, "
                            "classes [H,W] uint8 (sliding windows, settings above)",
            "no_data": "NaN/inf input values: the model gets 0 (optical band) or the "
                       "image's mean height (elevation band) there; classes 255"},
    }
    info.update(extra or {})
    return info


def _check_target(export_dir: str) -> None:
    for path in (export_dir, export_dir + ".previous"):
        if os.path.exists(path) and not is_export(path) and (
                not os.path.isdir(path) or os.listdir(path)):
            raise ExportError(f"{path} exists and is not a SavedModel export (no "
                              f"saved_model.pb); refusing to replace it: choose another "
                              f"export_dir or move it away")


# The parts of a SavedModel folder: a temporary folder holding only these is
# an export's own, and may be removed once its process is gone.
_SAVED_MODEL_PARTS = {"saved_model.pb", "variables", "assets", "fingerprint.pb"}


def _temporary_prefix(export_dir: str) -> str:
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())
    return f"{os.path.basename(export_dir)}.tmp-{host}-{os.getpid()}-"


def remove_stale_temporaries(export_dir: str, log: Callable[[str], None] = print) -> list:
    """Removes the temporary folders that killed exports to `export_dir` left.

    A sibling `<export_dir>.tmp-<host>-<pid>-XXXX` is removed when its
    process no longer runs on this host (another host's is left alone); an
    older `<export_dir>.tmp-XXXX` (no pid) when it holds only SavedModel
    parts. Anything else, whatever its name, stays.

    Returns:
      The removed paths.
    """
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())
    removed = []
    for path in glob.glob(glob.escape(export_dir) + ".tmp-*"):
        rest = path[len(export_dir) + len(".tmp-"):]
        owner = re.fullmatch(r"(?P<host>.+)-(?P<pid>\d+)-[^-]+", rest)
        if owner:
            if owner["host"] != host or _process_runs(int(owner["pid"])):
                continue
        try:
            if not os.path.isdir(path) or os.path.islink(path) or not set(
                    os.listdir(path)) <= _SAVED_MODEL_PARTS:
                continue
            shutil.rmtree(path)  # an export's own temporary folder, never a user's
        except OSError:
            continue
        log(f"removed {path}, left by an interrupted export")
        removed.append(path)
    return removed


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def export_saved_model(model, export_dir: str, info: dict,
                       log: Callable[[str], None] = print) -> str:
    """Writes the SavedModel atomically (see the module docstring).

    Args:
      model: the trained model (`num_classes`, `in_channels`, `depth`).
      export_dir: destination folder.
      info: from `make_model_info`.
      log: told about stale temporary folders removed.
    Returns:
      export_dir.
    Raises:
      ExportError: `export_dir` (or `<export_dir>.previous`) is a non-empty
        folder that is not an export.
    """
    export_dir = os.path.abspath(export_dir.rstrip("/\\"))
    _check_target(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(export_dir, log)
    tmp = tempfile.mkdtemp(prefix=_temporary_prefix(export_dir), dir=parent)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            info_path = os.path.join(scratch, MODEL_INFO)
            with open(info_path, "w", encoding="utf-8") as f:
                json.dump(info, f, indent=2)
            module = ServingModule(model, info, info_path)
            tf.saved_model.save(module, tmp, signatures={
                "serving_default": module.serving_default,
                "predict_tile": module.predict_tile})
        _check_target(export_dir)  # the user may have created it meanwhile
        if os.path.isdir(export_dir) and not is_export(export_dir):
            os.rmdir(export_dir)  # empty (checked), e.g. made by the trainer
        elif os.path.exists(export_dir):
            previous = export_dir + ".previous"
            if is_export(previous):
                shutil.rmtree(previous)  # our own older export, never a user's folder
            elif os.path.isdir(previous):
                os.rmdir(previous)  # empty (checked above)
            os.rename(export_dir, previous)
        os.rename(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return export_dir


def read_model_info(export_dir: str) -> dict:
    """model_info.json of an export.

    Raises:
      ExportError: not an export, or no readable model_info.json.
    """
    path = os.path.join(export_dir, "assets", MODEL_INFO)
    if not is_export(export_dir):
        raise ExportError(f"{export_dir} is not a SavedModel (no saved_model.pb)")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: cannot read the model info ({err})") from None


class LoadedModel:
    """A loaded export, callable like the original model on windows.

    `model(images [N,S,S,C], training=False) -> logits [N,S,S,K] float32`
    with `num_classes`, `in_channels`, `depth`, and `info` (model_info dict).
    """

    def __init__(self, export_dir: str):
        self.info = read_model_info(export_dir)
        try:
            self.saved = tf.saved_model.load(export_dir)
        except Exception as err:  # pylint: disable=broad-except
            # Protobuf, IndexError ("read less bytes"), OpError: all unusable.
            raise ExportError(damaged_message(export_dir, err, "export the model again")) from None
        self.num_classes = int(self.info["num_classes"])
        self.in_channels = int(self.info["in_channels"])
        self.depth = int(self.info["depth"])

    def __call__(self, images, training: bool = False) -> tf.Tensor:
        del training  # the export is inference only
        return self.saved.logits(tf.cast(images, tf.float32))


def damaged_file(path: str) -> Optional[tuple[str, str]]:
    """The file that cannot be read in a SavedModel folder or a checkpoint.

    Args:
      path: a SavedModel folder, or a checkpoint prefix (".../ckpt-7").
    Returns:
      (file, what reading it said) for saved_model.pb, the variables or
      checkpoint index, or its data file, whichever fails first; None when
      all read (the failure lies elsewhere). Reads every tensor: call it
      after a failure.
    """
    def first_line(err):
        return (str(err).strip().splitlines() or [type(err).__name__])[0][:160]

    if os.path.isdir(path):
        pb = os.path.join(path, "saved_model.pb")
        from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
        try:
            with open(pb, "rb") as f:
                if not saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs:
                    return pb, "it holds no MetaGraph"
        except Exception as err:  # pylint: disable=broad-except
            return pb, first_line(err)  # DecodeError, OSError
        path = os.path.join(path, "variables", "variables")
    try:
        reader = tf.train.load_checkpoint(path)
    except Exception as err:  # pylint: disable=broad-except
        return path + ".index", first_line(err)
    try:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as err:  # pylint: disable=broad-except
        data = sorted(glob.glob(glob.escape(path) + ".data-*"))
        return (data[0] if len(data) == 1 else path + ".data-*"), first_line(err)
    return None


def damaged_message(path: str, err: BaseException, remedy: str) -> str:
    """One line: which file of `path` (a SavedModel folder or a checkpoint
    prefix) is damaged, and what reading it said; `err` is the failure of
    loading the whole, reported when every file reads."""
    found = damaged_file(path)
    if found is None:
        detail = (str(err).strip().splitlines() or [""])[0][:160]
        return f"{path}: cannot be loaded ({type(err).__name__}: {detail})"
    return f"{found[0]} is damaged (cannot be read: {found[1]}); {remedy}"
