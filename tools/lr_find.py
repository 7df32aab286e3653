r"""Learning-rate range test (the talk's LR finder) on the training setup of a flag file.

  python -m tools.lr_find --flagfile=demo.flags --num_steps=100 \
      --sweep_min_lr=1e-6 --sweep_max_lr=1 [--output_dir=DIR]

Reads the same flags as tools.train (data, model, loss, optimizer, precision),
trains a fresh model for --num_steps steps while the learning rate grows
exponentially from --sweep_min_lr to --sweep_max_lr (--min_lr and --max_lr
keep tools.train's meanings, the plateau floor and the peak, and are not
used here), stops when the smoothed loss diverges, prints the
suggested max lr and writes lr_find.csv, lr_find.png and TensorBoard scalars
to --output_dir (default WORKDIR_ROOT/lr_find-<experiment name>). No
checkpoint or training run is touched. tools.train's flag rules apply (e.g.
one of --epochs/--train_steps), so a training flag file works unchanged.
"""
import os

from absl import app, flags, logging

from tools import outputs, renamed_flags, train_flags  # (train_flags: data and training flags)

flags.DEFINE_float("sweep_min_lr", 1e-6, "lr_find: learning rate of the sweep's first step.")
flags.DEFINE_float("sweep_max_lr", 1.0, "lr_find: learning rate of the sweep's last step.")
flags.DEFINE_integer("num_steps", 100, "lr_find: steps of the sweep (>= 2).")
flags.DEFINE_float("smoothing", 0.98, "lr_find: beta of the smoothed loss (EMA).")
flags.DEFINE_float("divergence", 4.0, "lr_find: stop when the smoothed loss exceeds this "
                   "times its best (<= 1: never stop early).")
flags.DEFINE_enum("suggestion", "steepest", ["steepest", "min_div10"],
                  "lr_find: steepest descent of the smoothed loss, or best lr / 10.")
flags.DEFINE_string("output_dir", None, "lr_find: folder for lr_find.csv/.png and "
                    "tensorboard/ (default WORKDIR_ROOT/lr_find-<experiment name>).")

flags.register_validator("num_steps", lambda v: v >= 2, "--num_steps must be >= 2")
flags.register_validator("smoothing", lambda v: 0.0 <= v < 1.0, "--smoothing must be in [0, 1)")


@flags.multi_flags_validator(["sweep_min_lr", "sweep_max_lr"],
                             message="need 0 < --sweep_min_lr < --sweep_max_lr, e.g. "
                             "--sweep_min_lr=1e-6 --sweep_max_lr=1")
def _sweep_range(values):
    return 0.0 < values["sweep_min_lr"] < values["sweep_max_lr"]


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
    from core import precision
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

    # --- model, loss, optimizer: tools.train's (train_loop.build), a fresh model ---
    tf.random.set_seed(FLAGS.seed)
    policy = config.model.policy
    model = build.make_model(setup.run_config, config)
    loss_fn = build.make_loss(config)
    optimizer = build.make_optimizer(config, learning_rate=FLAGS.sweep_min_lr)
    loss_scale = precision.DynamicLossScale.for_policy(policy)

    # --- sweep ---
    logging.info("lr_find %s: %d steps, lr %g -> %g, precision %s", name, FLAGS.num_steps,
                 FLAGS.sweep_min_lr, FLAGS.sweep_max_lr, policy)
    batches = iter(pipeline.train_dataset(setup.pipeline))
    result = lr_finder.find_lr(
        model, loss_fn, optimizer, batches, min_lr=FLAGS.sweep_min_lr,
        max_lr=FLAGS.sweep_max_lr, num_steps=FLAGS.num_steps, smoothing=FLAGS.smoothing,
        divergence=FLAGS.divergence if FLAGS.divergence > 1 else None,
        method=FLAGS.suggestion, loss_scale=loss_scale, clip_norm=config.optim.clip_norm,
        jit_compile=config.loop.jit_compile, log=logging.info)

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
