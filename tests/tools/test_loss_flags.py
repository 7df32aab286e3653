"""--focal_alpha and --lovasz_per_image: flags -> TrainConfig -> the loss the
trainer builds (TrainConfig.loss_kwargs, used by train and lr_find)."""
import numpy as np
import tensorflow as tf
from absl import flags

from core import losses
from tests.helpers import parse_train_config
from train_loop.config import TrainConfig


def _parse(args):
    """The config's loss fields for a command line, or the error."""
    try:
        config = parse_train_config(args)
    except (flags.Error, ValueError) as e:
        return ["error", str(e)]
    return [config.loss, config.focal_alpha, config.lovasz_per_image]


def _batch(seed=0, num_classes=6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=(2, 4, 5)).astype(np.uint8)
    labels[0, 0] = 255
    logits = rng.standard_normal((2, 4, 5, num_classes)).astype(np.float32)
    return labels, logits


class LossConfigTest(tf.test.TestCase):

    def test_loss_kwargs_go_to_the_terms_that_take_them(self):
        labels, logits = _batch()
        config = TrainConfig(loss="ce+focal", focal_gamma=1.0, focal_alpha=(0.5,))
        self.assertEqual(config.loss_kwargs(),
                         {"class_weights": None, "gamma": 1.0, "alpha": 0.5})
        built = losses.get_loss(config.loss, **config.loss_kwargs())
        self.assertAllClose(built(labels, logits),
                            losses.cross_entropy(labels, logits)
                            + 0.5 * losses.focal_loss(labels, logits, gamma=1.0), rtol=1e-6)
        per_class = (1.0, 2.0, 1.0, 1.0, 3.0, 1.0)
        config = TrainConfig(loss="focal", focal_alpha=per_class)
        built = losses.get_loss(config.loss, **config.loss_kwargs())
        self.assertAllClose(built(labels, logits),
                            losses.focal_loss(labels, logits, alpha=list(per_class)))
        # The default focal term is not rescaled: ce+focal is the plain sum.
        config = TrainConfig(loss="ce+focal")
        self.assertNotIn("alpha", config.loss_kwargs())
        config = TrainConfig(loss="0.5*ce+1.0*Lovasz", lovasz_per_image=True)
        self.assertEqual(config.loss_kwargs(), {"class_weights": None, "per_image": True})
        built = losses.get_loss(config.loss, **config.loss_kwargs())
        self.assertAllClose(built(labels, logits),
                            0.5 * losses.cross_entropy(labels, logits)
                            + losses.lovasz_softmax(labels, logits, per_image=True))
        self.assertEqual(TrainConfig().loss_kwargs(), {"class_weights": None})

    def test_an_option_without_its_term_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "focal_alpha .* loss 'ce' has no focal term"):
            TrainConfig(loss="ce", focal_alpha=(0.25,))
        with self.assertRaisesRegex(ValueError, "lovasz_per_image .* no lovasz term"):
            TrainConfig(loss="ce+jaccard", lovasz_per_image=True)

    def test_flags(self):
        cases = [["--loss=ce+focal", "--focal_alpha=0.25"],
                 ["--loss=focal", "--focal_alpha=1,2,1,1,3,1"],
                 ["--loss=lovasz", "--lovasz_per_image"],
                 ["--loss=ce"],
                 ["--loss=focal", "--focal_alpha=1,2"],
                 ["--loss=ce", "--focal_alpha=0.25"],
                 ["--loss=ce", "--lovasz_per_image"],
                 ["--loss=focal", "--focal_alpha=0"]]
        out = [_parse(args) for args in cases]
        self.assertEqual(out[:4], [["ce+focal", (0.25,), False],
                                   ["focal", (1.0, 2.0, 1.0, 1.0, 3.0, 1.0), False],
                                   ["lovasz", None, True],
                                   ["ce", None, False]])
        self.assertEqual(out[4][0], "error")
        self.assertIn("--focal_alpha has 2 values; give one, or one per class (6)", out[4][1])
        self.assertIn("--focal_alpha needs a focal term in --loss", out[5][1])
        self.assertIn("--lovasz_per_image a lovasz term", out[6][1])
        self.assertIn("--focal_alpha must be positive floats", out[7][1])


if __name__ == "__main__":
    tf.test.main()
