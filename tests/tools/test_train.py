"""tools.train end to end on tiny demo tiles: a run stopped by SIGTERM saves
and exits cleanly, the same command resumes it to the end, and a third run
of the same command reports it finished instead of training again."""
import json
import os
import signal
import tempfile

import tensorflow as tf

from tests.helpers import run, run_and_signal, train_command, write_flags


class TrainBinaryTest(tf.test.TestCase):

    def test_sigterm_then_resume_then_finished(self):
        root = tempfile.mkdtemp(dir=self.get_temp_dir())
        flagfile = write_flags(root)

        # 1. Start, and send SIGTERM once the loop is about to start: the run
        # finishes its first inner loop, saves `latest` and exits with 0.
        code, lines = run_and_signal(train_command(flagfile), "training from step 0",
                                     signal.SIGTERM, timeout=240)
        self.assertEqual(code, 0, "".join(lines[-30:]))
        log = "".join(lines)
        self.assertIn("signal 15: saved", log)
        runs = os.listdir(os.path.join(root, "runs"))
        self.assertLen(runs, 1)
        workdir = os.path.join(root, "runs", runs[0])
        self.assertStartsWith(runs[0], "unet_input32_skip3_residual_serialCenter_sgd_ce_jaccard_bs4_onecycle-")
        latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "latest"))
        self.assertEndsWith(latest, "ckpt-2")
        self.assertFalse(os.path.exists(os.path.join(workdir, "DONE")))
        # The workdir lock went with the process (its SIGTERM handler returned).
        self.assertFalse(os.path.exists(os.path.join(workdir, "LOCK")))

        # 2. The same command resumes at step 2 and runs to 8.
        second = run(train_command(flagfile))
        self.assertEqual(second.returncode, 0, second.stderr[-3000:])
        self.assertIn("resumed from", second.stderr)
        self.assertIn("training from step 2 to 8", second.stderr)
        self.assertNotIn("training from step 0", second.stderr)
        reader = tf.train.load_checkpoint(
            tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "latest")))
        self.assertEqual(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"), 8)
        best = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "best"))
        self.assertIsNotNone(best)
        with open(os.path.join(workdir, "DONE")) as f:
            done = json.load(f)
        self.assertEqual(done["step"], 8)
        self.assertBetween(done["best_mean_iou"], 0.0, 1.0)
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
        self.assertEqual(config["model"]["in_channels"], 5)
        self.assertEqual(config["data"]["bands"], ["IR", "R", "G", "B", "nDSM"])
        self.assertIn("--filters=4", open(os.path.join(workdir, "flags.txt")).read())
        for split in ("train", "validation"):
            events = os.listdir(os.path.join(workdir, "tensorboard", split))
            self.assertTrue(any(e.startswith("events.out.tfevents") for e in events))

        # 3. Once more: nothing to do, nothing new written.
        third = run(train_command(flagfile))
        self.assertEqual(third.returncode, 0, third.stderr[-3000:])
        self.assertIn("has finished", third.stderr)
        self.assertLen(os.listdir(os.path.join(root, "runs")), 1)

    def test_bad_flag_combination_is_one_clear_error(self):
        result = run(train_command("/dev/null") + ["--data_dir=x", "--patch_size=100",
                                                    "--depth=4", "--train_steps=1"])
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--patch_size must be a multiple of 2**--depth", result.stderr)


if __name__ == "__main__":
    tf.test.main()
