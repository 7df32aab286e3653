"""Losses against tf.nn, Keras, NumPy references written here, and torch and
segmentation_models_pytorch (golden/losses_golden.json, made by
golden/make_losses_golden.py)."""
import functools
import itertools
import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import losses

K = 4
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                      "losses_golden.json")


def _batch(seed, shape=(2, 5, 6), num_classes=K, ignore_fraction=0.2, scale=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=shape).astype(np.uint8)
    labels[rng.random(shape) < ignore_fraction] = 255
    logits = (scale * rng.standard_normal(shape + (num_classes,))).astype(np.float32)
    return labels, logits


def _np_softmax(logits):
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _np_valid(labels, logits):
    flat_labels = labels.reshape(-1)
    keep = flat_labels != 255
    return flat_labels[keep].astype(np.int64), logits.reshape(-1, logits.shape[-1])[keep]


def _np_lovasz_softmax(labels, logits, classes="present"):
    """From the paper: for each class c, the mispredicted set after the i
    largest errors is M_i = {pi_1..pi_i}; Delta_J(M) = |M| / |F_c u M|
    (Berman et al. 2018, eq. 2-3), and the Lovasz extension (eq. 8-9) is
    sum_i e_pi(i) (Delta_J(M_i) - Delta_J(M_{i-1}))."""
    y, z = _np_valid(labels, logits)
    probs = _np_softmax(z)
    per_class = []
    for c in range(probs.shape[1]):
        fg = (y == c)
        if classes == "present" and not fg.any():
            continue
        errors = np.abs(fg.astype(np.float64) - probs[:, c])
        order = np.argsort(-errors, kind="stable")
        foreground = set(np.flatnonzero(fg).tolist())
        mispredicted, previous, total = set(), 0.0, 0.0
        for i in order:
            mispredicted.add(int(i))
            delta = len(mispredicted) / len(foreground | mispredicted)
            total += errors[i] * (delta - previous)
            previous = delta
        per_class.append(total)
    return np.mean(per_class) if per_class else 0.0


def _np_berman_lovasz_softmax(probas, labels, per_image=False, ignore=255):
    """Berman's reference `lovasz_softmax(probas, labels, classes="present",
    per_image, ignore)` (lovasz_losses.py, MIT licence) transcribed to NumPy:
    probas [B,H,W,K] (channels last here), labels [B,H,W]."""
    def lovasz_grad(gt_sorted):
        gts = gt_sorted.sum()
        intersection = gts - np.cumsum(gt_sorted)
        union = gts + np.cumsum(1.0 - gt_sorted)
        jaccard = 1.0 - intersection / union
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
        return jaccard

    def flatten(probas, labels):
        probas = probas.reshape(-1, probas.shape[-1])
        labels = labels.reshape(-1)
        valid = labels != ignore
        return probas[valid], labels[valid]

    def flat(probas, labels):
        if probas.size == 0:
            return 0.0  # "only void pixels": Berman's hinge returns 0 here
        losses = []
        for c in range(probas.shape[1]):
            fg = (labels == c).astype(np.float64)
            if fg.sum() == 0:  # classes="present"
                continue
            errors = np.abs(fg - probas[:, c])
            perm = np.argsort(-errors, kind="stable")
            losses.append(np.dot(errors[perm], lovasz_grad(fg[perm])))
        return np.mean(losses) if losses else 0.0

    if per_image:
        return np.mean([flat(*flatten(p[None], l[None])) for p, l in zip(probas, labels)])
    return flat(*flatten(probas, labels))


class CrossEntropyTest(tf.test.TestCase, parameterized.TestCase):

    def test_matches_tf_nn(self):
        labels, logits = _batch(0)
        y, z = _np_valid(labels, logits)
        expected = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(y, z))
        self.assertAllClose(losses.cross_entropy(labels, logits), expected, rtol=1e-6)

    def test_class_weights_are_a_weighted_mean(self):
        labels, logits = _batch(1)
        weights = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
        y, z = _np_valid(labels, logits)
        per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(y, z).numpy()
        expected = (weights[y] * per_pixel).sum() / weights[y].sum()
        got = losses.cross_entropy(labels, logits, class_weights=weights)
        self.assertAllClose(got, expected, rtol=1e-6)

    def test_label_smoothing_against_numpy(self):
        labels, logits = _batch(2)
        y, z = _np_valid(labels, logits)
        eps = 0.1
        target = np.full(z.shape, eps / K)
        target[np.arange(len(y)), y] += 1 - eps
        expected = -(target * np.log(_np_softmax(z))).sum(-1).mean()
        got = losses.cross_entropy(labels, logits, label_smoothing=eps)
        self.assertAllClose(got, expected, rtol=1e-5)


class FocalTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2.0, 0.25), (0.5, 1.0), (0.0, 0.25))
    def test_scalar_alpha_matches_keras(self, gamma, alpha):
        labels, logits = _batch(3)
        y, z = _np_valid(labels, logits)
        reference = keras.losses.CategoricalFocalCrossentropy(
            alpha=alpha, gamma=gamma, from_logits=True, reduction=None)
        expected = np.mean(reference(np.eye(K)[y], z))
        got = losses.focal_loss(labels, logits, gamma=gamma, alpha=alpha)
        self.assertAllClose(got, expected, rtol=1e-5)

    def test_default_alpha_does_not_rescale(self):
        """alpha None (the default) and 1.0 weight nothing: gamma 0 is
        cross-entropy, and "ce+focal" is the plain sum (not ce + focal / 4)."""
        labels, logits = _batch(14)
        ce = losses.cross_entropy(labels, logits)
        self.assertAllClose(losses.focal_loss(labels, logits, gamma=0.0), ce, rtol=1e-6)
        focal = losses.focal_loss(labels, logits)
        self.assertAllClose(losses.focal_loss(labels, logits, alpha=1.0), focal)
        self.assertAllClose(losses.focal_loss(labels, logits, alpha=0.25), 0.25 * focal,
                            rtol=1e-6)
        both = losses.get_loss("ce+focal", gamma=2.0)
        self.assertAllClose(both(labels, logits), ce + focal, rtol=1e-6)
        weighted = losses.get_loss("ce+focal", alpha=[1.0, 2.0, 1.0, 1.0])
        self.assertAllClose(
            weighted(labels, logits),
            ce + losses.focal_loss(labels, logits, alpha=[1.0, 2.0, 1.0, 1.0]), rtol=1e-6)

    def test_alpha_of_the_wrong_length_is_an_error(self):
        labels, logits = _batch(15)
        with self.assertRaisesRegex(ValueError, r"one value per class \(4\), got shape \(3,\)"):
            losses.focal_loss(labels, logits, alpha=[0.1, 0.2, 0.3])

    def test_per_class_alpha_against_numpy(self):
        labels, logits = _batch(4)
        alpha = np.array([0.1, 0.2, 0.3, 0.4])
        y, z = _np_valid(labels, logits)
        p = _np_softmax(z)[np.arange(len(y)), y]
        expected = np.mean(-alpha[y] * (1 - p) ** 2.0 * np.log(p))
        got = losses.focal_loss(labels, logits, gamma=2.0, alpha=alpha)
        self.assertAllClose(got, expected, rtol=1e-5)


class RegionLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(0.0, 1.0)
    def test_jaccard_against_numpy(self, smooth):
        labels, logits = _batch(5)
        y, z = _np_valid(labels, logits)
        p, t = _np_softmax(z), np.eye(K)[y]
        inter = (p * t).sum(0)
        union = (p + t - p * t).sum(0)
        expected = 1 - np.mean((inter + smooth) / (union + smooth))
        self.assertAllClose(losses.jaccard_loss(labels, logits, smooth=smooth),
                            expected, rtol=1e-5)

    def test_dice_against_numpy_with_class_weights(self):
        labels, logits = _batch(6)
        weights = np.array([1.0, 0.0, 2.0, 1.0])
        y, z = _np_valid(labels, logits)
        p, t = _np_softmax(z), np.eye(K)[y]
        dice = (2 * (p * t).sum(0) + 1.0) / (p.sum(0) + t.sum(0) + 1.0)
        expected = (weights * (1 - dice)).sum() / weights.sum()
        got = losses.dice_loss(labels, logits, class_weights=weights)
        self.assertAllClose(got, expected, rtol=1e-5)

    @parameterized.parameters(
        itertools.product([7, 8, 9], ["present", "all"]))
    def test_lovasz_against_paper(self, seed, classes):
        labels, logits = _batch(seed, shape=(2, 4, 5))
        labels[labels == 3] = 255  # class 3 absent: 'present' and 'all' differ
        expected = _np_lovasz_softmax(labels, logits, classes)
        got = losses.lovasz_softmax(labels, logits, classes=classes)
        self.assertAllClose(got, expected, rtol=1e-5, atol=1e-6)

    def test_lovasz_per_image_by_hand_against_berman(self):
        """Two 2x3 images, 3 classes: class 2 only in the second image, an
        ignored pixel in each; per image the first image averages classes 0
        and 1 only, over the batch class 2 counts its pixels in both."""
        labels = np.array([[[0, 0, 1], [1, 255, 0]],
                           [[2, 2, 0], [255, 1, 2]]], np.uint8)
        logits = np.array([[[[2, 0, 0], [0, 1, 0], [0, 0, 3]],
                            [[0, 2, 0], [9, 9, 9], [1, 1, 0]]],
                           [[[0, 0, 1], [1, 0, 2], [3, 0, 0]],
                            [[0, 0, 9], [0, 2, 1], [0, 1, 0]]]], np.float32)
        probas = _np_softmax(logits)
        for per_image in (False, True):
            expected = _np_berman_lovasz_softmax(probas, labels, per_image=per_image)
            got = losses.lovasz_softmax(labels, logits, per_image=per_image)
            self.assertAllClose(got, expected, rtol=1e-5, atol=1e-6, msg=str(per_image))
        # Per image is the mean of the images' own losses.
        one_by_one = [losses.lovasz_softmax(labels[i:i + 1], logits[i:i + 1]) for i in (0, 1)]
        self.assertAllClose(losses.lovasz_softmax(labels, logits, per_image=True),
                            np.mean(one_by_one), rtol=1e-6)
        self.assertNotAllClose(losses.lovasz_softmax(labels, logits, per_image=True),
                               losses.lovasz_softmax(labels, logits), rtol=1e-3)

    @parameterized.parameters(7, 8, 9)
    def test_lovasz_per_image_against_berman(self, seed):
        labels, logits = _batch(seed, shape=(3, 4, 5))
        labels[0][labels[0] == 1] = 255  # class 1 absent from the first image
        labels[2] = 255  # an image without a valid pixel counts 0 in the mean
        expected = _np_berman_lovasz_softmax(_np_softmax(logits), labels, per_image=True)
        fn = tf.function(functools.partial(losses.lovasz_softmax, per_image=True))
        logits = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            got = fn(labels, logits)
        self.assertAllClose(got, expected, rtol=1e-5, atol=1e-6)
        grad = tape.gradient(got, logits)
        self.assertAllEqual(grad[2], np.zeros_like(grad[2]))
        self.assertGreater(float(tf.reduce_max(tf.abs(grad[0]))), 0.0)

    def test_lovasz_perfect_prediction_is_near_zero_and_tf_function(self):
        labels, _ = _batch(10)
        logits = 20.0 * np.eye(K, dtype=np.float32)[np.where(labels == 255, 0, labels)]
        fn = tf.function(losses.lovasz_softmax)
        self.assertLess(float(fn(labels, logits)), 1e-6)
        _, noisy = _batch(10)
        self.assertAllClose(fn(labels, noisy), losses.lovasz_softmax(labels, noisy))


