r"""Learning-rate range test (the talk's LR finder) on the training setup of a flag file.

  python -m tools.lr_find --flagfile=demo.flags --sweep_steps=100 \
      --sweep_min_lr=1e-6 --sweep_max_lr=1 [--output_dir=DIR]

Reads the same flags as tools.train (data, model, loss, optimizer with the
pretrained encoder's lr multiplier and frozen steps, precision), trains a
fresh model for --sweep_steps steps while the learning rate grows
exponentially from --sweep_min_lr to --sweep_max_lr (--min_lr and --max_lr
keep tools.train's meanings, the plateau floor and the peak, and are not
used here), stops when the smoothed loss diverges, prints the
suggested max lr and writes lr_find.csv, lr_find.png and TensorBoard scalars
to --output_dir (default WORKDIR_ROOT/lr_find-<experiment name>). No
checkpoint or training run is touched. tools.train's flag rules apply (e.g.
one of --epochs/--train_steps), so a training flag file works unchanged.
The sweep is `train_loop.lr_finder.sweep_config`, the one tools.train
--max_lr=auto runs before training, with the same --sweep_* flags.
"""
import dataclasses
import os

from absl import app, flags, logging

from tools import outputs, renamed_flags, sweep_flags
from tools import train_flags  # (data and training flags; --sweep_* from tools/sweep_flags.py)

flags.DEFINE_string("output_dir", None, "lr_find: folder for lr_find.csv/.png and "
                    "tensorboard/ (default WORKDIR_ROOT/lr_find-<experiment name>).")

FLAGS = flags.FLAGS


def _check_output(output_dir: str) -> None:
    """Before the sweep, whose results would otherwise be lost at the end."""
    try:
        outputs.check_output_dir(output_dir, "--output_dir",
                                 files=("lr_find.csv", "lr_find.png"))
    except outputs.OutputError as err:
        raise SystemExit(f"tools.lr_find: {err}") from None


def main(argv):
    del argv
    if FLAGS.output_dir:  # a folder given: checked before TensorFlow is imported
        _check_output(FLAGS.output_dir)
    import tensorflow as tf  # after absl parsed flags
    from core.data import pipeline
    from train_loop import build, lr_finder

    # --- data and config: as tools.train derives them (the demo store is made if missing) ---
    try:
        setup = train_flags.setup_from_flags(FLAGS)
    except (FileNotFoundError, ValueError, flags.ValidationError) as err:
        raise SystemExit(f"tools.lr_find: {err}") from None
    config, name = setup.config, setup.name
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir_root, f"lr_find-{name}")
    _check_output(output_dir)

    # --- model and sweep: tools.train's parts (train_loop.build), a fresh model ---
    tf.random.set_seed(FLAGS.seed)
    sweep = sweep_flags.sweep_config_from_flags(FLAGS)
    model = build.make_model(setup.run_config, config)
    logging.info("lr_find %s: %d steps, lr %g -> %g, precision %s", name, sweep.num_steps,
                 sweep.min_lr, sweep.max_lr, config.model.policy)
    # Uncached, as tools.train's --max_lr=auto sweeps: a cache reads the whole
    # split before the first of the sweep's few batches.
    batches = iter(pipeline.train_dataset(dataclasses.replace(setup.pipeline, cache="none")))
    try:
        result = lr_finder.sweep_config(config, model, batches, sweep, log=logging.info)
    except lr_finder.NonFiniteSweepError as err:
        raise SystemExit(f"tools.lr_find: {err}") from None

    # --- outputs ---
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, "lr_find.csv")
    png_path = os.path.join(output_dir, "lr_find.png")
    lr_finder.write_csv(result, csv_path)
    wrote_png = lr_finder.write_png(result, png_path, title=f"LR range test\n{name}")
    lr_finder.write_tensorboard(result, os.path.join(output_dir, "tensorboard"))
    stop = (f"stopped at step {len(result.lrs)} (loss diverged)" if result.stopped_early
            else f"{len(result.lrs)} steps")
    print(f"lr_find: {stop}; lowest smoothed loss {result.smoothed.min():.4f} "
          f"at lr {result.best_lr:.3g}")
    print(f"suggested max lr: {result.suggested_lr:.4g}  (--max_lr={result.suggested_lr:.2g})")
    print(f"wrote {csv_path}" + (f", {png_path}" if wrote_png else ""))


if __name__ == "__main__":
    app.run(main, flags_parser=renamed_flags.parser("lr_find"))
