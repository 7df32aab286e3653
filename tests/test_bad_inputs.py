"""Misuse and faults, through the binaries, as a user meets them.

One row per case: the binary, its flags, the exit code, and the one line
that must say what is wrong (naming the file or flag). Every run is a
subprocess; each must end without a traceback, and every file the user had
(the shared store, workdir, export and inputs, hashed before and after) must
be byte-identical afterwards. The shared fixture is made once, in-process:
a tiny store (tests/store_v2.py), a workdir with a random 3-class U-Net
(tests/helpers.py) and its export. Cases that fail at flag
parsing or at the output check never import TensorFlow (~0.5 s each); the
others pay one TF import (~4 s).
"""
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from typing import Callable, Optional, Sequence

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import export
from core.data import geotiff
from tests.store_v2 import write_store
from tests.helpers import make_workdir, run_tool, tree_state
from train_loop.workdir import load_model
from train_loop.workdir_lock import lock_workdir

CLASSES = ("road", "roof", "tree")
PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 0))
ISPRS = np.array([(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0),
                  (255, 255, 0), (255, 0, 0)], np.uint8)
TRAIN = ("--train_steps=4", "--patch_size=16", "--batch_size=2", "--depth=3", "--filters=4",
         "--bn_recompute_batches=0", "--precision=float32")
F = {}  # the shared fixture's paths, filled by setUpModule


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    tool: str
    args: Sequence[str]  # "{key}" is replaced by F[key]
    code: int
    message: str  # regex of the one line that explains
    check: Optional[Callable] = None  # (test, out) -> None: more assertions
    group: str = ""  # cases of one group share one run (same flags, several messages)


def _write_tile(path, array, geo=True):
    if path.endswith(".tif"):
        geotiff.write_geotiff(path, array, geotiff.make_geoinfo(32632, (500000.0, 5e6), 0.5)
                              if geo else None)
    else:
        iio.imwrite(path, array)


def _archive(root, name, image, mask):
    """A `folder` archive: images/a.tif and masks/a.png (bytes: written raw)."""
    path = os.path.join(root, "archives", name)
    for sub, array, file in (("images", image, "a.tif"), ("masks", mask, "a.png")):
        os.makedirs(os.path.join(path, sub))
        if isinstance(array, bytes):
            with open(os.path.join(path, sub, file), "wb") as f:
                f.write(array)
        else:
            iio.imwrite(os.path.join(path, sub, file), array)
    return path


