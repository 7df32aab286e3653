r"""Scores a model on the whole validation tiles of a prepared store.

  python -m tools.evaluate --model=runs/unet-20260101-10h00mn --data_dir=data/potsdam --tta=d4

Full tiles, not patches, of a store of the model's input dtype (uint8,
uint16, ...; no-data pixels are labelled 255 there and never counted),
predicted with sliding windows like tools.predict, plain and (with --tta)
with test-time augmentation. Confusion matrices over
the split and per tile give OA, per-class IoU/F1/precision/recall, mean IoU and
mean F1, also without --exclude (Potsdam's clutter). Writes metrics.json,
metrics.md and confusion_matrix[_tta].png (matplotlib, extra `plot`; skipped
with a warning without it) to --output_dir (default <workdir>/eval or
<export>_eval). One tools.* binary per process (absl flags are global).
"""
import json
import os

from absl import app, flags, logging

from tools import inference_flags, outputs, renamed_flags, store_flags

flags.adopt_module_key_flags(inference_flags)  # --helpshort lists the shared flags too
flags.adopt_module_key_flags(store_flags)
flags.DEFINE_string("split", "val", "Split of the store to score.")
flags.DEFINE_list("exclude", None, "Classes left out of the 'without' means; default: the "
                  "store's excluded_from_mean (Potsdam: clutter).")
flags.DEFINE_list("objects", None, "Also score these classes per object (e.g. building): "
                  "connected components matched one-to-one at IoU >= 0.5, precision, "
                  "recall and F1 (the SpaceNet building metric; core/object_metrics.py).")
flags.DEFINE_integer("max_tiles", 0, "Score only the first N tiles (0: all).")
flags.DEFINE_string("output_dir", None, "Where to write the reports.")
flags.register_validator("max_tiles", lambda v: v >= 0, "--max_tiles must be >= 0 (0: all)")
FLAGS = flags.FLAGS


def markdown(report: dict, class_names: list) -> str:
    """metrics.md: whole-set scores, per class and per tile, plain vs TTA."""
    runs = [k for k in ("plain", "tta") if k in report]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    pair = lambda d, a, b: f"{fmt(d[a])} / {fmt(d[b])}"  # noqa: E731
    def table(title, keys, cell):
        return (f"\n## {title}\n\n| | " + " | ".join(runs) + " |\n|---|" + "---|" * len(runs)
                + "\n" + "".join(f"| {k} | " + " | ".join(cell(report[r], k) for r in runs)
                                 + " |\n" for k in keys))

    total, scores = report["plain"]["total"], ["overall_accuracy", "mean_iou", "mean_f1"]
    objects = list(total.get("objects", {}))
    ratio = lambda d, k: "/".join(fmt(d[k][s]) for s in ("precision", "recall", "f1"))  # noqa
    if "without" in total:
        scores += [f"{n} without {', '.join(total['without']['excluded'])}"
                   for n in ("mean_iou", "mean_f1")]
    get = lambda t, k: t["without"][k.split()[0]] if " without " in k else t[k]  # noqa: E731
    return (f"# {report['split']}: {len(report['tiles'])} whole tiles\n"
            + table("Whole set", scores, lambda r, k: fmt(get(r["total"], k)))
            + table("Per class (IoU / F1)", class_names,
                    lambda r, c: pair(r["total"]["classes"][c], "iou", "f1"))
            + table("Per tile (overall accuracy / mean IoU)", report["tiles"],
                    lambda r, t: pair(r["per_tile"][t], "overall_accuracy", "mean_iou"))
            + (table("Objects at IoU >= 0.5 (precision / recall / F1)", objects,
                     lambda r, c: ratio(r["total"]["objects"], c)) if objects else ""))


def plot_confusion(matrix, class_names: list, path: str, title: str) -> None:
    """Row-normalised confusion matrix (recall per true class) as a PNG."""
    import numpy as np
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed (pip install '.[plot]'): %s skipped", path)
        return
    counts = np.asarray(matrix, np.float64)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(share):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v > .5 else "black")
    ax.set(xticks=range(len(class_names)), yticks=range(len(class_names)), title=title,
           xlabel="predicted", ylabel="true", yticklabels=class_names)
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def output_dir() -> str:
    """--output_dir, else beside the model: <export>_eval or <workdir>/eval."""
    model_dir = FLAGS.model.rstrip("/")
    # core.export.is_export's test, here before TensorFlow is imported.
    is_export = os.path.isfile(os.path.join(model_dir, "saved_model.pb"))
    return FLAGS.output_dir or model_dir + ("_eval" if is_export else "/eval")


