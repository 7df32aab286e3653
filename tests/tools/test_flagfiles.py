"""The flag files at the repository root parse with the trainer's flags (no
unknown or misspelt flag, every cross-flag rule holds) and start with the
comment DESIGN.md asks for: the command, what it trains, time and score."""
import os
import sys

import tensorflow as tf
from absl.testing import parameterized

from tests.helpers import REPO, run

PARSE = """
import sys
from absl import flags
import tools.train_flags  # defines the data and training flags
flags.FLAGS(["train", "--flagfile=" + sys.argv[1]])
f = flags.FLAGS
print(f.depth, f.residual, f.center, f.loss, f.batch_size, f.patch_size, f.schedule, f.max_lr)
"""


class FlagFilesTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(
        # Each file keeps its measured (demo) or published (the talk's) peak lr
        # instead of tools.train's default, which was chosen at batch 8.
        ("demo.flags", "4 True conv ce+jaccard 16 128 one_cycle 0.05"),
        # The talk's best Potsdam run and its INRIA run.
        ("potsdam.flags", "4 True serial_dilated jaccard 50 256 one_cycle 0.1"),
        ("inria.flags", "4 True residual ce 50 256 one_cycle 0.1"),
    )
    def test_parses_with_the_trainer_flags(self, name, expected):
        path = os.path.join(REPO, name)
        result = run([sys.executable, "-c", PARSE, path], timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stdout.strip(), expected)
        with open(path, encoding="utf-8") as f:
            header = [line for line in f.read().splitlines() if line.startswith("#")]
        self.assertEqual(header[0], f"# python -m tools.train --flagfile={name}")
        text = " ".join(header).lower()
        self.assertIn("expected", text)
        self.assertRegex(text, r"mean iou")


if __name__ == "__main__":
    tf.test.main()
