"""tools.evaluate end to end (subprocess) against a NumPy confusion matrix.

A 3-tile store v2 is written by hand (tests/store_v2.py; two tiles in val,
some no-data pixels); the reference predicts the same tiles in-process with
core.inference and counts the confusion matrix with np.bincount. A uint16
store is scored with a model trained on uint16, and refused by a uint8 one.
"""
import json
import os
import tempfile

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from core import inference, object_metrics
from core.data.datasets import ISPRS_CLASSES
from tests.store_v2 import write_store
from tests.helpers import make_workdir, run_tool

K = 6


def np_scores(cm, exclude=()):
    """OA, IoU, F1 and their means (classes with an empty union left out)."""
    tp, rows, cols = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    union = rows + cols - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, f1 = tp / union, 2 * tp / (rows + cols)
    keep = (union > 0) & ~np.isin(np.arange(K), exclude)
    return {"overall_accuracy": tp.sum() / cm.sum(), "iou": iou, "f1": f1,
            "mean_iou": iou[keep].mean(), "mean_f1": f1[keep].mean()}


class EvaluateToolTest(tf.test.TestCase):

    @staticmethod
    def make_store(root, dtype):
        """Tiles t0 (train), t1, t2 (val) as uint8 or as uint8 * 257 in uint16."""
        rng = np.random.default_rng(7)
        tiles, arrays = {}, {}
        for i, (h, w) in enumerate([(40, 56), (48, 40), (24, 30)]):
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mask = rng.integers(0, K, (h, w), dtype=np.uint8)
            mask[:3, :5] = 255  # ignored pixels
            valid = np.ones((h, w), bool)
            valid[-2:, -4:] = False  # no data: labelled 255 in the store
            if dtype == "uint16":
                image = image.astype(np.uint16) * 257
            tiles[f"t{i}"] = {"image": image, "label": mask, "valid": valid,
                              "split": "train" if i == 0 else "val"}
            arrays[f"t{i}"] = (image, np.where(valid, mask, 255))
        store = os.path.join(root, f"store_{dtype}")
        write_store(store, tiles, bands=["R", "G", "B"], dataset="potsdam",
                    excluded_from_mean=["clutter"])
        return store, arrays

    def test_scores_equal_numpy_confusion_matrix(self):
        root = tempfile.mkdtemp()
        store, arrays = self.make_store(root, "uint8")
        workdir, model = make_workdir(root, bands=("R", "G", "B"),
                                      class_names=ISPRS_CLASSES.class_names,
                                      palette=ISPRS_CLASSES.palette, seed=0)
        out = os.path.join(root, "eval")
        run = run_tool("evaluate", f"--model={workdir}", f"--data_dir={store}",
                       "--window=32", "--overlap=0.25", "--tta=flips", f"--output_dir={out}",
                       "--objects=building,tree")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        with open(os.path.join(out, "metrics.json")) as f:
            report = json.load(f)
        self.assertEqual(report["tiles"], ["t1", "t2"])
        self.assertEqual(report["tta"]["tta"], [0, 4, 6])
        with open(os.path.join(out, "metrics.md")) as f:
            table = f.read()
        for key, tta in (("plain", None), ("tta", "flips")):
            total = np.zeros((K, K), np.int64)
            objects = object_metrics.ObjectScores({"building": 1, "tree": 3})
            for tile in ("t1", "t2"):
                image, mask = arrays[tile]
                pred = inference.predict_tile(model, image, window=32, overlap=0.25,
                                              tta=tta).argmax(-1)
                valid = mask != 255
                cm = np.bincount(mask[valid].astype(int) * K + pred[valid],
                                 minlength=K * K).reshape(K, K)
                total += cm
                got = report[key]["per_tile"][tile]
                self.assertEqual(got["objects"], objects.update(mask, pred.astype(np.uint8)))
                self.assertAllEqual(got["confusion_matrix"], cm)
                self.assertAllClose(got["overall_accuracy"], np_scores(cm)["overall_accuracy"])
            got, want = report[key]["total"], np_scores(total)
            self.assertEqual(got["objects"], objects.result())
            self.assertGreater(got["objects"]["building"]["fn"], 0)  # counted, not empty
            self.assertAllEqual(got["confusion_matrix"], total)
            self.assertGreater(np.count_nonzero(total.sum(0)), 1)  # several classes predicted
            for name in ("overall_accuracy", "mean_iou", "mean_f1"):
                self.assertAllClose(got[name], want[name], atol=1e-12)
            for c, cname in enumerate(ISPRS_CLASSES.class_names):
                self.assertAllClose(got["classes"][cname]["iou"], want["iou"][c], atol=1e-12)
                self.assertAllClose(got["classes"][cname]["f1"], want["f1"][c], atol=1e-12)
            without = np_scores(total, exclude=(5,))
            self.assertAllClose(got["without"]["mean_iou"], without["mean_iou"], atol=1e-12)
            self.assertEqual(got["without"]["excluded"], ["clutter"])
            self.assertIn(f"{without['mean_iou']:.4f}", table)
        self.assertIn("| mean_iou without clutter | ", table)
        self.assertIn("## Objects at IoU >= 0.5 (precision / recall / F1)", table)
        for png in ("confusion_matrix.png", "confusion_matrix_tta.png"):
            self.assertEqual(iio.imread(os.path.join(out, png)).ndim, 3)


    def test_uint16_store(self):
        root = tempfile.mkdtemp()
        store, arrays = self.make_store(root, "uint16")
        kwargs = dict(bands=("R", "G", "B"), class_names=ISPRS_CLASSES.class_names,
                      palette=ISPRS_CLASSES.palette, seed=0)
        workdir, model = make_workdir(root, dtype="uint16", name="run16", **kwargs)
        out = os.path.join(root, "eval16")
        run = run_tool("evaluate", f"--model={workdir}", f"--data_dir={store}",
                       "--window=32", f"--output_dir={out}")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        with open(os.path.join(out, "metrics.json")) as f:
            report = json.load(f)
        total = np.zeros((K, K), np.int64)
        for tile in ("t1", "t2"):
            image, mask = arrays[tile]
            pred = inference.predict_tile(model, image, window=32).argmax(-1)
            valid = mask != 255
            total += np.bincount(mask[valid].astype(int) * K + pred[valid],
                                 minlength=K * K).reshape(K, K)
        self.assertAllEqual(report["plain"]["total"]["confusion_matrix"], total)
        self.assertGreater(np.count_nonzero(total.sum(0)), 1)
        # A model trained on uint8 bands is refused, in one line.
        workdir8, _ = make_workdir(root, dtype="uint8", name="run8", **kwargs)
        run = run_tool("evaluate", f"--model={workdir8}", f"--data_dir={store}", "--window=32",
                       f"--output_dir={out}8")
        self.assertEqual(run.returncode, 1)
        self.assertNotIn("Traceback", run.stderr)
        self.assertRegex(run.stderr.strip().splitlines()[-1],
                         r"^tools.evaluate: .*store_uint16: the store's optical bands are "
                         r"uint16, .*run8 was trained on uint8; evaluate on a store of the "
                         r"same kind$")


if __name__ == "__main__":
    tf.test.main()
