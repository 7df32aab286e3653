"""tools.train's optimizer, schedule and augmentation flags, parsed in-process
on a copy of the flags: the defaults chosen on real imagery (SGD weight
decay 2e-3, brightness/contrast augmentation); --optimizer=adamw resolves to
AdamW's defaults and refuses SGD-only options (its exact resume through the
binary is test_train's); a run too short for one-cycle's warm-up is one
clear error."""
import tensorflow as tf
from absl import flags

from tests.helpers import parse_train_config, parse_train_flags
from tools import data_flags


def _optim(args, steps_per_epoch=1):
    """The OptimConfig for a command line, or the error's text."""
    try:
        return parse_train_config(args, steps_per_epoch).optim
    except (flags.Error, ValueError) as err:
        return str(err)


class TrainFlagsTest(tf.test.TestCase):

    def test_flags_resolve_adamw_and_refuse_nesterov(self):
        o = _optim(["--optimizer=adamw", "--adam_beta_2=0.99"])
        self.assertEqual((o.optimizer, o.weight_decay, o.momentum, o.adam_beta_2, o.adam_epsilon),
                         ("adamw", 0.01, 0.9, 0.99, 1e-08))
        self.assertEqual(_optim(["--optimizer=sgd"]).weight_decay, 2e-3)
        self.assertEqual(_optim(["--optimizer=sgd", "--weight_decay=0"]).weight_decay, 0.0)
        self.assertIn("--nesterov is an sgd option", _optim(["--optimizer=adamw", "--nesterov"]))

    def test_brightness_and_contrast_augmentation_on_by_default(self):
        def augment(args):
            return data_flags.augment_config_from_flags(parse_train_flags(args))
        default = augment([])
        self.assertEqual((default.brightness, default.contrast), (0.15, 0.3))
        # The other photometric knobs stay off; 0 turns either off.
        self.assertEqual((default.saturation, default.hue, default.gamma, default.noise_std),
                         (0.0, 0.0, 0.0, 0.0))
        off = augment(["--aug_brightness=0", "--aug_contrast=0"])
        self.assertEqual((off.brightness, off.contrast), (0.0, 0.0))

    def test_one_cycle_needs_a_warm_up_longer_than_one_step(self):
        # 0.3 * 4 = 1.2 steps of warm-up is the shortest core.schedules.one_cycle takes.
        self.assertEqual(_optim(["--train_steps=4"]).pct_start, 0.3)
        self.assertEqual(
            _optim(["--train_steps=3"]),
            "--train_steps=3 is too short for --schedule=one_cycle with --pct_start=0.3: its "
            "warm-up needs pct_start * steps > 1, at least 4 steps; train longer or use "
            "--schedule=constant")
        self.assertIn("--epochs=1.0 (2 steps) is too short",
                      _optim(["--epochs=1"], steps_per_epoch=2))
        self.assertIn("at least 11 steps", _optim(["--train_steps=10", "--pct_start=0.1"]))
        self.assertEqual(_optim(["--train_steps=1", "--schedule=constant"]).schedule, "constant")


if __name__ == "__main__":
    tf.test.main()
