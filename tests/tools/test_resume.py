"""Exact resume: a deterministic run killed with SIGKILL mid-run and restarted
with the same command ends with the same weights as a run that was never
interrupted.

The kill step is fixed, not random, so that a failure is reproducible: step
13 comes after two evaluations (steps 5 and 10, each preceded by a batch-norm
recompute) and between two checkpoints (12 and 14), so the resumed run
replays a step, restores the data position, and must draw the same recompute
batches at its next evaluation as the uninterrupted run did at its third."""
import os
import signal
import tempfile

import numpy as np
import tensorflow as tf

from tests.helpers import final_weights, run, run_and_signal, train_command, write_flags

STEPS = 16
KILL_AT = 13


class KillResumeTest(tf.test.TestCase):

    def test_sigkill_after_evaluations_then_resume_equals_uninterrupted(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_root = os.path.join(base, "data")
        straight, killed = os.path.join(base, "straight"), os.path.join(base, "killed")
        os.makedirs(straight)
        os.makedirs(killed)

        resume_flags = {"train_steps": STEPS, "steps_per_loop": 1, "checkpoint_every": 2,
                        "eval_every": 5}
        result = run(train_command(write_flags(straight, data_root, **resume_flags)))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

        kill_at = KILL_AT
        flagfile = write_flags(killed, data_root, **resume_flags)
        code, lines = run_and_signal(train_command(flagfile), f"step {kill_at}/{STEPS} ",
                                     signal.SIGKILL)
        self.assertEqual(code, -signal.SIGKILL,
                         f"kill at {kill_at} missed:\n" + "".join(lines[-20:]))

        resumed = run(train_command(flagfile))
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn("resumed from", resumed.stderr, f"killed at step {kill_at}")

        expected, got = final_weights(straight), final_weights(killed)
        self.assertEqual(sorted(expected), sorted(got))
        self.assertEqual(int(got["step/.ATTRIBUTES/VARIABLE_VALUE"]), STEPS)
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{name} (killed at {kill_at})")


if __name__ == "__main__":
    tf.test.main()
