"""core.object_metrics: planted buildings with hand-computed counts, and a
reference (scipy.ndimage.label + brute-force matching) on random blobs."""
import numpy as np
import tensorflow as tf
from scipy import ndimage

from core import object_metrics


def planted():
    """Ground truth and prediction of class 1 (building) on 0 (ground)."""
    true = np.zeros((64, 64), np.uint8)
    pred = np.zeros((64, 64), np.uint8)
    true[0:10, 0:10] = pred[0:10, 0:10] = 1          # T1 = P1: IoU 1
    true[20:30, 0:10] = 1                             # T2
    pred[20:30, 3:13] = 1                             # P2: 70 / 130 = 0.54
    true[40:44, 40:44] = 1                            # T3: missed
    true[0:10, 40:50] = 1                             # T4
    pred[0:10, 46:56] = 1                             # P4: 40 / 160 = 0.25
    pred[50:55, 0:5] = 1                              # P5: nothing there
    true[40:48, 10:18] = true[40:48, 19:27] = 1       # T5, T6 one pixel apart
    pred[40:48, 10:27] = 1                            # one blob: 64 / 136 = 0.47
    return true, pred


def reference(true_mask, pred_mask, threshold=0.5):
    """scipy's 4-connected labels; every pair's IoU by brute force."""
    t, nt = ndimage.label(true_mask)
    p, np_ = ndimage.label(pred_mask)
    pairs = []
    for i in range(1, np_ + 1):
        for j in range(1, nt + 1):
            inter = np.sum((p == i) & (t == j))
            union = np.sum((p == i) | (t == j))
            if inter and inter / union >= threshold:
                pairs.append((inter / union, i, j))
    used_p, used_t, tp = set(), set(), 0
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            tp += 1
    return tp, np_ - tp, nt - tp


class ObjectMetricsTest(tf.test.TestCase):

    def test_planted_buildings(self):
        true, pred = planted()
        found = object_metrics.match_objects(true == 1, pred == 1)
        self.assertEqual((found["true"], found["predicted"]), (6, 5))
        self.assertEqual((found["tp"], found["fp"], found["fn"]), (2, 3, 4))
        self.assertAllClose(sorted(found["ious"]), [70 / 130, 1.0])
        counter = object_metrics.ObjectScores({"building": 1})
        tile = counter.update(true, pred)["building"]
        self.assertAllClose([tile["precision"], tile["recall"], tile["f1"]],
                            [2 / 5, 2 / 6, 2 * (2 / 5) * (2 / 6) / (2 / 5 + 2 / 6)])
        self.assertAllClose(tile["mean_iou"], (1 + 70 / 130) / 2)
        counter.update(true, pred)  # a second tile: counts add up
        total = counter.result()["building"]
        self.assertEqual((total["tp"], total["fp"], total["fn"]), (4, 6, 8))
        self.assertAllClose(total["precision"], 2 / 5)

    def test_ignored_pixels_split_objects_in_both_masks(self):
        labels = np.zeros((20, 20), np.uint8)
        labels[2:12, 2:12] = 1
        labels[:, 7] = 255                 # an ignored line through the building
        pred = np.zeros((20, 20), np.uint8)
        pred[2:12, 2:12] = 1               # predicted whole
        tile = object_metrics.ObjectScores({"building": 1}).update(labels, pred)["building"]
        self.assertEqual((tile["tp"], tile["fp"], tile["fn"]), (2, 0, 0))

    def test_no_objects_and_corner_contact(self):
        empty = np.zeros((8, 8), bool)
        self.assertEqual(object_metrics.scores(0, 0, 0),
                         {"precision": None, "recall": None, "f1": None})
        self.assertEqual(object_metrics.match_objects(empty, empty)["tp"], 0)
        corner = empty.copy()
        corner[0:2, 0:2] = corner[2:4, 2:4] = True  # touching at a corner: two objects
        found = object_metrics.match_objects(corner, corner)
        self.assertEqual((found["true"], found["tp"]), (2, 2))
        self.assertEqual(object_metrics.scores(0, 3, 0)["f1"], 0.0)

    def test_agrees_with_a_reference_on_random_blobs(self):
        rng = np.random.default_rng(0)
        for seed in range(3):
            field = ndimage.gaussian_filter(rng.normal(size=(48, 48)), 2)
            true = field > 0.1
            pred = ndimage.shift(field, (seed, -seed), order=0) > 0.05
            found = object_metrics.match_objects(true, pred)
            self.assertEqual((found["tp"], found["fp"], found["fn"]), reference(true, pred))


if __name__ == "__main__":
    tf.test.main()