def main(argv):
    del argv
    inference_flags.require("model", "data_dir")
    out = output_dir()
    try:  # before the model is loaded: the scores would be lost at the end
        outputs.check_output_dir(out, "--output_dir", files=("metrics.json", "metrics.md"))
    except outputs.OutputError as err:
        raise SystemExit(f"tools.evaluate: {err}") from None
    from core import inference, metrics, object_metrics
    from core.data import pipeline
    from core.data.datasets import ELEVATION_BANDS
    from train_loop.progress import TileProgress

    # --- model and store ---
    try:
        model, info = inference_flags.load_model()
        store = pipeline.load_info(FLAGS.data_dir)
        names, bands = list(info["class_names"]), list(info["bands"])
        stored = store["bands"] + [ELEVATION_BANDS[k] for k in store["elevations"]]
        missing = [b for b in bands if b not in stored]
        if missing or len(store["class_names"]) != len(names):
            raise ValueError(f"{FLAGS.data_dir}: the store has bands {stored} and "
                             f"{len(store['class_names'])} classes; the model takes bands "
                             f"{bands} and predicts {len(names)} classes")
        if info.get("input_dtype") not in (None, store["dtype"]):
            raise ValueError(f"{FLAGS.data_dir}: the store's optical bands are "
                             f"{store['dtype']}, {FLAGS.model} was trained on "
                             f"{info['input_dtype']}; evaluate on a store of the same kind")
        wanted = (FLAGS.exclude if FLAGS.exclude is not None
                  else store.get("excluded_from_mean", []))
        unknown = [c for c in wanted if c not in names]
        if unknown and FLAGS["exclude"].present:
            raise ValueError(f"--exclude={','.join(unknown)}: not among the classes {names}")
        exclude = [names.index(c) for c in wanted if c in names]
        unknown = [c for c in FLAGS.objects or [] if c not in names]
        if unknown:
            raise ValueError(f"--objects={','.join(unknown)}: not among the classes {names}")
        tta = inference.parse_tta(FLAGS.tta)
        runs = {"plain": (0,), **({"tta": tta} if tta != (0,) else {})}
        if FLAGS.split not in store["splits"]:
            raise ValueError(f"--split={FLAGS.split}: the store has {sorted(store['splits'])}")
        window = inference_flags.window(info)
        predictors = {k: inference_flags.tile_predictor(model, info, tta=t)
                      for k, t in runs.items()}
    except ValueError as err:  # WorkdirError, ExportError, TileError too
        raise SystemExit(f"tools.evaluate: {err}") from None
    optical = [b for b in bands if b not in ELEVATION_BANDS.values()]
    kind = {band: k for k, band in ELEVATION_BANDS.items()}.get(bands[-1], "none")
    split_tiles = store["splits"][FLAGS.split][:FLAGS.max_tiles or None]
    tile_iter = pipeline.iter_tiles(FLAGS.data_dir, FLAGS.split, bands=optical,
                                    elevation=kind)

    # --- predict and count, tile by tile ---
    totals = {k: metrics.ConfusionMatrix(len(names), exclude=exclude) for k in runs}
    objects = {k: object_metrics.ObjectScores({c: names.index(c) for c in FLAGS.objects})
               for k in runs} if FLAGS.objects else {}
    report = {"model": FLAGS.model, "data_dir": FLAGS.data_dir, "split": FLAGS.split,
              "window": window, "overlap": FLAGS.overlap, "tiles": split_tiles}
    report.update({k: {"tta": list(t), "per_tile": {}} for k, t in runs.items()})
    progress = TileProgress(len(split_tiles) * len(runs))
    for index, (tile, image, label) in zip(range(len(split_tiles)), tile_iter):
        for j, (key, predictor) in enumerate(predictors.items()):
            progress.start_tile(index * len(runs) + j, f"{tile} ({key})")
            classes = inference.probabilities_to_classes(predictor(image, progress))
            tile_cm = metrics.ConfusionMatrix(len(names), exclude=exclude)
            tile_cm.update(label, classes)
            totals[key].update(label, classes)
            report[key]["per_tile"][tile] = tile_cm.to_dict(names)
            if objects:
                report[key]["per_tile"][tile]["objects"] = objects[key].update(label, classes)
    for key, total in totals.items():
        report[key]["total"] = total.to_dict(names)
        if objects:
            report[key]["total"]["objects"] = objects[key].result()
            logging.info("%s objects: %s", key, report[key]["total"]["objects"])
        logging.info("%s, %d tiles:\n%s", key, len(split_tiles), total.table(names))
    # Scores of no pixel are unknown (null, "-"), never a silent 0.
    empty = [t for t, r in report["plain"]["per_tile"].items() if not r["labelled_pixels"]]
    if empty:
        logging.warning("%s of %d tile(s) of --split=%s have no labelled pixel (all ignore or "
                        "no data): their scores are null in metrics.json, - in metrics.md: %s",
                        "all" if len(empty) == len(split_tiles) else len(empty),
                        len(split_tiles), FLAGS.split, ", ".join(empty))

    # --- reports ---
    os.makedirs(out, exist_ok=True)
    for name, text in (("metrics.json", json.dumps(report, indent=2)),
                       ("metrics.md", markdown(report, names))):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    for key in runs:
        plot_confusion(report[key]["total"]["confusion_matrix"], names,
                       os.path.join(out, "confusion_matrix" + ("_tta" if key == "tta" else "")
                                    + ".png"), f"{FLAGS.split} ({key})")
    logging.info("wrote %s/metrics.json, metrics.md and the confusion matrices", out)


if __name__ == "__main__":
    app.run(main, flags_parser=renamed_flags.parser("evaluate"))
