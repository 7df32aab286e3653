"""tools.train end to end on tiny demo tiles, with --optimizer=adamw (SGD's
exact resume is test_resume's): a run stopped by SIGTERM saves and exits
cleanly, the same command resumes it to the end with the same weights and
AdamW state (moments, update count, beta_1) as a run that was never stopped,
and a third run of the same command reports it finished instead of training
again."""
import json
import os
import signal
import tempfile

import numpy as np
import tensorflow as tf

from tests.helpers import final_weights, run, run_and_signal, train_command, write_flags

ADAMW = {"optimizer": "adamw", "max_lr": 0.01}


class TrainBinaryTest(tf.test.TestCase):

    def test_sigterm_then_resume_then_finished(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_root = os.path.join(base, "data")
        root, straight = os.path.join(base, "stopped"), os.path.join(base, "straight")
        os.makedirs(root)
        os.makedirs(straight)
        flagfile = write_flags(root, data_root, **ADAMW)

        # 0. The same flags, never stopped (it also makes the demo data).
        result = run(train_command(write_flags(straight, data_root, **ADAMW)))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

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
        self.assertStartsWith(runs[0], "unet_input32_skip3_residual_serialCenter_adamw_ce_jaccard_"
                                       "bs4_onecycle-")
        latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "latest"))
        self.assertEndsWith(latest, "ckpt-2")
        self.assertFalse(os.path.exists(os.path.join(workdir, "DONE")))
        # The workdir lock went with the process (its SIGTERM handler returned).
        self.assertFalse(os.path.exists(os.path.join(workdir, "LOCK")))

        # 2. The command resumes at step 2 and runs to 8; a setting changed on
        # the way (one that leaves the weights alone) is listed, old -> new.
        second = run(train_command(flagfile) + ["--keep_checkpoints=4"])
        self.assertEqual(second.returncode, 0, second.stderr[-3000:])
        self.assertIn("resumed from", second.stderr)
        self.assertRegex(second.stderr, r"resuming .* with settings that differ from the ones "
                                        r"it started with:\n  train\.loop\.keep_checkpoints: "
                                        r"3 -> 4\n")
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
        optim = config["train"]["optim"]
        self.assertEqual((optim["optimizer"], optim["weight_decay"]), ("adamw", 0.01))
        self.assertEqual(config["model"]["in_channels"], 5)
        self.assertEqual(config["data"]["bands"], ["IR", "R", "G", "B", "nDSM"])
        self.assertIn("--filters=4", open(os.path.join(workdir, "flags.txt")).read())
        for split in ("train", "validation"):
            events = os.listdir(os.path.join(workdir, "tensorboard", split))
            self.assertTrue(any(e.startswith("events.out.tfevents") for e in events))

        # The stopped and resumed run ends where the straight one did.
        expected, got = final_weights(straight), final_weights(root)
        self.assertEqual(sorted(expected), sorted(got))
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        self.assertEqual(int(got["optimizer/updates/.ATTRIBUTES/VARIABLE_VALUE"]), 8)
        # one_cycle's momentum at the last step, assigned to beta_1 (torch's OneCycleLR).
        self.assertBetween(float(got["optimizer/beta_1/.ATTRIBUTES/VARIABLE_VALUE"]), 0.94, 0.95)
        second_moments = [v for k, v in got.items() if k.startswith("optimizer/v/")]
        self.assertNotEmpty(second_moments)
        self.assertGreater(max(float(np.max(v)) for v in second_moments), 0.0)

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
