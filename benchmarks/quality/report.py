"""Tables and pictures of benchmarks/bench_quality.py.

Rows (one per system, step count and seed) are kept in results.json so a
later or parallel invocation (say `--steps=2000 --systems=ours`) adds to the
table instead of replacing it; results.md and learning_curve.png are
rewritten from all rows, sample_steps<N>.png from the predictions saved in
the work folder (`<work>/predictions/<system>-steps<N>-seed<S>-<image>.npy`).
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
from pathlib import Path

import numpy as np

from core.data import labels as labels_lib


def machine_line() -> str:
    """CPU model, cores, bf16 flags, peak conv throughput and load: the context of
    every time in the table (the machine is shared)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from benchmarks.bench_train import peak_conv_flops  # pylint: disable=import-outside-toplevel
    from core.precision import cpu_flags  # pylint: disable=import-outside-toplevel

    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")),
                         "?")
    except OSError:
        pass
    flags = cpu_flags()
    bf16, f32 = peak_conv_flops(tf.bfloat16, 5), peak_conv_flops(tf.float32, 5)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"CPU: {model}, {os.cpu_count()} cores; avx512_bf16 "
            f"{'yes' if 'avx512_bf16' in flags else 'no'}, amx_bf16 "
            f"{'yes' if 'amx_bf16' in flags else 'no'}; peak conv 8x64x64x256 * 3x3x256x256: "
            f"bfloat16 {bf16[0] / 1e9:.0f} GFLOP/s, float32 {f32[0] / 1e9:.0f} GFLOP/s; "
            f"load average {load} at the start")


def row_key(row: dict) -> tuple:
    """A rerun with the same system, steps, seed, extra flags and values used
    replaces its row (a run of changed defaults keeps the old defaults' row)."""
    return (row["system"], row["steps"], row["seed"], row.get("flags", ""),
            row.get("config") or "")


def load_rows(out: Path) -> dict:
    path = out / "results.json"
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    return {row_key(r): r for r in rows}


def config_summary(config: dict) -> str:
    """The values a sweep varies, as tools.train recorded them in config.json (so a
    row stays readable after the defaults change): e.g. "sgd lr 0.1 wd 0 warm 0.3 ce"."""
    train, pipe = config.get("train", {}), config.get("pipeline", {})
    optim = train.get("optim", {})
    text = (f"{optim.get('optimizer', '?')} lr {optim.get('max_lr', '?'):g} "
            f"wd {optim.get('weight_decay') or 0:g} warm {optim.get('pct_start', '?'):g} "
            f"{train.get('loss', '?')}")
    if optim.get("schedule", "one_cycle") != "one_cycle":
        text += f" {optim['schedule']}"
    if pipe.get("sampling", "grid") != "grid":
        text += f" {pipe['sampling']}-sampling"
    if "augment" in pipe and pipe["augment"] is None:
        text += " no-augment"
    aug = pipe.get("augment") or {}
    # The augmentation knobs that are on: the defaults turned brightness and
    # contrast on, so a row has to say it (rows written before this list them
    # only in their flags).
    turned = [f"{name} {aug[name]:g}" for name in
              ("brightness", "contrast", "saturation", "hue", "gamma", "noise_std", "rotate_deg")
              if aug.get(name)]
    scale = tuple(aug.get("scale_range") or (1.0, 1.0))
    if scale != (1.0, 1.0):
        turned.append(f"scale {scale[0]:g}-{scale[1]:g}")
    if turned:
        text += " aug " + " ".join(turned)
    return text


def make_row(system: str, steps: int, args, total: dict, class_names: list,
             trained: dict, eval_wall: float) -> dict:
    return {"system": system, "steps": steps, "seed": args.seed, "batch": args.batch_size,
            "precision": trained["precision"], "mean_iou": total["mean_iou"],
            "overall_accuracy": total["overall_accuracy"],
            "iou": {c: total["classes"][c]["iou"] for c in class_names},
            "images_per_s": trained["images_per_s"], "train_wall": trained["train_wall"],
            "first_loop": trained["first_loop"], "eval_wall": eval_wall,
            "command": shlex.join(["python", *trained["command"][1:]])
            if "command" in trained else None,
            "flags": trained.get("flags", ""), "config": trained.get("config"),
            "bn_recompute": trained.get("bn_recompute"),
            "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M UTC"),
            "load": round(os.getloadavg()[0], 1)}


def _f(v, digits=4):
    return "-" if v is None else f"{v:.{digits}f}"


def row_line(row: dict) -> str:
    return (f"{row['system']} {row.get('flags') or ''} {row['steps']} steps: mIoU {_f(row['mean_iou'])} OA "
            f"{_f(row['overall_accuracy'])} | "
            + " ".join(f"{c} {_f(v, 3)}" for c, v in row["iou"].items())
            + f" | {row['images_per_s']:.2f} img/s, train {row['train_wall']:.0f} s "
            f"(first step/loop {row['first_loop']:.1f} s), scoring {row['eval_wall']:.0f} s")


