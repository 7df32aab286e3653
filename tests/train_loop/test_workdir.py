"""Workdir resolution, config checks, disk checks and checkpoint fallback."""
import datetime
import os
import tempfile

import tensorflow as tf

from train_loop import workdir as workdir_lib


class ResolveTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(dir=self.get_temp_dir())

    def test_new_then_resume_newest_then_explicit(self):
        now = datetime.datetime(2026, 11, 26, 5, 7)
        path, existing = workdir_lib.resolve_workdir(self.root, "unet_x", now=now)
        self.assertEqual(path, os.path.join(self.root, "unet_x-20261126-05h07mn"))
        self.assertFalse(existing)
        workdir_lib.write_config(path, {"model": {"filters": 4}, "data": {"bands": ["R"]}})
        later = os.path.join(self.root, "unet_x-20261126-06h00mn")
        workdir_lib.write_config(later, {"model": {"filters": 4}, "data": {"bands": ["R"]}})
        os.makedirs(os.path.join(self.root, "unet_x-20261127-00h00mn"))  # no config: not a run
        self.assertEqual(workdir_lib.resolve_workdir(self.root, "unet_x", now=now), (later, True))
        # Another experiment whose name starts the same is not mixed in.
        self.assertFalse(workdir_lib.resolve_workdir(self.root, "unet", now=now)[1])
        self.assertEqual(workdir_lib.resolve_workdir(self.root, "unet_x", explicit=path),
                         (path, True))

    def test_resume_with_another_model_is_refused(self):
        path = os.path.join(self.root, "run")
        workdir_lib.write_config(path, {"model": {"filters": 4}, "data": {"bands": ["R"]},
                                        "train": {"steps": 1}})
        # The training length may change (continue a run), and is reported ...
        self.assertEqual(
            workdir_lib.write_config(path, {"model": {"filters": 4}, "data": {"bands": ["R"]},
                                            "train": {"steps": 9}}),
            ["train.steps: 1 -> 9"])
        # ... the model may not.
        with self.assertRaisesRegex(workdir_lib.WorkdirError, r"different model config"):
            workdir_lib.write_config(path, {"model": {"filters": 8}, "data": {"bands": ["R"]}})
        self.assertEqual(workdir_lib.read_config(path)["model"]["filters"], 4)

    def test_changed_training_settings_are_listed_on_resume(self):
        path = os.path.join(self.root, "run")
        first = {"model": {"filters": 4}, "data": {"bands": ["R"]},
                 "train": {"loss": "ce", "optim": {"max_lr": 0.15, "nesterov": False}},
                 "pipeline": {"patch_size": 256, "augment": {"hue": 0.0}}}
        self.assertEqual(workdir_lib.write_config(path, first), [])  # a new run
        self.assertEqual(workdir_lib.write_config(path, first), [])  # the same command
        second = {"model": {"filters": 4}, "data": {"bands": ["R"]},
                  "train": {"loss": "ce", "optim": {"max_lr": 0.1, "nesterov": True,
                                                     "clip_norm": 1.0}},
                  "pipeline": {"patch_size": 256, "augment": {"hue": 0.02}}}
        self.assertEqual(workdir_lib.write_config(path, second),
                         ["train.optim.clip_norm: null -> 1.0",
                          "train.optim.max_lr: 0.15 -> 0.1",
                          "train.optim.nesterov: false -> true",
                          "pipeline.augment.hue: 0.0 -> 0.02"])
        # config.json now records what the run goes on with.
        self.assertEqual(workdir_lib.read_config(path)["train"]["optim"]["max_lr"], 0.1)

    def test_unwritable_workdir_is_one_clear_error(self):
        blocker = os.path.join(self.root, "a_file")
        with open(blocker, "w") as f:
            f.write("user data")
        with self.assertRaisesRegex(workdir_lib.WorkdirError,
                                    r"workdir .*a_file/run is not writable"):
            workdir_lib.check_writable(os.path.join(blocker, "run"), 1)
        with open(blocker) as f:
            self.assertEqual(f.read(), "user data")

    def test_full_disk_is_reported_before_training(self):
        path = os.path.join(self.root, "run")
        workdir_lib.check_writable(path, 1)  # plenty for one byte
        self.assertEqual(os.listdir(path), [])  # the probe leaves nothing behind
        with self.assertRaisesRegex(workdir_lib.WorkdirError, r"MiB free on its disk, but the run needs"):
            workdir_lib.check_writable(path, 2 ** 62)

    def test_estimate_counts_checkpoints_and_shuffle_buffer(self):
        need = workdir_lib.estimate_run_bytes(1000, keep_checkpoints=3, shuffle_buffer=10,
                                              patch_size=8, channels=2)
        state, data = 1000 * 8, 10 * 64 * 9
        self.assertEqual(need, 4 * (state + data) + state + 64 * 2 ** 20)


class RestoreLatestTest(tf.test.TestCase):

    def test_a_truncated_latest_falls_back_to_the_previous_with_a_warning(self):
        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        v = tf.Variable(tf.zeros([1000]))
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), directory, max_to_keep=3)
        v.assign(tf.fill([1000], 1.0))
        manager.save(checkpoint_number=2)
        v.assign(tf.fill([1000], 2.0))
        newest = manager.save(checkpoint_number=4)
        data = [f for f in os.listdir(directory) if f.startswith("ckpt-4.data")][0]
        with open(os.path.join(directory, data), "r+b") as f:
            f.truncate(100)  # a run killed while writing, a damaged disk

        v.assign(tf.zeros([1000]))
        lines = []
        reader = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), directory, max_to_keep=3)
        restored = workdir_lib.restore_latest(reader.checkpoint, reader, log=lines.append)
        self.assertEndsWith(restored, "ckpt-2")
        self.assertAllEqual(v.numpy(), tf.fill([1000], 1.0))
        self.assertLen(lines, 1)
        self.assertIn(f"checkpoint {newest} is unreadable", lines[0])
        self.assertIn("trying the previous one", lines[0])

    def test_nothing_readable_is_a_new_run(self):
        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)),
                                             directory, max_to_keep=1)
        self.assertIsNone(workdir_lib.restore_latest(manager.checkpoint, manager))


if __name__ == "__main__":
    tf.test.main()
