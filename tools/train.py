r"""Trains a U-Net on prepared tiles; rerunning the same command resumes.

  python -m tools.train --flagfile=demo.flags
  python -m tools.train --flagfile=potsdam.flags --precision=mixed_bfloat16

Data flags (--data_dir, --patch_size, --batch_size, augmentation, ...) are
defined in tools/data_flags.py and shared with tools.time_pipeline.
"""
import os

from absl import app, flags, logging

from tools import data_flags  # noqa: F401  (defines the data flags)
from tools import train_flags

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf  # after absl parsed flags: TF logging set-up first
    from core.data import labels, pipeline, prepare, synthetic
    from layers import UNet
    from train_loop import controller, workdir as workdir_lib
    from train_loop.config import experiment_name, to_dict

    # --- data: demo tiles and preparation when asked and missing ---
    if FLAGS.prepare_src and not os.path.exists(os.path.join(FLAGS.data_dir, "info.json")):
        if FLAGS.make_demo_data and not os.path.isdir(FLAGS.prepare_src):
            logging.info("making demo tiles in %s", FLAGS.prepare_src)
            synthetic.make_demo_dataset(FLAGS.prepare_src, dataset=FLAGS.prepare_dataset,
                                        tiles=FLAGS.demo_tiles, size=FLAGS.demo_size,
                                        seed=FLAGS.seed)
        logging.info("preparing %s into %s", FLAGS.prepare_src, FLAGS.data_dir)
        prepare.prepare(FLAGS.prepare_dataset, FLAGS.prepare_src, FLAGS.data_dir,
                        bands=FLAGS.bands, elevation=FLAGS.elevation or "none")
    pipe_cfg = data_flags.pipeline_config_from_flags(FLAGS)
    info = pipeline.dataset_info(pipe_cfg)  # bands, mean, std of the fed channels
    spec = labels.get_label_spec(info["dataset"]) if info["dataset"] in ("potsdam", "inria") else None
    class_names, palette = info["class_names"], info["palette"]

    # --- config and workdir ---
    steps_per_epoch = max(1, pipeline.num_patches(pipe_cfg, "train") // pipe_cfg.batch_size)
    config = train_flags.train_config_from_flags(FLAGS, steps_per_epoch, len(class_names))
    name = FLAGS.experiment_name or experiment_name(
        config, patch_size=pipe_cfg.patch_size, scale=pipe_cfg.scale,
        batch_size=pipe_cfg.batch_size)
    workdir, resuming = workdir_lib.resolve_workdir(FLAGS.workdir_root, name,
                                                    explicit=FLAGS.workdir)
    model_kwargs = dict(num_classes=len(class_names), in_channels=info["in_channels"],
                        **to_dict(config.model))
    workdir_lib.write_config(
        workdir, {"model": model_kwargs, "data": info, "train": to_dict(config),
                  "pipeline": to_dict(pipe_cfg), "experiment_name": name},
        flags_text=FLAGS.flags_into_string())
    logging.info("%s run in %s (%d steps, %d per epoch, precision %s)",
                 "resuming" if resuming else "new", workdir, config.loop.train_steps,
                 steps_per_epoch, config.model.policy)

    # --- model and strategy ---
    tf.random.set_seed(FLAGS.seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = train_flags.make_strategy(FLAGS.strategy)

    def model_fn():
        return UNet(**model_kwargs, mean=info["mean"], std=info["std"])

    # --- loop ---
    rgb = [info["bands"].index(b) for b in ("R", "G", "B") if b in info["bands"]]
    summary = controller.train(
        config, workdir=workdir, model_fn=model_fn,
        train_dataset_fn=lambda ctx: pipeline.train_dataset(pipe_cfg, ctx),
        eval_dataset_fn=lambda ctx: pipeline.eval_dataset(pipe_cfg, "val", ctx),
        class_names=class_names, palette=palette,
        rgb_channels=rgb if len(rgb) == 3 else (0, 0, 0),
        exclude_from_means=(5,) if spec is labels.POTSDAM else (),
        strategy=strategy, log=logging.info)
    logging.info("done: %s", summary)


if __name__ == "__main__":
    app.run(main)