def setUpModule():  # pylint: disable=invalid-name
    root = tempfile.mkdtemp(prefix="bad_inputs_")
    user = os.path.join(root, "user")  # what the user owns: hashed around every case
    rng = np.random.default_rng(0)
    tiles = {}
    for i, split in enumerate(("train", "train", "val")):
        tiles[f"t{i}"] = {"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                          "label": rng.integers(0, 3, (32, 32), dtype=np.uint8), "split": split}
    F["store"] = os.path.join(user, "store")
    write_store(F["store"], tiles, bands=["R", "G", "B"], class_names=CLASSES, palette=PALETTE)
    unlabelled = {k: dict(t, label=np.full((32, 32), 255, np.uint8)) for k, t in tiles.items()}
    unlabelled["t0"]["label"] = tiles["t0"]["label"]  # train keeps its labels
    F["store_unlabelled"] = os.path.join(user, "store_unlabelled")
    write_store(F["store_unlabelled"], unlabelled, bands=["R", "G", "B"], class_names=CLASSES,
                palette=PALETTE)
    F["workdir"], model = make_workdir(user, bands=("R", "G", "B"), class_names=CLASSES,
                                       palette=PALETTE, dtype="uint8", name="run")
    _, info = load_model(F["workdir"])
    F["export"] = export.export_saved_model(model, os.path.join(user, "export"),
                                            export.make_model_info(
                                                model, class_names=CLASSES, palette=PALETTE,
                                                bands=["R", "G", "B"], window=16,
                                                input_dtype="uint8"), log=lambda _: None)
    # Damaged copies: a corrupt saved_model.pb, a truncated variables file, a
    # checkpoint with a corrupt index.
    for key, src, part, keep in (
            ("export_bad_pb", F["export"], "saved_model.pb", 40),
            ("export_bad_vars", F["export"], "variables/variables.data-00000-of-00001", 16),
            ("workdir_bad_index", F["workdir"], "checkpoints/best/ckpt-1.index", 10)):
        F[key] = os.path.join(user, key)
        shutil.copytree(src, F[key])
        with open(os.path.join(F[key], part), "r+b") as f:
            f.truncate(keep)
    # Tiles to predict.
    image = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for key, files in (("good", {"a.tif": image}),
                       ("same_stem", {"scene.tif": image, "scene.png": image}),
                       ("mixed", {"u.tif": image.astype(np.uint16) * 257,
                                  "b.tif": image[..., :2], "c.tif": image})):
        F[key] = os.path.join(user, "inputs", key)
        os.makedirs(F[key])
        for name, array in files.items():
            _write_tile(os.path.join(F[key], name), array)
    # A folder predicted before into itself (outside the hashed tree: the
    # outputs land there): a tile and the outputs of an earlier tile, garbage
    # here, which fail loudly if read as inputs.
    F["rerun"] = os.path.join(root, "rerun")
    os.makedirs(F["rerun"])
    _write_tile(os.path.join(F["rerun"], "a.tif"), image)
    with open(os.path.join(F["rerun"], "a.tif"), "rb") as f:
        F["rerun_hash"] = hashlib.sha256(f.read()).hexdigest()
    for name in ("old_classes.tif", "old_colour.png"):
        with open(os.path.join(F["rerun"], name), "wb") as f:
            f.write(b"an earlier run's output")
    with open(os.path.join(F["mixed"], "broken.tif"), "wb") as f:
        f.write(b"II*\x00 this is not a TIFF")
    # `folder` archives for prepare.
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = ISPRS[rng.integers(0, 6, (32, 32))]
    unknown = mask.copy()
    unknown[:10] = (12, 34, 56)
    F["arch_unreadable"] = _archive(user, "unreadable", b"II*\x00garbage", mask)
    F["arch_size"] = _archive(user, "size", img, mask[:16, :16])
    F["arch_unknown"] = _archive(user, "unknown", img, unknown)
    F["arch_palette"] = _archive(user, "palette", img, np.zeros((32, 32), np.uint8))
    F["bad_classes"] = os.path.join(user, "classes.json")
    with open(F["bad_classes"], "w", encoding="utf-8") as f:
        f.write('{"classes": [{"name": "road", "color": "#FFFFFF"},')
    F["a_file"] = os.path.join(user, "notes.txt")
    with open(F["a_file"], "w", encoding="utf-8") as f:
        f.write("a user's file, in the way of an output folder\n")
    F["user"] = user
    F["root"] = root


def tearDownModule():  # pylint: disable=invalid-name
    shutil.rmtree(F["root"], ignore_errors=True)


# --- checks some cases add ---

def _no_workdir_written(test, out):
    test.assertEqual(os.listdir(out), [], "nothing may be written before the flags are valid")


def _nulls_in_reports(test, out):
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        total = json.load(f)["plain"]["total"]
    test.assertEqual(total["labelled_pixels"], 0)
    test.assertEqual([total[k] for k in ("overall_accuracy", "mean_iou", "mean_f1")],
                     [None] * 3)
    with open(os.path.join(out, "metrics.md"), encoding="utf-8") as f:
        test.assertIn("| mean_iou | - |", f.read())


def _only_c_predicted(test, out):
    test.assertEqual(sorted(os.listdir(out)),
                     [".ortholoop-predict.json", "c_classes.tif", "c_colour.png"])


def _rerun_predicts_only_the_tile(test, out):
    del out  # the outputs went to the input folder
    test.assertEqual(sorted(os.listdir(F["rerun"])), [
        ".ortholoop-predict.json", "a.tif", "a_classes.tif", "a_colour.png", "old_classes.tif", "old_colour.png"])
    with open(os.path.join(F["rerun"], "a.tif"), "rb") as f:
        test.assertEqual(hashlib.sha256(f.read()).hexdigest(), F["rerun_hash"])
    classes = iio.imread(os.path.join(F["rerun"], "a_classes.tif"))
    test.assertEqual(classes.shape, (20, 24))
    test.assertLess(classes.max(), len(CLASSES))


MIXED = ["--model={export}", "--input={mixed}", "--output_dir={out}"]


CASES = [
    # --- training ---
    Case("train_on_a_workdir_in_use", "train",
         ["--data_dir={store}", "--workdir={locked}", *TRAIN], 1,
         r"^tools\.train: workdir {locked} is in use by another training: pid {pid} on this "
         r"host, {host}, since .*; wait for it, stop it, or train elsewhere"),
    Case("train_patch_not_multiple_of_depth", "train",
         ["--data_dir={store}", "--workdir={out}/run", *TRAIN, "--patch_size=20"], 1,
         r"--patch_size must be a multiple of 2\*\*--depth", _no_workdir_written),
    Case("train_unknown_loss", "train",
         ["--data_dir={store}", "--workdir_root={out}", *TRAIN, "--loss=foo"], 1,
         r"^FATAL Flags parsing error: flag --loss=foo: loss spec 'foo': unknown loss 'foo'; "
         r"expected one of \[", _no_workdir_written),
    Case("train_class_weight_not_a_number", "train",
         ["--data_dir={store}", "--workdir_root={out}", *TRAIN, "--class_weights=1,x,1"], 1,
         r"flag --class_weights=\['1', 'x', '1'\]: --class_weights must be positive floats",
         _no_workdir_written),
    Case("train_momentum_out_of_range", "train",
         ["--data_dir={store}", "--workdir_root={out}", *TRAIN, "--momentum=1.5"], 1,
         r"flag --momentum=1\.5: --momentum must be in \[0, 1\)", _no_workdir_written),
    Case("train_max_lr_not_a_number", "train",
         ["--data_dir={store}", "--workdir_root={out}", *TRAIN, "--max_lr=fast"], 1,
         r"flag --max_lr=fast: --max_lr must be a positive number or 'auto' \(the LR range "
         r"test's suggestion\), e\.g\. --max_lr=0\.2$", _no_workdir_written),
    Case("train_max_lr_auto_multi_worker", "train",
         ["--data_dir={store}", "--workdir_root={out}", *TRAIN, "--max_lr=auto",
          "--strategy=multi_worker"], 1,
         r"--max_lr=auto runs the LR range test in one process before training: with "
         r"--strategy=multi_worker each worker would sweep on its own", _no_workdir_written),
    Case("evaluate_unknown_tta", "evaluate",
         ["--model={export}", "--data_dir={store}", "--output_dir={out}", "--tta=d8"], 1,
         r"flag --tta=d8: unknown test-time augmentation 'd8'; expected one of "
         r"\['d4', 'flips', 'none', 'rot90'\]", _no_workdir_written),
    Case("predict_overlap_out_of_range", "predict",
         ["--model={export}", "--input={good}", "--output_dir={out}", "--overlap=1"], 1,
         r"flag --overlap=1\.0: --overlap must be in \[0, 1\)", _no_workdir_written),
    Case("time_pipeline_no_batches", "time_pipeline", ["--data_dir={store}", "--batches=0"], 1,
         r"flag --batches=0: --batches must be >= 1"),
    Case("time_pipeline_missing_store", "time_pipeline", ["--data_dir={out}/nothing"], 1,
         r"^tools\.time_pipeline: {out}/nothing/info\.json: not found"),
    Case("train_missing_store", "train", ["--data_dir={out}/nothing", *TRAIN], 1,
         r"{out}/nothing/info\.json: not found; run `python -m tools\.prepare "
         r"--data_dir={out}/nothing` first"),
    # --- prepare: the reading cases ---
    Case("prepare_unreadable_image", "prepare",
         ["--prepare_dataset=folder", "--prepare_src={arch_unreadable}",
          "--data_dir={out}/store"], 1, r"{arch_unreadable}/images/a\.tif: TIFF without an image"),
    Case("prepare_image_and_mask_sizes_differ", "prepare",
         ["--prepare_dataset=folder", "--prepare_src={arch_size}", "--data_dir={out}/store"], 1,
         r"Size mismatch: {arch_size}/images/a\.tif is 32x32 but {arch_size}/masks/a\.png "
         r"is 16x16"),
    Case("prepare_label_colours_of_no_class", "prepare",
         ["--prepare_dataset=folder", "--prepare_src={arch_unknown}", "--data_dir={out}/store"],
         1, r"{arch_unknown}/masks/a\.png: 320 of 1024 label pixels \(31\.2%\) have colours "
         r"that match no class of 'potsdam': \(12,34,56\): 320 px; expected "
         r"impervious_surfaces=\(255,255,255\)"),
    Case("prepare_malformed_class_file", "prepare",
         ["--prepare_dataset=folder", "--prepare_src={arch_palette}", "--data_dir={out}/store",
          "--classes={bad_classes}"], 1, r"{bad_classes}"),
    Case("prepare_missing_archive", "prepare",
         ["--prepare_dataset=folder", "--prepare_src={out}/nothing", "--data_dir={out}/store"],
         1, r"{out}/nothing: source folder not found"),
    Case("prepare_renamed_flag", "prepare", ["--dst={out}/store"], 1,
         r"--dst is now --data_dir"),
    Case("make_demo_data_tiny_size", "make_demo_data", ["--output_dir={out}/demo", "--size=8"], 1,
         r"--size must be an integer >= \d+"),
    # --- predict: reading (one run over a folder of good and bad files) ---
    Case("predict_unreadable_file", "predict", MIXED, 1,
         r"SKIPPED {mixed}/broken\.tif: TIFF without an image", group="predict_mixed"),
    Case("predict_wrong_dtype", "predict", MIXED, 1,
         r"{mixed}/u\.tif: uint16 pixels but the model was trained on uint8; pass "
         r"--rescale_input=dtype", group="predict_mixed"),
    Case("predict_wrong_band_count", "predict", MIXED, 1,
         r"{mixed}/b\.tif: has 2 bands but the model takes 3 \(R, G, B\)",
         group="predict_mixed"),
    Case("predict_reports_the_failed_tiles", "predict", MIXED, 1,
         r"^tools\.predict: 3 of 4 tile\(s\) failed: ", _only_c_predicted,
         group="predict_mixed"),
    Case("predict_nothing_matches", "predict",
         ["--model={export}", "--input={out}/*.tif", "--output_dir={out}"], 1,
         r"--input={out}/\*\.tif: no file or folder matches"),
    Case("predict_two_inputs_one_stem", "predict",
         ["--model={export}", "--input={same_stem}", "--output_dir={out}"], 1,
         r"^tools\.predict: {same_stem}/scene\.png and {same_stem}/scene\.tif would both "
         r"write scene_classes\.tif in --output_dir; rename one, or give --input a pattern",
         _no_workdir_written),
    Case("predict_twice_into_its_input_folder", "predict",
         ["--model={export}", "--input={rerun}", "--output_dir={rerun}"], 0,
         r"not predicting 2 earlier output\(s\) of tools\.predict in --output_dir "
         r"\(old_classes\.tif, old_colour\.png\)", _rerun_predicts_only_the_tile),
    Case("predict_output_dir_is_a_file", "predict",
         ["--model={export}", "--input={good}", "--output_dir={a_file}"], 1,
         r"^tools\.predict: --output_dir={a_file} is a file, not a folder; give a folder$"),
    Case("predict_output_dir_not_writable", "predict",
         ["--model={export}", "--input={good}", "--output_dir=/sys/ortholoop_predictions"], 1,
         r"^tools\.predict: --output_dir=/sys/ortholoop_predictions: cannot write in /sys "
         r"\(Permission denied\); choose another --output_dir$"),
    Case("prepare_data_dir_is_a_file", "prepare",
         ["--prepare_dataset=folder", "--prepare_src={arch_palette}", "--data_dir={a_file}"], 1,
         r"--data_dir={a_file} is a file, not a folder; give a folder$"),
    Case("make_demo_data_out_under_a_file", "make_demo_data", ["--output_dir={a_file}/demo"], 1,
         r"--output_dir={a_file}/demo cannot be created: {a_file} is a file$"),
    Case("lr_find_output_dir_is_a_file", "lr_find",
         ["--data_dir={store}", *TRAIN, "--output_dir={a_file}"], 1,
         r"^tools\.lr_find: --output_dir={a_file} is a file, not a folder; give a folder$"),
    Case("evaluate_output_dir_under_a_file", "evaluate",
         ["--model={export}", "--data_dir={store}", "--output_dir={a_file}/eval"], 1,
         r"^tools\.evaluate: --output_dir={a_file}/eval cannot be created: {a_file} is a "
         r"file$"),
    Case("export_dir_is_a_file", "export", ["--model={workdir}", "--export_dir={a_file}"], 1,
         r"^tools\.export: --export_dir={a_file} is a file, not a folder; give a folder$"),
    Case("import_encoder_out_is_a_file", "import_encoder",
         ["--encoder=resnet50", "--output_dir={a_file}"], 1,
         r"^tools\.import_encoder: --output_dir={a_file} is a file, not a folder; give a folder$"),
    # --- damaged models ---
    Case("predict_corrupt_saved_model_pb", "predict",
         ["--model={export_bad_pb}", "--input={good}", "--output_dir={out}"], 1,
         r"^tools\.predict: {export_bad_pb}/saved_model\.pb is damaged \(cannot be read: "
         r".*\); export the model again$"),
    Case("evaluate_truncated_variables", "evaluate",
         ["--model={export_bad_vars}", "--data_dir={store}", "--output_dir={out}"], 1,
         r"^tools\.evaluate: {export_bad_vars}/variables/variables\.data-00000-of-00001 is "
         r"damaged \(cannot be read: Read less bytes than requested\)"),
    Case("export_corrupt_checkpoint_index", "export",
         ["--model={workdir_bad_index}", "--export_dir={out}/export"], 1,
         r"^tools\.export: {workdir_bad_index}/checkpoints/best/ckpt-1\.index is damaged "
         r"\(cannot be read: .*\); use the other --checkpoint \(best, latest\)"),
    # --- no labelled pixel: reported as unknown, not as 0 ---
    Case("evaluate_no_labelled_pixel", "evaluate",
         ["--model={export}", "--data_dir={store_unlabelled}", "--output_dir={out}"], 0,
         r"all of 1 tile\(s\) of --split=val have no labelled pixel \(all ignore or no "
         r"data\): their scores are null in metrics\.json, - in metrics\.md: t2",
         _nulls_in_reports),
]


class BadInputsTest(tf.test.TestCase, parameterized.TestCase):
    """All runs happen at once in setUpClass, three at a time (each is mostly
    a TensorFlow import); each test then checks its case's run."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        before = tree_state(F["user"])
        locked = os.path.join(F["root"], "locked")
        values = {**F, "locked": locked, "pid": os.getpid(), "host": socket.gethostname()}
        cls.values, commands = {}, {}
        for case in CASES:
            key = case.group or case.name
            out = os.path.join(F["root"], "out", key)
            os.makedirs(out, exist_ok=True)
            cls.values[case.name] = dict(values, out=out)
            commands[key] = (case.tool, [_fill(a, cls.values[case.name]) for a in case.args])
        with lock_workdir(locked):  # another training, for the case that needs one
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                done = {k: pool.submit(run_tool, tool, *args)
                        for k, (tool, args) in commands.items()}
                cls.runs = {k: f.result() for k, f in done.items()}
        cls.changed = sorted(set(tree_state(F["user"]).items()) ^ set(before.items()))

    @parameterized.named_parameters((c.name, c) for c in CASES)
    def test_case(self, case):
        run, values = self.runs[case.group or case.name], self.values[case.name]
        stderr = run.stderr
        self.assertEqual(run.returncode, case.code, stderr[-3000:])
        self.assertNotIn("Traceback", stderr)
        pattern = _fill(case.message, values, escape=True)
        lines = [line for line in stderr.splitlines()
                 if re.search(pattern, re.sub(r"^[IWEF]\d{4} [\d:.]+ +\d+ \S+\] ", "", line))]
        self.assertLen(lines, 1, f"no single line matches {pattern!r} in:\n{stderr[-3000:]}")
        if case.check:
            case.check(self, values["out"])

    def test_users_files_unchanged(self):
        self.assertEqual(self.changed, [], "the runs changed the user's files")


def _fill(text, values, escape=False):
    """"{key}" -> values[key] (regex-escaped in messages)."""
    return re.sub(r"\{(\w+)\}",
                  lambda m: (re.escape if escape else str)(str(values[m[1]])), text)


if __name__ == "__main__":
    tf.test.main()
