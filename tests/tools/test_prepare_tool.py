"""tools.prepare as a user runs it (a subprocess): output, exit codes, errors,
the flag names tools.train uses, and one flag file driving both."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests.core.data.test_prepare import make_folder_dataset, tree_state

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tools.prepare", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


class PrepareToolTest(tf.test.TestCase):

    def test_folder_dataset_with_a_class_file_and_errors(self):
        root = self.get_temp_dir()
        src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
        arrays = make_folder_dataset(src, [(20, 24), (18, 30), (25, 25)])
        classes = os.path.join(root, "classes.csv")
        with open(classes, "w", encoding="utf-8") as f:
            f.write("name,color\nroad,#ffffff\nroof,#0000ff\ngrass,#00ffff\n"
                    "tree,#00ff00\ncar,#ffff00\nother,#ff0000\n")
        # The same flags a flag file gives tools.train.
        flagfile = os.path.join(root, "mine.flags")
        with open(flagfile, "w", encoding="utf-8") as f:
            f.write(f"--prepare_dataset=folder\n--prepare_src={src}\n--data_dir={dst}\n"
                    f"--classes={classes}\n--bands=IRRGB\n--elevation=dsm\n--val_tiles=tile2\n"
                    "--patch_size=16\n--batch_size=2\n")
        proc = run(f"--flagfile={flagfile}")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        info = json.load(open(os.path.join(dst, "info.json")))
        self.assertEqual(info["class_names"], ["road", "roof", "grass", "tree", "car", "other"])
        self.assertEqual(info["bands"], ["R", "G", "B", "IR"])
        self.assertEqual(info["elevations"], ["dsm"])
        self.assertEqual(info["splits"], {"train": ["tile0", "tile1"], "val": ["tile2"]})
        printed = json.loads(proc.stdout[:proc.stdout.rindex("}") + 1])
        self.assertEqual(printed["splits"], {"train": 2, "val": 1})
        ir = np.concatenate([arrays[t][0][..., 3].ravel() for t in ("tile0", "tile1")])
        self.assertAllClose(printed["band_stats"]["IR"]["mean"],
                            round(ir.mean(dtype=np.float64), 4))
        store = tree_state(dst)

        bad = run("--prepare_dataset=potsdam", f"--prepare_src={src}", f"--data_dir={dst}_p")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no Potsdam image", bad.stderr)
        self.assertNotIn("Traceback", bad.stderr)
        self.assertFalse(os.path.exists(os.path.join(f"{dst}_p", "info.json")))
        missing = run("--prepare_dataset=folder", f"--prepare_src={src}")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("--data_dir", missing.stderr)
        old = run("--dataset=folder", f"--src={src}", f"--dst={dst}")
        self.assertEqual(old.returncode, 1)
        self.assertIn("--src is now --prepare_src", old.stderr)
        self.assertNotIn("Traceback", old.stderr)
        self.assertEqual(tree_state(dst), store)


if __name__ == "__main__":
    tf.test.main()
