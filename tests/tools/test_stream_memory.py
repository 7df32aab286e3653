"""tools.predict --stream keeps its peak memory under core.streaming's bound.

Runs benchmarks/bench_stream_memory.py at 4096 x 4096 x 3 (a VRT of 4
GeoTIFFs) with a tiny U-Net: two tools.predict children, a 256 x 256 crop
(the baseline: Python, TensorFlow, the model) and the VRT; the growth of the
peak RSS (getrusage of the children) must stay under
`streaming.peak_memory_bytes`, which is far below what the in-memory
prediction of the same raster holds.
"""
import json
import os
import sys
import tempfile

import tensorflow as tf

from core import inference, streaming
from tests.helpers import make_workdir, run as run_in_repo


class StreamMemoryTest(tf.test.TestCase):

    def test_peak_rss_growth_stays_under_the_bound(self):
        root = tempfile.mkdtemp()
        workdir, _ = make_workdir(root, bands=("R", "G", "B"))
        run = run_in_repo([sys.executable, "-m", "benchmarks.bench_stream_memory",
                           "--size=4096", "--bands=3", "--files=2", "--window=128",
                           "--overlap=0", "--block=1024", "--gdal_cache_mb=16",
                           f"--model={workdir}", f"--root={root}"], timeout=600)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        report = json.loads(run.stdout)
        bound = streaming.peak_memory_bytes(window=128, overlap=0.0, batch_size=4,
                                            channels=3, num_classes=3, block=1024,
                                            gdal_cache_mb=16)
        self.assertEqual(report["bound_bytes"], bound)
        self.assertLessEqual(report["growth_bytes"], bound["total"], report)
        # The bound means something: the in-memory prediction's float32 image
        # and accumulators alone are several times larger.
        in_memory = 4096 * 4096 * 3 * 4 + inference.peak_memory_bytes(
            4096, 4096, 3, 3, window=128)["total"]
        self.assertGreater(in_memory, 4 * bound["total"])
        # Every pixel predicted: the class COG covers the VRT.
        import rasterio
        with rasterio.open(os.path.join(root, "out", "mosaic_4096_classes.tif")) as ds:
            self.assertEqual((ds.height, ds.width), (4096, 4096))
            self.assertLess(int(ds.read(1, out_shape=(64, 64)).max()), 3)


if __name__ == "__main__":
    tf.test.main()
