"""tools.time_pipeline with the trainer's flag file (unknown flags ignored)."""
import os
import re
import shutil

import tensorflow as tf

from core.data.prepare import prepare
from tests.helpers import make_folder_dataset, run_tool


class TimePipelineTest(tf.test.TestCase):

    def test_trainer_flagfile_and_rates(self):
        root = os.path.join(self.get_temp_dir(), "tp")
        shutil.rmtree(root, ignore_errors=True)
        make_folder_dataset(os.path.join(root, "src"), [(40, 40), (36, 50), (33, 33)])
        store = os.path.join(root, "store")
        prepare("folder", os.path.join(root, "src"), store, val_tiles=["tile2"])
        flagfile = os.path.join(root, "demo.flags")
        with open(flagfile, "w") as f:
            f.write("# like demo.flags: data flags and trainer-only flags\n"
                    f"--data_dir={store}\n--patch_size=16\n--batch_size=6\n"
                    "--aug_rotate_deg=15\n--aug_brightness=0.1\n"
                    "--filters=8\n--max_lr=0.05\n--loss=jaccard\n")
        proc = run_tool("time_pipeline", f"--flagfile={flagfile}", "--batches=20",
                        "--warmup=2", timeout=180)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertIn("100% |", proc.stderr)
        out = proc.stdout
        self.assertIn("batch size: 6", out)
        seconds = float(re.search(r"20 batches: ([\d.]+) s", out).group(1))
        batches = float(re.search(r"([\d.]+) batches/s", out).group(1))
        images = float(re.search(r"([\d.]+) images/s", out).group(1))
        # "N batches: S s" is printed to the millisecond.
        self.assertLessEqual(abs(20 / batches - seconds), 6e-4)
        self.assertAllClose(images, 6 * batches, rtol=1e-4)


if __name__ == "__main__":
    tf.test.main()
