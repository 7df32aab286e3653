"""Tests for core.data.store: info.json v2, channel_plan, the .npy checks."""
import json
import os

import numpy as np
import tensorflow as tf

from core.data import store
from core.data.datasets import ELEVATION_BANDS
from core.data.prepare import STORE_FORMAT
from core.data.pipeline import PipelineConfig
from tests.store_v2 import random_tiles, write_store


def stats(mean, std, lo, hi):
    return {"mean": mean, "std": std, "min": lo, "max": hi}


def info(bands=("R", "G", "B", "IR"), elevations=("dsm", "ndsm"), dtype="uint16"):
    """A v2 info dict (no tiles): band k has mean 10k+1, std k+1, range [k, 1000k+999]."""
    names = list(bands) + [ELEVATION_BANDS[k] for k in elevations]
    return {"format": STORE_FORMAT, "bands": list(bands), "dtype": dtype,
            "elevations": list(elevations),
            "band_stats": {n: stats(10.0 * k + 1, k + 1.0, float(k), 1000.0 * k + 999)
                           for k, n in enumerate(names)}}


class ChannelPlanTest(tf.test.TestCase):

    def test_defaults_all_bands_and_ndsm_over_dsm(self):
        plan = store.channel_plan(info(), None, None)
        self.assertEqual(plan["bands"], ["R", "G", "B", "IR", "nDSM"])
        self.assertEqual(plan["optical_index"], [0, 1, 2, 3])
        self.assertTrue(plan["identity"])
        self.assertEqual(plan["elevation"], "ndsm")
        self.assertEqual(plan["mean"], [1.0, 11.0, 21.0, 31.0, 51.0])   # nDSM is the 6th
        self.assertEqual(plan["std"], [1.0, 2.0, 3.0, 4.0, 6.0])
        self.assertEqual(plan["dtype"], "uint16")
        self.assertEqual(plan["band_ranges"]["IR"], [3.0, 3999.0])
        self.assertEqual(plan["band_ranges"]["nDSM"], [5.0, 5999.0])
        # The only kind, or none at all.
        self.assertEqual(store.channel_plan(info(elevations=("dsm",)), None, None)["bands"][-1],
                         "DSM")
        self.assertEqual(store.channel_plan(info(elevations=()), None, None)["bands"],
                         ["R", "G", "B", "IR"])

    def test_subset_reorder_and_kind_choice(self):
        plan = store.channel_plan(info(), "IRRG", "dsm")
        self.assertEqual(plan["bands"], ["IR", "R", "G", "DSM"])
        self.assertEqual(plan["optical_index"], [3, 0, 1])
        self.assertFalse(plan["identity"])
        self.assertEqual(plan["elevation"], "dsm")
        self.assertEqual(plan["mean"], [31.0, 1.0, 11.0, 41.0])
        for request in ("none", False):
            plan = store.channel_plan(info(), ["b", "g"], request)
            self.assertEqual((plan["bands"], plan["elevation"]), (["B", "G"], None))
        # Names that are not letters: comma-separated.
        sentinel = info(bands=("B02", "B03", "B04", "B08"), elevations=())
        plan = store.channel_plan(sentinel, "B08,B04,B03", None)
        self.assertEqual(plan["optical_index"], [3, 2, 1])
        self.assertEqual(store.channel_plan(sentinel, "B08B04", None)["bands"], ["B08", "B04"])

    def test_intensity_ranges_by_dtype(self):
        self.assertEqual(store.channel_plan(info(dtype="uint8"), "RG", "none")
                         ["intensity_ranges"], [[0.0, 255.0], [0.0, 255.0]])
        self.assertEqual(store.channel_plan(info(), "RIR", "ndsm")["intensity_ranges"],
                         [[0.0, 999.0], [0.0, 3999.0], [0.0, 5999.0]])
        signed = info(dtype="int16")
        signed["band_stats"]["G"]["min"] = -300.0
        self.assertEqual(store.channel_plan(signed, "G", "none")["intensity_ranges"],
                         [[-300.0, 1999.0]])

    def test_one_line_errors(self):
        cases = [(("IR,R,NIR", None), r"^bands IR,R,NIR: \['NIR'\] not in the store "
                                      r"\(R,G,B,IR\); choose among those\.$"),
                 (("IRGX", None), r"^bands IRGX: \['IRGX'\] not in the store"),
                 (("RR", None), r"empty or repeated"),
                 ((None, "ndsm"), r"^elevation 'ndsm' requested but the store holds \['dsm'\]"),
                 ((None, "lidar"), r"^elevation 'lidar': expected none, dsm or ndsm\.$")]
        for (bands, elevation), pattern in cases:
            with self.assertRaisesRegex(ValueError, pattern) as ctx:
                store.channel_plan(info(elevations=("dsm",)), bands, elevation)
            self.assertNotIn("\n", str(ctx.exception))
        with self.assertRaisesRegex(ValueError, "^elevation requested but the store has none"):
            store.channel_plan(info(elevations=()), None, True)


class LoadInfoAndFilesTest(tf.test.TestCase):

    def test_v1_store_refused_in_one_line(self):
        root = self.get_temp_dir()
        with open(os.path.join(root, "info.json"), "w") as f:
            json.dump({"format": "ortholoop-tiles-npy-v1", "bands": ["R", "G", "B"]}, f)
        with self.assertRaisesRegex(ValueError, r"info.json: store format "
                                    r"'ortholoop-tiles-npy-v1', this version reads "
                                    r"'ortholoop-tiles-npy-v2'; re-run `python -m "
                                    r"tools.prepare` into a new --data_dir\.$"):
            store.load_info(root)
        with open(os.path.join(root, "info.json"), "w") as f:
            json.dump({**info(), "dtype": "uint32"}, f)
        with self.assertRaisesRegex(ValueError, "optical dtype 'uint32', expected one of"):
            store.load_info(root)

    def test_read_decodes_each_dtype_and_checks_the_files(self):
        for dtype in (np.uint8, np.uint16, np.int16, np.float32):
            root = os.path.join(self.get_temp_dir(), np.dtype(dtype).name)
            tiles = random_tiles([(9, 7), (5, 6)], val=("tile1",), dtype=dtype,
                                 kinds=("dsm", "ndsm"), seed=4)
            write_store(root, tiles, bands=["R", "G", "B", "IR"])
            reader = store.Store(PipelineConfig(root, patch_size=4, bands="IRG",
                                                elevation="dsm"), "train")
            image, label, elevation = reader.read(0)
            self.assertEqual(image.dtype, tf.as_dtype(dtype))
            self.assertAllEqual(image, tiles["tile0"]["image"][..., [3, 1]])
            self.assertAllEqual(label, tiles["tile0"]["label"])
            self.assertAllEqual(elevation[..., 0], tiles["tile0"]["dsm"])
        # A file whose dtype is not info.json's.
        np.save(os.path.join(root, "tiles", "tile0.image.npy"),
                tiles["tile0"]["image"].astype(np.float64))
        with self.assertRaisesRegex(ValueError, r"tile0.image.npy: holds float64, info.json "
                                                r"says float32; re-run prepare\.$"):
            store.Store(PipelineConfig(root, patch_size=4), "train")


if __name__ == "__main__":
    tf.test.main()
