r"""Trains a U-Net on prepared tiles; rerunning the same command resumes.

  python -m tools.train --flagfile=demo.flags
  python -m tools.train --flagfile=potsdam.flags --precision=mixed_bfloat16

Flags: data (--data_dir, --bands, --elevation, --patch_size, --batch_size,
--cache, --aug_*) in tools/data_flags.py, shared with tools.time_pipeline;
model, loss, optimizer, schedule, precision and loop flags in
tools/train_flags.py, shared with tools.lr_find, as are the --sweep_* flags
of --max_lr=auto (tools/sweep_flags.py). `--helpfull` lists them.
"""
import dataclasses

from absl import app, flags, logging

from tools import train_flags

FLAGS = flags.FLAGS
BN_SEED_OFFSET = 1000  # the batch-norm recompute stream: --seed + this


@flags.multi_flags_validator(
    ["max_lr", "strategy"],
    message="--max_lr=auto runs the LR range test in one process before training: with "
            "--strategy=multi_worker each worker would sweep on its own (and could choose "
            "another rate), with tpu it would run on the host's CPU; run tools.lr_find and "
            "pass its suggestion as --max_lr")
def _auto_lr_is_local(values):
    return values["max_lr"] != train_flags.AUTO or values["strategy"] not in (
        "multi_worker", "tpu")


def main(argv):
    del argv
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from core.data import pipeline  # pylint: disable=import-outside-toplevel
    from layers import count_parameters  # pylint: disable=import-outside-toplevel
    from train_loop import build, controller, distribute  # pylint: disable=import-outside-toplevel
    from train_loop import lr_finder  # pylint: disable=import-outside-toplevel
    from train_loop import workdir_lock  # pylint: disable=import-outside-toplevel
    from train_loop import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

    # --- strategy first: multi-worker collectives must be set up before any op ---
    tf.random.set_seed(FLAGS.seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = train_flags.make_strategy(FLAGS.strategy)

    # --- data and config: user errors end here with one message ---
    try:
        setup = train_flags.setup_from_flags(FLAGS)  # prepares the store on a first run
    except (FileNotFoundError, ValueError, flags.ValidationError) as err:
        raise app.UsageError(str(err)) from err
    pipe_cfg, info, config, run_config = (setup.pipeline, setup.info, setup.config,
                                          setup.run_config)

    # --- workdir: resume the newest run of this experiment, or start one ---
    workdir, existing = workdir_lib.resolve_workdir(FLAGS.workdir_root, setup.name,
                                                    explicit=FLAGS.workdir)
    if existing and workdir_lib.is_finished(workdir) and not FLAGS.workdir:
        logging.info("%s has finished (see its DONE file); to train again pass "
                     "--experiment_name, or --workdir with a larger --train_steps to "
                     "continue it", workdir)
        return
    # One training per workdir (released at exit, also on SIGTERM): the chief
    # locks the workdir, other workers of a multi-worker run their own folder.
    try:
        workdir_lock.lock_workdir(workdir if distribute.is_chief(strategy)
                                  else distribute.worker_dir(workdir, strategy),
                                  log=logging.warning)
    except workdir_lock.WorkdirLockError as err:
        raise SystemExit(f"tools.train: {err}") from None
    try:
        side = 2 ** config.model.depth  # variables do not depend on the image size
        probe = build.make_model(run_config, config, for_training=False)
        probe(tf.zeros([1, side, side, info["in_channels"]]), training=False)
        workdir_lib.check_writable(workdir, workdir_lib.estimate_run_bytes(
            sum(count_parameters(probe)), config.loop.keep_checkpoints,
            pipe_cfg.shuffle_buffer, pipe_cfg.patch_size, info["in_channels"]))
        # --max_lr=auto: the LR range test on a fresh model seeded as the one
        # below (default strategy, uncached pipeline: a cache reads the whole
        # split before its first batch), or the value a resumed run recorded.
        tf.random.set_seed(FLAGS.seed)
        config = lr_finder.auto_max_lr(
            config, model_fn=lambda cfg=config, rc=run_config: build.make_model(rc, cfg),
            batches_fn=lambda: iter(pipeline.train_dataset(
                dataclasses.replace(pipe_cfg, cache="none"))),
            recorded=(workdir_lib.read_config(workdir).get("train") or {}).get("optim")
            if existing else None, log=logging.info)
        run_config = build.run_config(config, info, pipe_cfg, setup.name)
        changes = workdir_lib.write_config(workdir, run_config,
                                           flags_text=FLAGS.flags_into_string())
    except (workdir_lib.WorkdirError, lr_finder.NonFiniteSweepError) as err:
        raise app.UsageError(str(err)) from err
    logging.info("%s run in %s (%d steps, %d per epoch, precision %s)",
                 "resuming" if existing else "new", workdir, config.loop.train_steps,
                 setup.steps_per_epoch, config.model.policy)
    if changes:  # the run goes on with them; its config.json now records them
        logging.warning("resuming %s with settings that differ from the ones it started "
                        "with:\n  %s", workdir, "\n  ".join(changes))

    # --- model (re-seeded: the initial weights do not depend on the probe above) ---
    tf.random.set_seed(FLAGS.seed)

    def model_fn():
        # Synchronised batch norm when there are several replicas, so the
        # statistics are those of the global batch.
        return build.make_model(run_config, config,
                                cross_replica_bn=strategy.num_replicas_in_sync > 1)

    # Batch-norm statistics are re-estimated on a second stream of training
    # batches (another seed, read uncached: a file cache takes one writer).
    bn_cfg = dataclasses.replace(pipe_cfg, seed=pipe_cfg.seed + BN_SEED_OFFSET, cache="none")

    # --- loop ---
    rgb = [info["bands"].index(b) for b in ("R", "G", "B") if b in info["bands"]]
    summary = controller.train(
        config, workdir=workdir, model_fn=model_fn,
        train_dataset_fn=lambda ctx: pipeline.train_dataset(pipe_cfg, ctx),
        eval_dataset_fn=lambda ctx: pipeline.eval_dataset(pipe_cfg, "val", ctx),
        class_names=info["class_names"], palette=info["palette"],
        rgb_channels=rgb if len(rgb) == 3 else (0, 0, 0),
        # The data set's classes left out of the "without" means (Potsdam: clutter).
        exclude_from_means=tuple(info["class_names"].index(c)
                                 for c in info.get("excluded_from_mean", ())),
        strategy=strategy, checkpoint_data=pipe_cfg.cache == "none",
        bn_dataset_fn=lambda ctx: pipeline.train_dataset(bn_cfg, ctx), log=logging.info)
    logging.info("done: %s", summary)


if __name__ == "__main__":
    app.run(main)
