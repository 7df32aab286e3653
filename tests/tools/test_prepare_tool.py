"""tools.prepare as a user runs it (a subprocess): output, exit codes, errors."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests.core.data.test_prepare import make_folder_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tools.prepare", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


class PrepareToolTest(tf.test.TestCase):

    def test_folder_dataset_and_errors(self):
        root = self.get_temp_dir()
        src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
        arrays = make_folder_dataset(src, [(20, 24), (18, 30), (25, 25)])
        proc = run("--dataset=folder", f"--src={src}", f"--dst={dst}", "--bands=IRRGB",
                   "--elevation=dsm", "--val_tiles=tile2")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        info = json.load(open(os.path.join(dst, "info.json")))
        self.assertEqual(info["bands"], ["IR", "R", "G", "B", "DSM"])
        self.assertEqual(info["splits"], {"train": ["tile0", "tile1"], "val": ["tile2"]})
        printed = json.loads(proc.stdout[:proc.stdout.rindex("}") + 1])
        self.assertEqual(printed["splits"], {"train": 2, "val": 1})
        self.assertAllClose(printed["mean"], info["mean"])
        ir = np.concatenate([arrays[t][0][..., 3].ravel() for t in ("tile0", "tile1")])
        self.assertAllClose(info["mean"][0], ir.mean(dtype=np.float64), rtol=1e-10)

        bad = run("--dataset=potsdam", f"--src={src}", f"--dst={dst}_p")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no Potsdam image 'top_potsdam_*_RGBIR.tif' found", bad.stderr)
        self.assertFalse(os.path.exists(os.path.join(f"{dst}_p", "info.json")))
        missing = run("--dataset=folder", f"--src={src}")
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("--dst", missing.stderr)


if __name__ == "__main__":
    tf.test.main()
