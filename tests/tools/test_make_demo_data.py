"""End-to-end test of the tools.make_demo_data binary, run as a user would.

The binary runs in a subprocess: its --dataset/--seed flags share names with
other binaries' flags, which must not meet in one test process.
"""
import os
import re
import tempfile

import numpy as np
import rasterio
import tensorflow as tf
import tifffile

from tests.helpers import run_tool


def _run(*args):
    return run_tool("make_demo_data", *args, timeout=120)


class MakeDemoDataBinaryTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def test_writes_potsdam_tiles_and_prints_proportions(self):
        out = os.path.join(self.dir, "demo")
        proc = _run(f"--output_dir={out}", "--dataset=potsdam", "--tiles=2", "--size=256",
                    "--seed=0")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        written = re.findall(r"^wrote (\S+)$", proc.stdout, re.M)
        self.assertLen(written, 10)
        for path in written:
            self.assertTrue(os.path.isfile(path), path)
        # The printed proportions are those of the label files on disk.
        match = re.search(r"class proportions: (.*)", proc.stdout)
        printed = [float(v) for v in re.findall(r"([\d.]+)%", match.group(1))]
        palette = np.array([(255, 255, 255), (0, 0, 255), (0, 255, 255),
                            (0, 255, 0), (255, 255, 0), (255, 0, 0)])
        counts = np.zeros(6)
        for tile in ("2_10", "2_13"):
            rgb = tifffile.imread(os.path.join(out, f"5_Labels_all/top_potsdam_{tile}_label.tif"))
            counts += [(rgb == c).all(-1).sum() for c in palette]
        self.assertAllClose(printed, 100 * counts / counts.sum(), atol=0.051)
        with rasterio.open(os.path.join(out, "4_Ortho_RGBIR/top_potsdam_2_13_RGBIR.tif")) as s:
            self.assertEqual((s.count, s.crs.to_epsg()), (4, 25833))
        self.assertIn("10 file(s) written", proc.stdout)

        # Rerun: nothing written; another seed into the same folder: refused.
        again = _run(f"--output_dir={out}", "--tiles=2", "--size=256")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("0 file(s) written", again.stdout)
        clash = _run(f"--output_dir={out}", "--tiles=2", "--size=256", "--seed=5")
        self.assertEqual(clash.returncode, 1)
        self.assertIn("nothing was overwritten", clash.stderr)

    def test_bad_flags_give_one_clear_error(self):
        cases = [(["--tiles=0"], "--tiles must be an integer >= 1"),
                 (["--size=64"], "--size must be an integer >= 256"),
                 (["--dataset=vaihingen"], "value should be one of <potsdam|inria>"),
                 (["--seed=-3"], "--seed must be an integer >= 0"),
                 ([], "--output_dir")]
        for extra, message in cases:
            args = ([f"--output_dir={os.path.join(self.dir, 'x')}"] if extra else []) + extra
            proc = _run(*args)
            self.assertNotEqual(proc.returncode, 0, extra)
            self.assertIn(message, proc.stderr, extra)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "x")))


if __name__ == "__main__":
    tf.test.main()
