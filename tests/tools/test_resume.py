"""Exact resume: a deterministic run killed with SIGKILL mid-run and restarted
with the same command ends with the same weights as a run that was never
interrupted.

The kill step is fixed, not random, so that a failure is reproducible: step
13 comes after two evaluations (steps 5 and 10, each preceded by a batch-norm
recompute) and between two checkpoints (12 and 14), so the resumed run
replays a step, restores the data position, and must draw the same recompute
batches at its next evaluation as the uninterrupted run did at its third.

The killed run chooses its rate with --max_lr=auto (the LR range test before
training) and the uninterrupted one is given the value it recorded: equal
weights also say that the sweep leaves the run's start untouched, that the
logged suggestion is what config.json records and trains with, and that the
resumed run keeps it instead of sweeping again."""
import json
import os
import re
import signal
import tempfile

import numpy as np
import tensorflow as tf

from tests.helpers import final_weights, run, run_and_signal, train_command, write_flags

STEPS = 16
KILL_AT = 13
AUTO = {"max_lr": "auto", "sweep_steps": 6, "sweep_min_lr": 1e-3, "sweep_max_lr": 0.1}


class KillResumeTest(tf.test.TestCase):

    def test_sigkill_after_evaluations_then_resume_equals_uninterrupted(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_root = os.path.join(base, "data")
        straight, killed = os.path.join(base, "straight"), os.path.join(base, "killed")
        os.makedirs(straight)
        os.makedirs(killed)

        resume_flags = {"train_steps": STEPS, "steps_per_loop": 1, "checkpoint_every": 2,
                        "eval_every": 5}
        kill_at = KILL_AT
        flagfile = write_flags(killed, data_root, **resume_flags, **AUTO)
        code, lines = run_and_signal(train_command(flagfile), f"step {kill_at}/{STEPS} ",
                                     signal.SIGKILL)
        self.assertEqual(code, -signal.SIGKILL,
                         f"kill at {kill_at} missed:\n" + "".join(lines[-20:]))
        suggested = re.findall(r"max_lr=auto: LR range test over 6 steps from 0\.001 to 0\.1 "
                               r"suggested (\S+)\n", "".join(lines))
        self.assertLen(suggested, 1, "".join(lines[-30:]))
        (run_dir,) = os.listdir(os.path.join(killed, "runs"))
        with open(os.path.join(killed, "runs", run_dir, "config.json"), encoding="utf-8") as f:
            optim = json.load(f)["train"]["optim"]
        self.assertEqual(optim["max_lr"], float(suggested[0]))
        self.assertEqual(optim["max_lr_auto"], {"min_lr": 1e-3, "max_lr": 0.1, "num_steps": 6,
                                                "smoothing": 0.98, "divergence": 4.0,
                                                "suggestion": "steepest"})

        result = run(train_command(write_flags(straight, data_root, **resume_flags,
                                               max_lr=suggested[0])))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

        resumed = run(train_command(flagfile))
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn("resumed from", resumed.stderr, f"killed at step {kill_at}")
        self.assertIn(f"max_lr {suggested[0]} was chosen by its LR range test; keeping it",
                      resumed.stderr)
        self.assertNotIn("LR range test over", resumed.stderr)
        # The same command resumes with the same settings: nothing to report.
        self.assertNotIn("differ from the ones it started with", resumed.stderr)

        expected, got = final_weights(straight), final_weights(killed)
        self.assertEqual(sorted(expected), sorted(got))
        self.assertEqual(int(got["step/.ATTRIBUTES/VARIABLE_VALUE"]), STEPS)
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{name} (killed at {kill_at})")


if __name__ == "__main__":
    tf.test.main()
