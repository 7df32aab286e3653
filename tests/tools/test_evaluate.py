"""tools.evaluate end to end (subprocess) against a NumPy confusion matrix.

A 3-tile folder dataset is prepared with core.data.prepare (two tiles in val);
the reference predicts the same tiles in-process with core.inference and
counts the confusion matrix with np.bincount.
"""
import json
import os
import tempfile

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from core import inference
from core.data import geotiff, labels, prepare
from tests.tools.test_predict import make_workdir, run_tool

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

    def test_scores_equal_numpy_confusion_matrix(self):
        root = tempfile.mkdtemp()
        rng = np.random.default_rng(7)
        src = os.path.join(root, "src")
        os.makedirs(os.path.join(src, "images"))
        os.makedirs(os.path.join(src, "masks"))
        arrays = {}
        for i, (h, w) in enumerate([(40, 56), (48, 40), (24, 30)]):
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mask = rng.integers(0, K, (h, w), dtype=np.uint8)
            mask[:3, :5] = 255  # ignored pixels
            geotiff.write_geotiff(os.path.join(src, "images", f"t{i}.tif"), image, None)
            iio.imwrite(os.path.join(src, "masks", f"t{i}.png"), mask)
            arrays[f"t{i}"] = (image, mask)
        store = os.path.join(root, "store")
        prepare.prepare("folder", src, store, val_tiles=["t1", "t2"])
        workdir, model = make_workdir(root, bands=("R", "G", "B"),
                                      class_names=labels.POTSDAM.class_names,
                                      palette=labels.POTSDAM.palette, seed=0)
        out = os.path.join(root, "eval")
        run = run_tool("evaluate", f"--model={workdir}", f"--data_dir={store}",
                       "--window=32", "--overlap=0.25", "--tta=flips", f"--output_dir={out}")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        with open(os.path.join(out, "metrics.json")) as f:
            report = json.load(f)
        self.assertEqual(report["tiles"], ["t1", "t2"])
        self.assertEqual(report["tta"]["tta"], [0, 4, 6])
        with open(os.path.join(out, "metrics.md")) as f:
            table = f.read()
        for key, tta in (("plain", None), ("tta", "flips")):
            total = np.zeros((K, K), np.int64)
            for tile in ("t1", "t2"):
                image, mask = arrays[tile]
                pred = inference.predict_tile(model, image, window=32, overlap=0.25,
                                              tta=tta).argmax(-1)
                valid = mask != 255
                cm = np.bincount(mask[valid].astype(int) * K + pred[valid],
                                 minlength=K * K).reshape(K, K)
                total += cm
                got = report[key]["per_tile"][tile]
                self.assertAllEqual(got["confusion_matrix"], cm)
                self.assertAllClose(got["overall_accuracy"], np_scores(cm)["overall_accuracy"])
            got, want = report[key]["total"], np_scores(total)
            self.assertAllEqual(got["confusion_matrix"], total)
            self.assertGreater(np.count_nonzero(total.sum(0)), 1)  # several classes predicted
            for name in ("overall_accuracy", "mean_iou", "mean_f1"):
                self.assertAllClose(got[name], want[name], atol=1e-12)
            for c, cname in enumerate(labels.POTSDAM.class_names):
                self.assertAllClose(got["classes"][cname]["iou"], want["iou"][c], atol=1e-12)
                self.assertAllClose(got["classes"][cname]["f1"], want["f1"][c], atol=1e-12)
            without = np_scores(total, exclude=(5,))
            self.assertAllClose(got["without"]["mean_iou"], without["mean_iou"], atol=1e-12)
            self.assertEqual(got["without"]["excluded"], ["clutter"])
            self.assertIn(f"{without['mean_iou']:.4f}", table)
        self.assertIn("| mean_iou without clutter | ", table)
        for png in ("confusion_matrix.png", "confusion_matrix_tta.png"):
            self.assertEqual(iio.imread(os.path.join(out, png)).ndim, 3)


if __name__ == "__main__":
    tf.test.main()
