"""ConfusionMatrix against scikit-learn, in batches and across two replicas,
and against torchmetrics (golden/metrics_golden.json, made by
golden/make_metrics_golden.py)."""
import json
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score

from core.metrics import ConfusionMatrix
from tests.distribute import two_replica_strategy

K = 5
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                      "metrics_golden.json")


def _random(seed, shape=(3, 8, 8), num_classes=K):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=shape).astype(np.uint8)
    # Predictions agree with labels often, so the scores are not all tiny.
    predicted = np.where(rng.random(shape) < 0.6, labels,
                         rng.integers(0, num_classes, size=shape)).astype(np.int64)
    labels[rng.random(shape) < 0.15] = 255
    return labels, predicted


def _sklearn_scores(labels, predicted, exclude=()):
    y = labels.reshape(-1)
    p = predicted.reshape(-1)
    keep = y != 255
    y, p = y[keep], p[keep]
    all_classes = list(range(K))
    present = sorted(set(y.tolist()) | set(p.tolist()))
    in_mean = [c for c in present if c not in exclude]
    return {
        "matrix": confusion_matrix(y, p, labels=all_classes),
        "present": present,
        "iou": jaccard_score(y, p, labels=all_classes, average=None, zero_division=0),
        "f1": f1_score(y, p, labels=all_classes, average=None, zero_division=0),
        "mean_iou": jaccard_score(y, p, labels=in_mean, average="macro"),
        "mean_f1": f1_score(y, p, labels=in_mean, average="macro"),
        "accuracy": np.mean(y == p),
    }


