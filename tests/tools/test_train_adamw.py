"""tools.train with --optimizer=adamw on tiny demo tiles: a run stopped by
SIGTERM after its first inner loop and resumed by the same command ends with
the same weights and AdamW state (moments, update count, beta_1) as a run
that was never stopped. The tiny flag file of tests/helpers.py."""
import json
import os
import signal
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tests.helpers import final_weights, run, run_and_signal, train_command, write_flags

STEPS = 6


class TrainAdamWTest(tf.test.TestCase):

    def test_sigterm_then_resume_equals_uninterrupted(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_root = os.path.join(base, "data")
        straight, stopped = os.path.join(base, "straight"), os.path.join(base, "stopped")
        os.makedirs(straight)
        os.makedirs(stopped)

        adamw_flags = {"max_lr": 0.01, "optimizer": "adamw", "train_steps": STEPS,
                       "eval_every": STEPS, "checkpoint_every": 2}
        result = run(train_command(write_flags(straight, data_root, **adamw_flags)))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        (run_dir,) = os.listdir(os.path.join(straight, "runs"))
        self.assertStartsWith(run_dir, "unet_input32_skip3_residual_serialCenter_adamw_ce_"
                                       "jaccard_bs4_onecycle-")
        with open(os.path.join(straight, "runs", run_dir, "config.json")) as f:
            optim_cfg = json.load(f)["train"]["optim"]
        self.assertEqual((optim_cfg["optimizer"], optim_cfg["weight_decay"]), ("adamw", 0.01))

        flagfile = write_flags(stopped, data_root, **adamw_flags)
        code, lines = run_and_signal(train_command(flagfile), "training from step 0",
                                     signal.SIGTERM)
        self.assertEqual(code, 0, "".join(lines[-30:]))
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
        result = run([sys.executable, "-c", parse, "--optimizer=adamw", "--adam_beta_2=0.99"],
                     timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stdout.split(), ["adamw", "0.01", "0.9", "0.99", "1e-08"])
        result = run([sys.executable, "-c", parse, "--optimizer=adamw", "--nesterov"],
                     timeout=120)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--nesterov is an sgd option", result.stderr)


if __name__ == "__main__":
    tf.test.main()