class SmpGoldenTest(tf.test.TestCase, parameterized.TestCase):
    """core.losses on the JSON's inputs against torch's cross-entropy and
    segmentation_models_pytorch's losses (float32 there, hence rtol 1e-5);
    the make script's docstring says where the definitions differ."""

    def _case(self, name):
        with open(GOLDEN, encoding="utf-8") as f:
            case = json.load(f)["cases"][name]
        labels = np.array(case["labels"], np.uint8)
        logits = np.array(case["logits"], np.float32)
        return case, labels, logits, case["values"]

    @parameterized.parameters("all_present", "absent", "uneven")
    def test_pixel_losses_match_torch_and_smp(self, name):
        case, labels, logits, want = self._case(name)
        weights = case["class_weights"]
        self.assertAllClose(losses.cross_entropy(labels, logits), want["ce"], rtol=1e-5)
        self.assertAllClose(losses.cross_entropy(labels, logits, class_weights=weights),
                            want["ce_class_weights"], rtol=1e-5)
        self.assertAllClose(losses.cross_entropy(labels, logits, label_smoothing=0.1),
                            want["ce_label_smoothing_0.1"], rtol=1e-5)
        for gamma in (2.0, 0.5):
            focal = losses.focal_loss(labels, logits, gamma=gamma)
            self.assertAllClose(focal, want[f"focal_gamma_{gamma}"], rtol=1e-5)
            # A scalar alpha (smp's softmax form has none) only rescales.
            self.assertAllClose(losses.focal_loss(labels, logits, gamma=gamma, alpha=0.25),
                                0.25 * want[f"focal_gamma_{gamma}"], rtol=1e-5)

    @parameterized.parameters("all_present", "absent", "uneven")
    def test_region_losses_match_smp(self, name):
        case, labels, logits, want = self._case(name)
        weights = np.array(case["class_weights"])
        present = np.zeros(K)
        present[case["present"]] = 1.0
        # smp's Dice is (I + s) / ((P + T) / 2 + s), ours (2 I + s) / (P + T + s):
        # smp's smooth=1 is ours 2. Its Jaccard smoothing is ours.
        dice = functools.partial(losses.dice_loss, smooth=2.0)
        for key, fn in (("dice", dice), ("jaccard", losses.jaccard_loss)):
            if present.all():  # the same definition
                self.assertAllClose(fn(labels, logits), want[key], rtol=1e-5)
                self.assertAllClose(fn(labels, logits, class_weights=weights),
                                    want[f"{key}_class_weights"], rtol=1e-5)
            else:
                # smp zeroes an absent class's term but keeps it in the mean.
                ours = fn(labels, logits, class_weights=present)
                self.assertAllClose(want[key], ours * present.sum() / K, rtol=1e-5)
                ours = fn(labels, logits, class_weights=weights * present)
                self.assertAllClose(want[f"{key}_class_weights"],
                                    ours * (weights * present).sum() / weights.sum(),
                                    rtol=1e-5)
                self.assertNotAllClose(fn(labels, logits), want[key], rtol=1e-3)

    @parameterized.parameters("all_present", "absent", "uneven")
    def test_lovasz_matches_berman_code_in_smp(self, name):
        _, labels, logits, want = self._case(name)
        self.assertAllClose(losses.lovasz_softmax(labels, logits), want["lovasz"],
                            rtol=1e-5)
        self.assertAllClose(losses.lovasz_softmax(labels, logits, per_image=True),
                            want["lovasz_per_image"], rtol=1e-5)


class StabilityTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters("ce", "focal", "jaccard", "dice", "lovasz")
    def test_finite_for_huge_logits(self, name):
        labels, logits = _batch(11, scale=1.0)
        logits = np.sign(logits) * 1e4
        logits = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = losses.LOSSES[name](labels, logits)
        grad = tape.gradient(loss, logits)
        self.assertTrue(np.isfinite(loss.numpy()))
        self.assertTrue(np.all(np.isfinite(grad.numpy())))
        self.assertGreater(float(loss), 0.0)  # wrong confident pixels cost something

    @parameterized.parameters("ce", "focal", "jaccard", "dice", "lovasz")
    def test_all_ignored_gives_zero_and_zero_gradient(self, name):
        _, logits = _batch(12)
        labels = np.full(logits.shape[:-1], 255, np.uint8)
        logits = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = losses.LOSSES[name](labels, logits, class_weights=[1.0, 2.0, 1.0, 1.0])
        grad = tape.gradient(loss, logits)
        self.assertEqual(float(loss), 0.0)
        self.assertAllEqual(grad, np.zeros_like(logits))


class GetLossTest(tf.test.TestCase):

    def test_weighted_sum(self):
        labels, logits = _batch(13)
        loss = losses.get_loss("0.5*ce+2*lovasz", class_weights=[1.0, 2.0, 1.0, 1.0],
                               label_smoothing=0.1)
        expected = (0.5 * losses.cross_entropy(labels, logits, label_smoothing=0.1,
                                               class_weights=[1.0, 2.0, 1.0, 1.0])
                    + 2.0 * losses.lovasz_softmax(labels, logits,
                                                  class_weights=[1.0, 2.0, 1.0, 1.0]))
        self.assertAllClose(loss(labels, logits), expected)
        self.assertEqual(sorted(loss.components(labels, logits)), ["ce", "lovasz"])
        plain = losses.get_loss("ce+jaccard")
        self.assertAllClose(plain(labels, logits),
                            losses.cross_entropy(labels, logits)
                            + losses.jaccard_loss(labels, logits))

    def test_errors_name_the_problem(self):
        with self.assertRaisesRegex(ValueError, "unknown loss 'bce'"):
            losses.get_loss("ce+bce")
        with self.assertRaisesRegex(ValueError, "cannot parse"):
            losses.get_loss("ce+*dice")
        with self.assertRaisesRegex(ValueError, r"gama"):
            losses.get_loss("focal", gama=2.0)


if __name__ == "__main__":
    tf.test.main()
