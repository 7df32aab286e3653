"""Held-out quality on real imagery: the default U-Net run through the
binaries against the talk's Keras U-Net, on the same patches, scored by the
same code on the same whole held-out images.

  TF_CPP_MIN_LOG_LEVEL=2 python -m benchmarks.bench_quality          # --steps=60,400
  python -m benchmarks.bench_quality --steps=2000 --systems=ours --seed=0

Data (`--data`, relative to the project root): ../shared/data/dubai-aerial,
the CC0 "Semantic segmentation of aerial imagery" set (Dubai, MBRSC, labelled
by Humans in the Loop): areas tile_N of RGB JPEGs with RGB colour masks, 5
classes; unlabeled grey and black are ignored. Split BY AREA (images of one
area overlap, so an image split leaks). Default `--val_areas=tile_4,tile_6`:
every class is >= 7.8 % of their pixels (building 23, land 27, road 8,
vegetation 18, water 24 %), training keeps shares close to the whole set's
(land 46, water 17, building 14, vegetation 11, road 10 %) and the largest
area (tile_8, 29 of 61 Mpx) to learn from, and the held-out set (15 Mpx, 18
images) is cheap enough to score four times on a shared 2-core CPU.

1. stage: `--work`/stage/{images,masks}/tile_N__image_part_00K.* symlinks,
   the toolkit's `folder` layout (nothing is ever written under --data);
2. ours, as a user runs it (each command is printed; every other flag at its
   default: precision auto = mixed_bfloat16 on an AVX-512 BF16 CPU, SGD
   momentum with one-cycle to max_lr 0.15 and weight decay 2e-3,
   cross-entropy + Jaccard, flips, quarter turns, brightness and contrast;
   rows before that default have weight decay 0 and no brightness/contrast):
     python -m tools.prepare --prepare_dataset=folder --prepare_src=STAGE
         --data_dir=STORE --classes=CLASSES --val_tiles=<held-out images>
     python -m tools.train --data_dir=STORE --train_steps=N --patch_size=256
         --batch_size=8 --seed=S --eval_every=N --workdir_root=RUNS
     python -m tools.evaluate --model=RUN --checkpoint=latest --data_dir=STORE
         --window=512 --overlap=0.25 --output_dir=RUN/eval_latest
   Fixed by the benchmark: `--checkpoint=latest`, the weights after N steps
   like the Keras peer (`best` would pick by mIoU on the held-out areas'
   patches), hence `--eval_every=N`: the per-epoch validation only chooses
   `best` and would add minutes of held-out passes to the training time.
   `--eval_each_epoch` keeps tools.train's per-epoch evaluations instead, to
   measure the batch-norm recompute at each (the weights are the same: the
   recompute and validation draw their own streams).
3. keras, the talk's way: `benchmarks.bench_unet.keras_unet` (the same
   widths, residual blocks and conv center; Keras' BatchNormalization
   defaults) behind a Normalization layer with the store's mean/std and a
   K-class head; `compile(SGD(nesterov=True), sparse cross-entropy ignoring
   255)`, learning rate one-cycle to 0.1 (`core.schedules.one_cycle`, the
   talk's OneCycleScheduler), momentum 0.9 (Keras 3 bakes SGD's momentum into
   the compiled step, so it cannot be cycled like the talk's callback did),
   in the precision ours picks by default on this machine (`--keras_dtype`,
   default auto: the comparison is about the recipe, not the dtype; the talk
   trained float32 on a GPU, and float32 is Keras' own default: 4x slower
   convolutions than bfloat16 on this CPU); ONE `fit` of N steps fed by
   `core.data.pipeline.train_dataset` with the PipelineConfig tools.train
   builds from the same data flags: the same windows and seeds (the same
   order too with `--deterministic`, passed to both), and flips and quarter
   turns without ours' default brightness/contrast (KERAS_AUGMENT).
4. both scored by `core.inference.TilePredictor` (window 512, overlap 0.25,
   tools.evaluate's defaults) and `core.metrics.ConfusionMatrix` (ours inside
   tools.evaluate, keras here).

Sweeps (`--train_flags`): extra tools.train flags for ours, one set or several
separated by ";" ("" or "-" = the defaults), each set trained at every `--steps`
with the rest fixed as above, e.g.
  python -m benchmarks.bench_quality --systems=ours --steps=150 \
      --train_flags="--max_lr=0.2;--optimizer=adamw --max_lr=1e-3;--loss=ce+jaccard"
A row is keyed by system, steps, seed and its flags and records the values
tools.train used (its config.json: optimizer, max_lr, weight decay, warm-up
share, loss, sampling). sweep.md ranks ours' rows at each step count that has
a sweep row; the learning curve plots ours' rows without extra flags only.

Training images/s: steady state, the first inner loop (ours) or first batch
(keras), which trace, left out. Train wall: ours the whole tools.train
process (imports, tracing, its one validation pass at the end, checkpoints), keras
model build + fit. Writes, in `--out` (benchmarks/quality): results.md (and
results.json: rows of earlier invocations are kept, a rerun replaces its own),
learning_curve.png, sample_steps<N>.png (image | ground truth | ours | keras).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bench_unet import keras_unet  # noqa: E402
from benchmarks.quality import report  # noqa: E402
from core import inference, metrics, schedules  # noqa: E402
from core.data import pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WINDOW, OVERLAP, FILTERS, DEPTH, MAX_LR = 512, 0.25, 32, 4, 0.1
# The benchmark sets these itself: a sweep may vary anything else tools.train takes.
FIXED_FLAGS = ("data_dir", "train_steps", "patch_size", "batch_size", "seed", "eval_every",
               "workdir_root", "workdir", "deterministic", "flagfile")
STEP_LINE = re.compile(r"step (\d+)/\d+ loss \S+ lr \S+ ([\d.]+) img/s")
EPOCH_LINE = re.compile(r"\((\d+) steps, (\d+) per epoch")
BN_LINE = re.compile(r"re-estimated on (\d+) batches \(\d+ layers, ([\d.]+) s\)")


# --- staging: the toolkit's folder layout, split by area -------------------------
def _link(target: Path, link: Path) -> None:
    if link.is_symlink():
        if os.readlink(link) == str(target):
            return
        link.unlink()
    elif link.exists():
        raise SystemExit(f"{link}: exists and is not a symlink; choose another --work")
    link.symlink_to(target)


def stage(data: Path, stage_dir: Path, val_areas: list[str]) -> dict[str, list[str]]:
    """Links every image/mask of `data` as stage_dir/{images,masks}/<area>__<stem>.*
    Returns {"train": [names], "val": [names]} (val: the images of val_areas)."""
    areas = sorted(p.name for p in data.glob("*") if (p / "images").is_dir())
    if not areas:
        raise SystemExit(f"--data={data}: no <area>/images folders (expected dubai-aerial)")
    unknown = [a for a in val_areas if a not in areas]
    if unknown or len(val_areas) >= len(areas):
        raise SystemExit(f"--val_areas={','.join(val_areas)}: expected a strict subset of "
                         f"the areas {', '.join(areas)}")
    for sub in ("images", "masks"):
        (stage_dir / sub).mkdir(parents=True, exist_ok=True)
    names: dict[str, list[str]] = {"train": [], "val": []}
    for area in areas:
        for image in sorted((data / area / "images").glob("*.jpg")):
            mask = data / area / "masks" / (image.stem + ".png")
            if not mask.is_file():
                raise SystemExit(f"{image}: no mask {mask}")
            name = f"{area}__{image.stem}"
            _link(image.resolve(), stage_dir / "images" / (name + image.suffix))
            _link(mask.resolve(), stage_dir / "masks" / (name + ".png"))
            names["val" if area in val_areas else "train"].append(name)
    return names


# --- ours: the binaries ----------------------------------------------------------
def run(cmd: list[str], log_path: Path) -> tuple[float, str]:
    """Runs a tools.* binary from the project root, its output into log_path."""
    print("$ " + shlex.join(cmd), flush=True)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              check=False).returncode
    wall, text = time.perf_counter() - start, log_path.read_text(encoding="utf-8")
    if code:
        tail = "\n".join(text.splitlines()[-12:])
        raise RuntimeError(f"{cmd[2]} exited with {code} after {wall:.0f} s "
                           f"(log {log_path}):\n{tail}")
    return wall, text


# The Keras peer keeps the augmentation all its rows were measured with, flips
# and quarter turns: tools.train's brightness/contrast defaults came later, and
# are ours' recipe, not the talk's.
KERAS_AUGMENT = ("--aug_brightness=0", "--aug_contrast=0")


def data_flags(args, store: Path) -> list[str]:
    """The data flags of the train command (the Keras peer's pipeline uses them too)."""
    return ([f"--data_dir={store}", f"--patch_size={args.patch_size}",
             f"--batch_size={args.batch_size}", f"--seed={args.seed}"]
            + (["--deterministic"] if args.deterministic else []))


def parse_flag_sets(text: str) -> list[tuple[str, ...]]:
    """`--train_flags` -> flag sets (tuples of tools.train arguments); () = the defaults.
    Each argument must be a --flag (or --flag=value) the benchmark does not fix."""
    sets = []
    for part in text.split(";"):
        tokens = tuple(shlex.split(part))
        if tokens in ((), ("-",)):
            sets.append(())
            continue
        for token in tokens:
            name = token[2:].split("=", 1)[0] if token.startswith("--") else ""
            if not name or name.removeprefix("no") in FIXED_FLAGS or name in FIXED_FLAGS:
                raise ValueError(f"--train_flags: {token!r} in {part.strip()!r}: expected "
                                 f"--flag[=value] of tools.train other than "
                                 f"{', '.join('--' + f for f in FIXED_FLAGS)}")
        sets.append(tokens)
    return list(dict.fromkeys(sets))  # a repeated set runs once


def recompute_cost(log_text: str, step_seconds: float) -> dict | None:
    """The first batch-norm recompute in a tools.train log and its share of an
    epoch's training at `step_seconds` a step: the default --eval_every=0
    evaluates, and so recomputes, once per epoch; the same for the mean of the
    later ones, if any (`later_*`). None: no recompute logged."""
    epoch, recompute = EPOCH_LINE.search(log_text), BN_LINE.findall(log_text)
    if not (epoch and recompute):
        return None
    batches, seconds, per_epoch = int(recompute[0][0]), float(recompute[0][1]), int(epoch.group(2))
    later = [float(s) for _, s in recompute[1:]]  # traced and warmed up already
    return {"batches": batches, "seconds": seconds, "steps_per_epoch": per_epoch,
            "step_seconds": step_seconds, "epoch_share": seconds / (per_epoch * step_seconds),
            "later_seconds": later,
            "later_epoch_share": (sum(later) / len(later) / (per_epoch * step_seconds)
                                  if later else None)}


def train_ours(args, store: Path, steps: int, extra: tuple[str, ...] = ()) -> dict:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs = args.work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    # mkdtemp's suffix: two invocations started in the same second (one per
    # flag set, side by side) would otherwise share the folder and collide.
    root = Path(tempfile.mkdtemp(prefix=f"ours-steps{steps}-seed{args.seed}-{stamp}-", dir=runs))
    cmd = ([sys.executable, "-m", "tools.train", *data_flags(args, store)[:1],
            f"--train_steps={steps}", *data_flags(args, store)[1:],
            f"--eval_every={0 if args.eval_each_epoch else steps}", f"--workdir_root={root}",
            *extra])
    wall, text = run(cmd, root / "train.log")
    workdirs = [Path(p).parent for p in glob.glob(str(root / "*" / "config.json"))]
    if len(workdirs) != 1:
        raise RuntimeError(f"expected one run folder under {root}, found {workdirs}")
    done, images, seconds = 0, [], []
    for match in STEP_LINE.finditer(text):
        step, ips = int(match.group(1)), float(match.group(2))
        images.append((step - done) * args.batch_size)
        seconds.append(images[-1] / ips)
        done = step
    if done != steps:
        raise RuntimeError(f"tools.train logged step {done} of {steps} ({root / 'train.log'})")
    steady = slice(1, None) if len(images) > 1 else slice(None)
    config = json.loads((workdirs[0] / "config.json").read_text(encoding="utf-8"))
    bn = recompute_cost(text, sum(seconds[steady]) / (sum(images[steady]) / args.batch_size))
    return {"workdir": workdirs[0], "train_wall": wall, "first_loop": seconds[0],
            "images_per_s": sum(images[steady]) / sum(seconds[steady]), "command": cmd,
            "precision": config.get("train", {}).get("model", {}).get("policy", "?"),
            "flags": shlex.join(extra), "config": report.config_summary(config),
            "bn_recompute": bn}


def evaluate_ours(args, store: Path, workdir: Path) -> tuple[dict, dict, float]:
    out = workdir / "eval_latest"
    cmd = [sys.executable, "-m", "tools.evaluate", f"--model={workdir}", "--checkpoint=latest",
           f"--data_dir={store}", f"--window={WINDOW}", f"--overlap={OVERLAP}",
           f"--output_dir={out}"]
    wall, _ = run(cmd, workdir / "evaluate.log")
    result = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["plain"]
    return result["total"], result["per_tile"], wall


def load_ours(workdir: Path):
    from train_loop import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
    return workdir_lib.load_model(str(workdir), "latest")[0]


# --- keras: the talk's Model.fit ---------------------------------------------------
class KerasOneCycle(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of `core.schedules.one_cycle` (torch's OneCycleLR)."""

    def __init__(self, total_steps: int, max_lr: float):
        self.total_steps, self.max_lr = total_steps, max_lr

    def __call__(self, step):
        return schedules.one_cycle(step, self.total_steps, self.max_lr)[0]

    def get_config(self):
        return {"total_steps": self.total_steps, "max_lr": self.max_lr}


def keras_model(info: dict, dtype: str):
    """bench_unet's Keras U-Net body, normalised input, a K-class head."""
    keras = tf.keras
    if info["in_channels"] != 3:
        raise SystemExit(f"the Keras peer takes 3 bands; the store feeds {info['bands']}")
    body = keras_unet(None, FILTERS, DEPTH, dtype)
    last = body.layers[-3]  # the last decoder block's ReLU, before bench_unet's head
    if not isinstance(last, keras.layers.ReLU):
        raise RuntimeError(f"benchmarks.bench_unet.keras_unet changed: {last} before its head")
    inputs = keras.Input([None, None, 3])
    x = keras.layers.Normalization(mean=info["mean"], variance=np.square(info["std"]),
                                   dtype=dtype)(inputs)
    x = keras.Model(body.input, last.output)(x)
    x = keras.layers.Conv2D(len(info["class_names"]), 1, dtype=dtype)(x)
    return keras.Model(inputs, keras.layers.Activation("linear", dtype="float32")(x))


class KerasWindows:
    """`model(images, training=False) -> logits` with a depth, for TilePredictor."""
    depth = DEPTH

    def __init__(self, model):
        self.model = model

    @tf.autograph.experimental.do_not_convert  # autograph mistakes a Keras Model's call
    def __call__(self, images, training=False):
        return self.model(images, training=training)


def train_keras(args, info: dict, steps: int, pipe_cfg) -> dict:
    keras = tf.keras
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    model = keras_model(info, args.keras_dtype)
    model.compile(optimizer=keras.optimizers.SGD(KerasOneCycle(steps, MAX_LR), momentum=0.9,
                                                 nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=255))
    stamps = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(logs["loss"])  # the step has finished before the stamp
            stamps.append(time.perf_counter())
            if (batch + 1) % 10 == 0 or batch + 1 == steps:
                print(f"keras step {batch + 1}/{steps}: {stamps[-1] - fit_start:.0f} s into fit",
                      flush=True)

    def to_keras(batch):  # (x, y) as fit takes them; the image stays raw band values
        return tf.cast(batch["image"], tf.float32), tf.cast(batch["label"], tf.int32)

    batches = pipeline.train_dataset(pipe_cfg).map(to_keras)
    fit_start = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Timer()])
    end = time.perf_counter()
    steady = (steps - 1) * args.batch_size / (stamps[-1] - stamps[0]) if steps > 1 else (
        args.batch_size / (end - fit_start))
    return {"model": KerasWindows(model), "train_wall": end - start,
            "first_loop": stamps[0] - fit_start, "images_per_s": steady,
            "precision": args.keras_dtype}


# --- the shared scoring -------------------------------------------------------------
def score(model, store: Path, class_names: list, keep: str) -> tuple[dict, np.ndarray, float]:
    """Whole val images -> (ConfusionMatrix.to_dict, class ids of `keep`, seconds)."""
    start = time.perf_counter()
    predictor = inference.TilePredictor(model, window=WINDOW, overlap=OVERLAP, batch_size=4)
    total, kept = metrics.ConfusionMatrix(len(class_names)), None
    for name, image, label in pipeline.iter_tiles(str(store), "val"):
        classes = inference.probabilities_to_classes(predictor(image))
        total.update(label, classes)
        kept = classes if name == keep else kept
    return total.to_dict(class_names), kept, time.perf_counter() - start


def predict_one(model, image: np.ndarray) -> np.ndarray:
    predictor = inference.TilePredictor(model, window=WINDOW, overlap=OVERLAP, batch_size=4)
    return inference.probabilities_to_classes(predictor(image))


# --- main -------------------------------------------------------------------------
def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/dubai-aerial",
                   help="dubai-aerial folder (relative paths: to the project root)")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ortholoop-quality"),
                   help="scratch folder: stage/, store/, runs/")
    p.add_argument("--classes", default="benchmarks/quality/dubai_classes.json")
    p.add_argument("--val_areas", default="tile_4,tile_6")
    p.add_argument("--steps", default="60,400", help="training lengths, e.g. 60,400,2000")
    p.add_argument("--systems", default="ours,keras")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patch_size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--deterministic", action="store_true",
                   help="fixed data order (both systems see the patches in the same order)")
    p.add_argument("--keras_dtype", default="auto",
                   help="Keras dtype policy; auto: what tools.train --precision=auto picks")
    p.add_argument("--figure_image", default="tile_6__image_part_004")
    p.add_argument("--skip_prepare", action="store_true", help="use the store in --work as is")
    p.add_argument("--train_flags", default="",
                   help='extra tools.train flags for ours; ";" separates the sets of a sweep '
                        '("" or "-": the defaults), e.g. "--max_lr=0.2;--loss=ce+jaccard"')
    p.add_argument("--eval_each_epoch", action="store_true",
                   help="ours evaluates once per epoch (tools.train's default --eval_every=0) "
                        "instead of once at the end: measures the batch-norm recompute's cost "
                        "at every evaluation; the weights trained are the same")
    p.add_argument("--out", default="benchmarks/quality")
    args = p.parse_args()
    absolute = lambda v: Path(v) if os.path.isabs(v) else ROOT / v  # noqa: E731
    args.data, args.out = absolute(args.data).resolve(), absolute(args.out)
    args.classes, args.work = absolute(args.classes), Path(args.work).resolve()
    args.steps = [int(s) for s in args.steps.split(",")]
    args.systems = [s for s in args.systems.split(",") if s]
    args.val_areas = [a for a in args.val_areas.split(",") if a]
    if args.keras_dtype == "auto":
        from core.precision import default_policy_name  # pylint: disable=import-outside-toplevel
        args.keras_dtype = default_policy_name()
    try:
        args.flag_sets = parse_flag_sets(args.train_flags)
    except ValueError as err:
        p.error(str(err))
    if set(args.systems) - {"ours", "keras"}:
        p.error(f"--systems={','.join(args.systems)}: expected ours and/or keras")
    if args.work == args.data or args.data in args.work.parents:
        p.error(f"--work={args.work} is inside --data; the shared data is read-only")
    return args


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    machine = report.machine_line()
    print(machine, flush=True)
    store = args.work / "store"
    names = stage(args.data, args.work / "stage", args.val_areas)
    print(f"staged {len(names['train'])} train images ({', '.join(sorted({n.split('__')[0] for n in names['train']}))}) "
          f"and {len(names['val'])} held-out ({', '.join(args.val_areas)}) in {args.work / 'stage'}",
          flush=True)
    if not args.skip_prepare:
        cmd = [sys.executable, "-m", "tools.prepare", "--prepare_dataset=folder",
               f"--prepare_src={args.work / 'stage'}", f"--data_dir={store}",
               f"--classes={args.classes}", f"--val_tiles={','.join(names['val'])}"]
        run(cmd, args.work / "prepare.log")
    info_split = pipeline.load_info(str(store))["splits"]
    if sorted(info_split["val"]) != sorted(names["val"]):
        raise SystemExit(f"{store}: its val split is not --val_areas' images; rerun without "
                         "--skip_prepare or use another --work")
    from absl import flags  # pylint: disable=import-outside-toplevel
    from tools import data_flags as tool_flags  # pylint: disable=import-outside-toplevel
    flags.FLAGS(["bench_quality", *data_flags(args, store), *KERAS_AUGMENT])
    pipe_cfg = tool_flags.pipeline_config_from_flags(flags.FLAGS)
    info = pipeline.dataset_info(pipe_cfg)
    class_names = list(info["class_names"])
    figure = next((t for t in pipeline.iter_tiles(str(store), "val") if t[0] == args.figure_image),
                  None)
    if figure is None:
        raise SystemExit(f"--figure_image={args.figure_image}: not a held-out image")

    rows = report.load_rows(args.out)
    for steps in args.steps:
        predictions = {}
        runs = [(s, extra) for s in args.systems
                for extra in (args.flag_sets if s == "ours" else [()])]
        for system, extra in runs:
            print(f"\n=== {system}, {steps} steps {shlex.join(extra)} ===", flush=True)
            try:
                if system == "ours":
                    trained = train_ours(args, store, steps, extra)
                    total, per_tile, eval_wall = evaluate_ours(args, store, trained["workdir"])
                    if not extra:  # the sample figure shows the defaults
                        predictions["ours"] = predict_one(load_ours(trained["workdir"]),
                                                          figure[1])
                        check = metrics.ConfusionMatrix(len(class_names))
                        check.update(figure[2], predictions["ours"])
                        print(f"{args.figure_image} mIoU: tools.evaluate "
                              f"{per_tile[args.figure_image]['mean_iou']:.4f}, here "
                              f"{check.to_dict(class_names)['mean_iou']:.4f}")
                else:
                    trained = train_keras(args, info, steps, pipe_cfg)
                    total, predictions["keras"], eval_wall = score(
                        trained["model"], store, class_names, args.figure_image)
            except RuntimeError as err:
                print(f"{system} {steps} steps FAILED: {err}", flush=True)
                continue
            row = report.make_row(system, steps, args, total, class_names, trained, eval_wall)
            rows[report.row_key(row)] = row
            print(report.row_line(row), flush=True)
            report.write(args.out, rows, class_names, machine, args, names)
        saved = args.work / "predictions"
        saved.mkdir(exist_ok=True)
        for system, ids in predictions.items():
            np.save(saved / f"{system}-steps{steps}-seed{args.seed}-{args.figure_image}.npy", ids)
        for system in ("ours", "keras"):  # another invocation's, if there is one
            path = saved / f"{system}-steps{steps}-seed{args.seed}-{args.figure_image}.npy"
            if system not in predictions and path.is_file():
                predictions[system] = np.load(path)
        if predictions:
            report.sample_figure(args.out / f"sample_steps{steps}.png", figure, predictions,
                                 info, steps)
    report.write(args.out, rows, class_names, machine, args, names)
    print("\n" + report.markdown_table(rows, class_names))
    print(f"total benchmark time {time.perf_counter() - t0:.0f} s; wrote {args.out}/results.md")


if __name__ == "__main__":
    main()