class ConfusionMatrixTest(tf.test.TestCase, parameterized.TestCase):

    def _check(self, result, expected):
        present = expected["present"]
        self.assertAllEqual(result["confusion_matrix"], expected["matrix"])
        self.assertAllClose(np.asarray(result["iou"])[present], expected["iou"][present])
        self.assertAllClose(np.asarray(result["f1"])[present], expected["f1"][present])
        self.assertAllClose(result["mean_iou"], expected["mean_iou"])
        self.assertAllClose(result["mean_f1"], expected["mean_f1"])
        self.assertAllClose(result["overall_accuracy"], expected["accuracy"])

    @parameterized.parameters(1, 3)
    def test_matches_sklearn_in_batches(self, num_batches):
        labels, predicted = _random(0, shape=(6, 8, 8))
        cm = ConfusionMatrix(K)
        update = tf.function(cm.update)
        for labels_part, predicted_part in zip(np.array_split(labels, num_batches),
                                               np.array_split(predicted, num_batches)):
            update(labels_part, predicted_part)
        self._check(cm.result(), _sklearn_scores(labels, predicted))

    def test_absent_class_left_out_of_means_and_exclude(self):
        labels, predicted = _random(1)
        labels[labels == 3] = 0
        predicted[predicted == 3] = 1  # class 3: empty union
        cm = ConfusionMatrix(K, exclude=(4,))
        cm.update(labels, predicted)
        result = cm.result(exclude=())
        self.assertTrue(np.isnan(result["iou"][3]))
        self._check(result, _sklearn_scores(labels, predicted))
        self._check(cm.result(), _sklearn_scores(labels, predicted, exclude=(4,)))
        # precision / recall against the matrix by hand
        matrix = result["confusion_matrix"].numpy().astype(float)
        tp = np.diag(matrix)
        self.assertAllClose(result["precision"][:3], tp[:3] / matrix.sum(0)[:3])
        self.assertAllClose(result["recall"][:3], tp[:3] / matrix.sum(1)[:3])

    def test_reset_table_and_json(self):
        labels, predicted = _random(2)
        cm = ConfusionMatrix(K)
        cm.update(labels, predicted)
        names = ["road", "building", "grass", "tree", "car"]
        report = cm.to_dict(names, exclude=(4,))
        json.dumps(report, allow_nan=False)
        expected = _sklearn_scores(labels, predicted)
        self.assertAllClose(report["mean_iou"], expected["mean_iou"])
        self.assertAllClose(report["classes"]["tree"]["iou"], expected["iou"][3])
        self.assertEqual(report["classes"]["car"]["support"],
                         int(expected["matrix"][4].sum()))
        self.assertAllClose(report["without"]["mean_iou"],
                            _sklearn_scores(labels, predicted, (4,))["mean_iou"])
        table = cm.table(names, exclude=(4,))
        self.assertIn(f"{expected['iou'][1]:.4f}", table.splitlines()[2])
        self.assertIn("without car", table)
        cm.reset()
        self.assertEqual(int(tf.reduce_sum(cm.matrix)), 0)
        self.assertEqual(float(cm.result()["mean_iou"]), 0.0)

    def test_no_labelled_pixel_is_null_not_zero(self):
        names = ["road", "building", "grass", "tree", "car"]
        cm = ConfusionMatrix(K, exclude=(4,))
        cm.update(np.full([2, 4, 4], 255, np.uint8), np.zeros([2, 4, 4], np.int64))
        report = cm.to_dict(names)
        json.dumps(report, allow_nan=False)
        self.assertEqual(report["labelled_pixels"], 0)
        for key in ("overall_accuracy", "mean_iou", "mean_f1"):
            self.assertIsNone(report[key], key)
            self.assertIsNone(report["without"][key.replace("overall_accuracy", "mean_iou")])
        self.assertIsNone(report["classes"]["road"]["iou"])
        self.assertIn("overall accuracy -  mean IoU -  mean F1 -", cm.table(names))
        self.assertIn("without car: mean IoU -  mean F1 -", cm.table(names))
        # Only the excluded class labelled: the means without it are unknown,
        # the others are car's (IoU 1 / 2 with 2 of 4 pixels right).
        labels = np.full([1, 2, 2], 4, np.uint8)
        cm.update(labels, np.array([[[4, 4], [1, 1]]]))
        report = cm.to_dict(names)
        self.assertEqual(report["labelled_pixels"], 4)
        self.assertAllClose([report["overall_accuracy"], report["classes"]["car"]["iou"]],
                            [0.5, 0.5])
        self.assertAllClose(report["mean_iou"], (0.5 + 0.0) / 2)  # car, building (FP only)
        self.assertIsNone(report["classes"]["road"]["iou"])
        self.assertAllClose(report["without"]["mean_iou"], 0.0)  # building: union 2, TP 0
        cm.reset()
        cm.update(labels, labels)
        self.assertIsNone(cm.to_dict(names)["without"]["mean_iou"])
        self.assertEqual(cm.to_dict(names)["mean_iou"], 1.0)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, r"exclude \[7\]"):
            ConfusionMatrix(K, exclude=(7,))
        cm = ConfusionMatrix(K)
        with self.assertRaisesRegex(ValueError, "3 class names"):
            cm.to_dict(["a", "b", "c"])
        with self.assertRaises(tf.errors.InvalidArgumentError):
            cm.update(np.array([[K]]), np.array([[0]]))

    @parameterized.parameters(
        # labels, predicted, [min, max] of the kept labels and predictions
        ([[0, -1, 255]], [[0, 1, 2]], (-1, 0, 0, 1)),
        ([[0, 7, 255]], [[0, 1, 2]], (0, 7, 0, 1)),
        ([[0, 1, 255]], [[0, -3, 2]], (0, 1, -3, 0)),
        ([[0, 1, 255]], [[0, 5, 2]], (0, 1, 0, 5)))
    def test_out_of_range_ids_raise_with_their_range(self, labels, predicted, ranges):
        """Eagerly and in a tf.function: a negative or too large label (not
        the ignore index) or prediction fails, naming the range seen; the
        counts are left as they were."""
        labels, predicted = np.array(labels, np.int32), np.array(predicted, np.int64)
        # Eager prints a range as "-1, 0", a graph as "[-1 0]".
        seen = (r"labels span\W+{}\W+{}\b[\s\S]*?predicted ids\W+{}\W+{}\b"
                .format(*ranges))
        for update in (None, tf.function):
            cm = ConfusionMatrix(K)
            fn = cm.update if update is None else update(cm.update)
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                        r"labels must be in \[0, 5\) or the ignore index 255"):
                fn(labels, predicted)
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError, seen):
                fn(labels, predicted)
            self.assertEqual(int(tf.reduce_sum(cm.matrix)), 0)

    def test_ignore_index_and_empty_batches_pass_the_check(self):
        cm = ConfusionMatrix(K)
        # The prediction under an ignored pixel is not checked (here 200).
        cm.update(np.array([[255, 4, 0]], np.uint8), np.array([[200, 4, 1]], np.int64))
        cm.update(np.zeros([0, 3], np.uint8), np.zeros([0, 3], np.int64))
        cm.update(np.full([2, 2], 255, np.uint8), np.full([2, 2], -1, np.int64))
        self.assertEqual(int(tf.reduce_sum(cm.matrix)), 2)
        # A user's own ignore value, negative, is not an error.
        void = ConfusionMatrix(K, ignore_index=-1)
        void.update(np.array([[-1, 2]], np.int32), np.array([[0, 2]], np.int32))
        self.assertEqual(int(void.matrix[2, 2]), 1)
        self.assertEqual(int(tf.reduce_sum(void.matrix)), 1)

    def test_two_replica_mirrored_strategy(self):
        strategy = two_replica_strategy()
        labels, predicted = _random(3, shape=(4, 8, 8))
        with strategy.scope():
            cm = ConfusionMatrix(K)
        halves = {"labels": np.split(labels, 2), "predicted": np.split(predicted, 2)}

        def per_replica(ctx):
            i = ctx.replica_id_in_sync_group
            return (tf.constant(halves["labels"][i]), tf.constant(halves["predicted"][i]))

        values = strategy.experimental_distribute_values_from_function(per_replica)

        @tf.function
        def step(labels, predicted):
            strategy.run(cm.update, args=(labels, predicted))

        step(*values)
        self._check(cm.result(), _sklearn_scores(labels, predicted))
        # A checkpoint holds the summed counts and restores them.
        path = tf.train.Checkpoint(cm=cm).save(self.get_temp_dir() + "/ckpt")
        fresh = ConfusionMatrix(K)
        tf.train.Checkpoint(cm=fresh).restore(path).assert_consumed()
        self.assertAllEqual(fresh.matrix, cm.result()["confusion_matrix"])
        with strategy.scope():
            cm.reset()
        self.assertEqual(int(tf.reduce_sum(cm.result()["confusion_matrix"])), 0)


