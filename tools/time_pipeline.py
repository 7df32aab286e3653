r"""Times the training input pipeline alone (the talk's `timepipeline`).

  python -m tools.time_pipeline --flagfile=demo.flags --batches=200

Reads the same flag file as tools.train: flags of other binaries in it (model,
optimizer, ...) are accepted and ignored. Prints a progress bar, then batches/s
and images/s after a short warm-up (pipeline start-up and the first tiles'
reads are excluded; with --cache=memory the first epoch fills the cache).
"""
import time

from absl import app, flags

from tools import data_flags, renamed_flags

flags.DEFINE_integer("batches", 200, "Batches to time.")
flags.DEFINE_integer("warmup", 5, "Batches drawn before the clock starts.")
flags.DEFINE_enum("split", "train", ["train", "val"], "train: train_dataset (augmented, "
                  "infinite); val: eval_dataset, repeated.")

flags.register_validator("batches", lambda v: v >= 1, "--batches must be >= 1")
flags.register_validator("warmup", lambda v: v >= 0, "--warmup must be >= 0")

FLAGS = flags.FLAGS


def parse_flags(argv):
    """Parses the flags this binary knows; others (e.g. --filters from the
    trainer's flag file) are returned unparsed instead of failing. A bad
    value is absl's one line, not a traceback (app.run only catches those
    of its own parser)."""
    return renamed_flags.parse("time_pipeline", argv, known_only=True)


def main(argv):
    del argv  # unknown flags of other binaries end up here
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from core.data import pipeline  # pylint: disable=import-outside-toplevel
    from train_loop.progress import ProgressBar  # pylint: disable=import-outside-toplevel

    try:  # a missing store, bands it lacks: one line, as tools.train says it
        cfg = data_flags.pipeline_config_from_flags(FLAGS)
        if FLAGS.split == "train":
            ds = pipeline.train_dataset(cfg)
        else:
            ds = pipeline.eval_dataset(cfg, "val").repeat()
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"tools.time_pipeline: {err}") from None
    it = iter(ds)
    for _ in range(FLAGS.warmup):
        next(it)
    images = 0
    bar = ProgressBar(FLAGS.batches, unit="batch", enabled=True)  # shown in logs too
    start = time.perf_counter()
    for i in range(FLAGS.batches):
        batch = next(it)
        images += int(tf.shape(batch["label"])[0])
        if (i + 1) % max(1, FLAGS.batches // 50) == 0 or i + 1 == FLAGS.batches:
            bar.update(i + 1)
    seconds = time.perf_counter() - start
    bar.close()
    print(f"batch size: {cfg.batch_size}")
    print(f"{FLAGS.batches} batches: {seconds:.3f} s")
    print(f"{FLAGS.batches / seconds:.5f} batches/s")
    print(f"{images / seconds:.5f} images/s")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
