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
import subprocess
import tempfile

import numpy as np
import tensorflow as tf

from tests.tools.test_train import REPO, TINY_FLAGS, run, train_command

STEPS = 16
KILL_AT = 13


def write_flags(root: str, data_root: str) -> str:
    text = TINY_FLAGS.format(root=data_root).replace(
        f"--workdir_root={data_root}/runs", f"--workdir_root={root}/runs")
    text = text.replace("--train_steps=8", f"--train_steps={STEPS}").replace(
        "--steps_per_loop=2", "--steps_per_loop=1").replace(
        "--checkpoint_every=4", "--checkpoint_every=2").replace(
        "--eval_every=4", "--eval_every=5")
    path = os.path.join(root, "run.flags")
    with open(path, "w") as f:
        f.write(text)
    return path


def final_weights(root: str) -> dict:
    (run_dir,) = os.listdir(os.path.join(root, "runs"))
    path = tf.train.latest_checkpoint(os.path.join(root, "runs", run_dir, "checkpoints", "latest"))
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if name.startswith(("model/", "optimizer/", "step/"))}


class KillResumeTest(tf.test.TestCase):

    def test_sigkill_after_evaluations_then_resume_equals_uninterrupted(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_root = os.path.join(base, "data")
        straight, killed = os.path.join(base, "straight"), os.path.join(base, "killed")
        os.makedirs(straight)
        os.makedirs(killed)

        result = run(train_command(write_flags(straight, data_root)))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

        kill_at = KILL_AT
        flagfile = write_flags(killed, data_root)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.Popen(train_command(flagfile), cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if f"step {kill_at}/{STEPS} " in line:
                proc.send_signal(signal.SIGKILL)
                break
        self.assertEqual(proc.wait(timeout=120), -signal.SIGKILL,
                         f"kill at {kill_at} missed:\n" + "".join(lines[-20:]))
        proc.stdout.close()

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