class TorchmetricsGoldenTest(tf.test.TestCase, parameterized.TestCase):
    """The scores of the JSON's label maps against torchmetrics' (float32
    there, hence rtol 1e-6); where a denominator is 0 torchmetrics writes 0
    (zero_division) and we NaN."""

    @parameterized.parameters("random", "absent_class", "only_predicted")
    def test_matches_torchmetrics(self, name):
        with open(GOLDEN, encoding="utf-8") as f:
            golden = json.load(f)
        case, want = golden["cases"][name], golden["cases"][name]["torchmetrics"]
        cm = ConfusionMatrix(golden["num_classes"], ignore_index=golden["ignore_index"])
        labels = np.array(case["labels"], np.uint8)
        tf.function(cm.update)(labels, np.array(case["predicted"], np.int64))
        got = {k: np.asarray(v) for k, v in cm.result().items()}
        matrix = np.array(want["confusion_matrix"])
        self.assertAllEqual(got["confusion_matrix"], matrix)
        tp, predicted, actual = np.diag(matrix), matrix.sum(0), matrix.sum(1)
        for key, den in (("iou", predicted + actual - tp), ("f1", predicted + actual),
                         ("precision", predicted), ("recall", actual)):
            self.assertAllClose(got[key][den > 0], np.array(want[key])[den > 0], rtol=1e-6,
                                msg=key)
            self.assertTrue(np.all(np.isnan(got[key][den == 0])), msg=key)
        for key in ("mean_iou", "mean_f1", "overall_accuracy"):
            self.assertAllClose(got[key], want[key], rtol=1e-6, msg=key)
        if name == "absent_class":
            self.assertEqual(int(matrix[3].sum() + matrix[:, 3].sum()), 0)
        if name == "only_predicted":  # IoU 0 classes are in the means
            self.assertEqual((got["iou"][2], got["iou"][4]), (0.0, 0.0))
            self.assertAllClose(got["mean_iou"], np.mean(got["iou"][[0, 1, 2, 3, 4]]))


class XlaTest(tf.test.TestCase):

    def test_update_compiles_under_xla_and_matches_sklearn(self):
        rng = np.random.default_rng(4)
        labels = rng.integers(0, 4, size=(2, 9, 7)).astype(np.uint8)
        labels[0, :2] = 255
        predicted = rng.integers(0, 4, size=(2, 9, 7)).astype(np.int32)
        cm = ConfusionMatrix(4)
        tf.function(cm.update, jit_compile=True)(labels, predicted)
        keep = labels.reshape(-1) != 255
        want = confusion_matrix(labels.reshape(-1)[keep], predicted.reshape(-1)[keep],
                                labels=range(4))
        self.assertAllEqual(cm.matrix.numpy(), want)


if __name__ == "__main__":
    tf.test.main()