def markdown_table(rows: dict, class_names: list) -> str:
    head = (["system", "flags", "used", "precision", "steps", "seed", "mIoU", "OA"]
            + [f"IoU {c}" for c in class_names]
            + ["train img/s", "train wall", "s/step", "BN recompute", "scoring", "load",
               "finished"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(rows, key=lambda k: (k[1], k[2], k[0] != "ours", k[3])):
        r = rows[key]
        cells = ([r["system"], _flags_cell(r), r.get("config") or "-", r["precision"], str(r["steps"]), str(r["seed"]),
                  _f(r["mean_iou"]), _f(r["overall_accuracy"])]
                 + [_f(r["iou"].get(c), 3) for c in class_names]
                 + [f"{r['images_per_s']:.2f}", f"{r['train_wall']:.0f} s",
                    f"{r['batch'] / r['images_per_s']:.2f}", bn_cell(r),
                    f"{r['eval_wall']:.0f} s",
                    str(r["load"]),
                    r["finished"]])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flags_cell(row: dict) -> str:
    return f"`{row['flags']}`" if row.get("flags") else "(defaults)"


def bn_cell(row: dict) -> str:
    """The batch-norm recompute before the row's evaluation, as a share of one
    epoch's training (the default --eval_every evaluates once per epoch)."""
    bn = row.get("bn_recompute")
    if not bn:
        return "-"
    text = (f"{bn['batches']} b, {bn['seconds']:.1f} s = {100 * bn['epoch_share']:.1f} % "
            f"of {bn['steps_per_epoch']} steps")
    if bn.get("later_seconds"):  # traced, and its batches kept in memory, by the first
        later = bn["later_seconds"]
        text += (f"; later {len(later)}: mean {sum(later) / len(later):.1f} s = "
                 f"{100 * bn['later_epoch_share']:.1f} %")
    return text


def sweep_table(rows: dict, class_names: list) -> str:
    """Ours' rows at each step count with at least one flagged row, best mIoU first;
    "used" is what tools.train ran with (config.json), so rows of defaults measured
    before a change of the defaults say which defaults they had."""
    head = (["flags", "used", "steps", "seed", "mIoU", "OA"] + [f"IoU {c}" for c in class_names]
            + ["train wall", "s/step", "BN recompute", "load", "finished"])
    lengths = sorted({k[1] for k in rows if k[0] == "ours" and k[3]})
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for steps in lengths:
        keys = sorted((k for k in rows if k[0] == "ours" and k[1] == steps),
                      key=lambda k: (-(rows[k]["mean_iou"] or 0), k[2], k[3]))
        for key in keys:
            r = rows[key]
            lines.append("| " + " | ".join(
                [_flags_cell(r), r.get("config") or "?", str(steps), str(r["seed"]),
                 _f(r["mean_iou"]), _f(r["overall_accuracy"])]
                + [_f(r["iou"].get(c), 3) for c in class_names]
                + [f"{r['train_wall']:.0f} s", f"{r['batch'] / r['images_per_s']:.2f}",
                   bn_cell(r), str(r["load"]), r["finished"]]) + " |")
    return "\n".join(lines)


def curves(rows: dict) -> dict:
    """The learning curves: {(system, precision, used values or "", seed): [(steps,
    mIoU), ...]}. Ours: one curve per set of values tools.train used (config.json)
    that ran without extra flags at some length, with every row that used the same
    values (a sweep row whose flags equal today's defaults belongs to them);
    defaults measured before a change of the defaults keep their own curve."""
    out = {}
    defaults = {(k[0], k[2], rows[k].get("config") or "") for k in rows if not k[3]}
    for key, row in rows.items():
        group = (key[0], key[2], row.get("config") or "")
        if group in defaults and row["mean_iou"] is not None:
            label = (key[0], row["precision"], group[2], key[2])
            # A length measured with and without flags: the run without flags.
            points = out.setdefault(label, {})
            if key[1] not in points or not key[3]:
                points[key[1]] = row["mean_iou"]
    return {label: sorted(points.items()) for label, points in sorted(out.items())}


def learning_curve(path: Path, rows: dict) -> None:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    import matplotlib.ticker  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = curves(rows)
    for (system, precision, used, seed), pts in lines.items():
        ax.plot(*zip(*pts), "o-" if system == "ours" else "s--",
                label=f"{system} ({precision}{', ' + used if used else ''}, seed {seed})")
    ticks = sorted({p[0] for pts in lines.values() for p in pts})
    ax.set(xscale="log", xlabel="training steps (batch 8, 256x256)", ylabel="held-out mIoU",
           title="dubai-aerial, whole held-out images")
    ax.set_xticks(ticks)  # the measured lengths, not powers of 10
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.grid(True, which="both", alpha=.3)
    # Below the axes: the labels carry the values used and outgrow the plot.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def sample_figure(path: Path, figure, predictions: dict, info: dict, steps: int) -> None:
    """image | ground truth | ours | keras, with each prediction's image mIoU."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    from matplotlib.patches import Patch  # pylint: disable=import-outside-toplevel
    from core import metrics  # pylint: disable=import-outside-toplevel

    name, image, label = figure
    names, palette = list(info["class_names"]), info["palette"]
    panels = [("image", np.clip(image[..., :3], 0, 255).astype(np.uint8)),
              ("ground truth (black: ignored)", labels_lib.index_to_rgb(label, palette))]
    for system in ("ours", "keras"):
        if system not in predictions:
            panels.append((f"{system}: not run", None))
            continue
        cm = metrics.ConfusionMatrix(len(names))
        cm.update(label, predictions[system])
        panels.append((f"{system}, {steps} steps: mIoU {cm.to_dict(names)['mean_iou']:.3f}",
                       labels_lib.index_to_rgb(predictions[system], palette)))
    fig, axes = plt.subplots(1, 4, figsize=(18, 5.2))
    for ax, (title, picture) in zip(axes, panels):
        if picture is not None:
            ax.imshow(picture)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.legend(handles=[Patch(color=np.array(c) / 255, label=n) for n, c in zip(names, palette)],
               loc="lower center", ncol=len(names))
    fig.suptitle(f"{name} (held out)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write(out: Path, rows: dict, class_names: list, machine: str, args, names: dict) -> None:
    """Writes results.json/.md and the curve from `rows` plus the rows another
    invocation (say --systems=keras beside --systems=ours) wrote meanwhile."""
    out.mkdir(parents=True, exist_ok=True)
    rows.update({k: v for k, v in load_rows(out).items() if k not in rows})
    (out / "results.json").write_text(json.dumps({"rows": list(rows.values())}, indent=1),
                                      encoding="utf-8")
    learning_curve(out / "learning_curve.png", rows)
    commands = sorted({r["command"] for r in rows.values() if r.get("command")})
    samples = sorted(p.name for p in out.glob("sample_steps*.png"))
    text = [
        "# Held-out quality on real imagery (dubai-aerial)",
        "",
        "Written by `python -m benchmarks.bench_quality` (its docstring says what each "
        "system runs). Held-out areas: " + ", ".join(args.val_areas)
        + f" ({len(names['val'])} whole images); training areas: "
        + ", ".join(sorted({n.split('__')[0] for n in names["train"]}))
        + f" ({len(names['train'])} images). Patches 256x256, batch 8.",
        "",
        markdown_table(rows, class_names),
        "",
        "mIoU, OA, IoU: whole held-out images, sliding windows 512 with overlap 0.25, "
        "the same `core.metrics.ConfusionMatrix` for both. train img/s: steady state "
        "(first loop/batch left out); train wall: ours = the whole `tools.train` process "
        "(start-up, tracing, one validation pass on held-out patches at the end, "
        "checkpoints), keras = build + fit. "
        "scoring: ours = the `tools.evaluate` process, keras = in process. load: 1-minute "
        "load average when the row finished. BN recompute (ours): the batch-norm "
        "statistics re-estimated before the run's one evaluation, batches and seconds "
        "as tools.train logged them (the first recompute of a process: it includes "
        "tracing the forward pass and filling the shuffle buffer), and that time as a "
        "share of training one epoch at the row's s/step: the cost per epoch of the "
        "default --eval_every=0 (one evaluation per epoch).",
        "",
        f"Machine (last invocation): {machine}. The 2 cores are shared with other agents' "
        "jobs: times vary with their load, so compare within a row's time, not across runs.",
        "",
        "Commands (ours):",
        "",
        *[f"    {c}" for c in commands],
        "",
        "![learning curve](learning_curve.png)",
        "",
        *[f"![{s}]({s})" for s in samples],
        "",
    ]
    (out / "results.md").write_text("\n".join(text), encoding="utf-8")
    if any(k[3] for k in rows):
        (out / "sweep.md").write_text("\n".join([
            "# Sweep of tools.train's defaults on real imagery (dubai-aerial)",
            "",
            "Written by `python -m benchmarks.bench_quality --systems=ours --train_flags=...` "
            "(see its docstring): ours with extra tools.train flags, everything else as in "
            "results.md (patches 256x256, batch 8, seed as listed, held-out areas "
            + ", ".join(args.val_areas) + ", whole images). Best mIoU first at each "
            "length. flags: the extra flags; used: what tools.train ran with (its "
            "config.json: optimizer, peak lr, weight decay, one-cycle warm-up share, loss, and "
            "the augmentation knobs that are on, for rows written since they are listed). "
            "One seed per row: differences of a few hundredths are within the run-to-run "
            "spread (data order is not fixed without --deterministic).",
            "",
            sweep_table(rows, class_names),
            "",
        ]), encoding="utf-8")
