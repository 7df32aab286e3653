"""tools.train with --optimizer=adamw on tiny demo tiles: a run stopped by
SIGTERM after its first inner loop and resumed by the same command ends with
the same weights and AdamW state (moments, update count, beta_1) as a run
that was never stopped. Reuses test_train's flags and helpers."""
import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tests.tools.test_resume import final_weights
from tests.tools.test_train import REPO, TINY_FLAGS, run, train_command

STEPS = 6


def write_flags(root: str, data_root: str) -> str:
    text = TINY_FLAGS.format(root=data_root).replace(
        f"--workdir_root={data_root}/runs", f"--workdir_root={root}/runs")
    text = text.replace("--max_lr=0.05", "--max_lr=0.01\n--optimizer=adamw").replace(
        "--train_steps=8", f"--train_steps={STEPS}").replace(
        "--eval_every=4", f"--eval_every={STEPS}").replace(
        "--checkpoint_every=4", "--checkpoint_every=2")
    path = os.path.join(root, "run.flags")
    with open(path, "w") as f:
        f.write(text)
    return path


class TrainAdamWTest(tf.test.TestCase):

    def test_sigterm_then_resume_equals_uninterrupted(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_root = os.path.join(base, "data")
        straight, stopped = os.path.join(base, "straight"), os.path.join(base, "stopped")
        os.makedirs(straight)
        os.makedirs(stopped)

        result = run(train_command(write_flags(straight, data_root)))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        (run_dir,) = os.listdir(os.path.join(straight, "runs"))
        self.assertStartsWith(run_dir, "unet_input32_skip3_residual_serialCenter_adamw_ce_"
                                       "jaccard_bs4_onecycle-")
        with open(os.path.join(straight, "runs", run_dir, "config.json")) as f:
            optim_cfg = json.load(f)["train"]["optim"]
        self.assertEqual((optim_cfg["optimizer"], optim_cfg["weight_decay"]), ("adamw", 0.01))

        flagfile = write_flags(stopped, data_root)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.Popen(train_command(flagfile), cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "training from step 0" in line:
                proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=120), 0, "".join(lines[-30:]))
        proc.stdout.close()
        self.assertIn("signal 15: saved", "".join(lines))

        resumed = run(train_command(flagfile))
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn("training from step 2 to 6", resumed.stderr)

        expected, got = final_weights(straight), final_weights(stopped)
        self.assertEqual(sorted(expected), sorted(got))
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        self.assertEqual(int(got["optimizer/updates/.ATTRIBUTES/VARIABLE_VALUE"]), STEPS)
        # one_cycle's momentum at the last step, assigned to beta_1 (torch's OneCycleLR).
        self.assertBetween(float(got["optimizer/beta_1/.ATTRIBUTES/VARIABLE_VALUE"]), 0.94, 0.95)
        second_moments = [v for k, v in got.items() if k.startswith("optimizer/v/")]
        self.assertNotEmpty(second_moments)
        self.assertGreater(max(float(np.max(v)) for v in second_moments), 0.0)

    def test_flags_resolve_adamw_and_refuse_nesterov(self):
        parse = ("import sys\nfrom absl import flags\nfrom tools import train_flags\n"
                 "flags.FLAGS(['t', '--train_steps=1'] + sys.argv[1:])\n"
                 "o = train_flags.train_config_from_flags(flags.FLAGS, 1, 6).optim\n"
                 "print(o.optimizer, o.weight_decay, o.momentum, o.adam_beta_2, o.adam_epsilon)")
        result = subprocess.run([sys.executable, "-c", parse, "--optimizer=adamw",
                                 "--adam_beta_2=0.99"], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stdout.split(), ["adamw", "0.01", "0.9", "0.99", "1e-08"])
        result = subprocess.run([sys.executable, "-c", parse, "--optimizer=adamw", "--nesterov"],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--nesterov is an sgd option", result.stderr)


if __name__ == "__main__":
    tf.test.main()
