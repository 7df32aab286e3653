r"""Learning-rate range test (the talk's LR finder) on the training setup of a flag file.

  python -m tools.lr_find --flagfile=demo.flags --num_steps=100 \
      --min_lr=1e-6 --max_lr=1 [--output_dir=DIR]

Reads the same flags as tools.train (data, model, loss, optimizer, precision),
trains a fresh model for --num_steps steps while the learning rate grows
exponentially from --min_lr to --max_lr (here the ends of the sweep, not the
training meanings), stops when the smoothed loss diverges, prints the
suggested max lr and writes lr_find.csv, lr_find.png and TensorBoard scalars
to --output_dir (default WORKDIR_ROOT/lr_find-<experiment name>). No
checkpoint or training run is touched. tools.train's flag rules apply (e.g.
one of --epochs/--train_steps), so a training flag file works unchanged.
"""
import os

from absl import app, flags, logging

from tools import data_flags  # noqa: F401  (defines the data flags)
from tools import prepare_flags, train_flags

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


@flags.multi_flags_validator(["min_lr", "max_lr"],
                             message="lr_find sweeps from --min_lr to --max_lr: need "
                             "0 < --min_lr < --max_lr, e.g. --min_lr=1e-6 --max_lr=1")
def _sweep_range(values):
    return 0.0 < values["min_lr"] < values["max_lr"]


FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf  # after absl parsed flags
    from core import losses, optim, precision
    from core.data import pipeline
    from layers import UNet
    from train_loop import lr_finder
    from train_loop.config import experiment_name

    # --- data: the demo flag file's tiles are made and prepared if missing ---
    prepare_flags.prepare_if_needed(FLAGS)
    pipe_cfg = data_flags.pipeline_config_from_flags(FLAGS)
    info = pipeline.dataset_info(pipe_cfg)
    num_classes = len(info["class_names"])
    steps_per_epoch = max(1, pipeline.num_patches(pipe_cfg, "train") // pipe_cfg.batch_size)
    config = train_flags.train_config_from_flags(FLAGS, steps_per_epoch, num_classes)
    if FLAGS.max_lr / FLAGS.min_lr < 100:
        logging.warning("the sweep --min_lr=%g..--max_lr=%g spans under two decades; "
                        "a flag file's --max_lr is the training peak, pass the sweep's "
                        "ends after --flagfile", FLAGS.min_lr, FLAGS.max_lr)
    name = FLAGS.experiment_name or experiment_name(
        config, patch_size=pipe_cfg.patch_size, scale=pipe_cfg.scale,
        batch_size=pipe_cfg.batch_size)
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir_root, f"lr_find-{name}")

    # --- model, loss, optimizer: as tools.train builds them ---
    tf.random.set_seed(FLAGS.seed)
    policy = config.model.policy
    model = UNet(num_classes, in_channels=info["in_channels"], filters=config.model.filters,
                 depth=config.model.depth, residual=config.model.residual,
                 center=config.model.center, policy=policy,
                 mean=info["mean"], std=info["std"])
    loss_fn = losses.get_loss(config.loss, **config.loss_kwargs())
    o = config.optim
    optimizer = optim.make_optimizer(o.optimizer, FLAGS.min_lr, momentum=o.momentum,
                                     nesterov=o.nesterov, weight_decay=o.weight_decay,
                                     beta_2=o.adam_beta_2, epsilon=o.adam_epsilon)
    loss_scale = precision.DynamicLossScale.for_policy(policy)

    # --- sweep ---
    logging.info("lr_find %s: %d steps, lr %g -> %g, precision %s", name, FLAGS.num_steps,
                 FLAGS.min_lr, FLAGS.max_lr, policy)
    batches = iter(pipeline.train_dataset(pipe_cfg))
    result = lr_finder.find_lr(
        model, loss_fn, optimizer, batches, min_lr=FLAGS.min_lr, max_lr=FLAGS.max_lr,
        num_steps=FLAGS.num_steps, smoothing=FLAGS.smoothing,
        divergence=FLAGS.divergence if FLAGS.divergence > 1 else None,
        method=FLAGS.suggestion, loss_scale=loss_scale, clip_norm=o.clip_norm,
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
    app.run(main)
