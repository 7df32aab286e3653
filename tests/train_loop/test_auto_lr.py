"""A training config's LR range test (`lr_finder.sweep_config`, what
tools.lr_find and tools.train --max_lr=auto run) sweeps with the pretrained
encoder's parameter group as training does (lr multiplier, frozen steps),
and `lr_finder.auto_max_lr` takes find_lr's suggestion, gives the model back
untouched, and keeps a resumed run's recorded value without sweeping.
tools.train --max_lr=auto end to end: tests/tools/test_resume.py."""
import dataclasses
from unittest import mock

import numpy as np
import tensorflow as tf

from train_loop import build, lr_finder
from train_loop.config import EncoderConfig, LRSweepConfig, OptimConfig, TrainConfig, to_dict

SWEEP = LRSweepConfig(min_lr=0.05, max_lr=5.0, num_steps=4, smoothing=0.5, divergence=0.0)


class TwoPart(tf.Module):
    """logits = (images / 255 * enc) @ dec + b, where `enc` plays a pretrained
    encoder (`encoder_variables`, `encoder_frozen`: the UNet's interface to
    `build.add_encoder_group`), or a constant when not `encoder_trainable`."""

    def __init__(self, encoder_trainable=True):
        super().__init__()
        rng = np.random.default_rng(0)
        self.enc = tf.Variable(rng.uniform(0.5, 1.5, [3]).astype(np.float32),
                               trainable=encoder_trainable)
        self.dec = tf.Variable(rng.normal(size=[3, 2]).astype(np.float32))
        self.b = tf.Variable(np.zeros(2, np.float32))
        self.encoder_frozen = tf.Variable(0.0, trainable=False)

    @property
    def encoder_variables(self):
        return (self.enc,) if self.enc.trainable else ()

    def __call__(self, images, training=False):
        x = tf.cast(images, tf.float32) / 255.0 * self.enc
        return tf.einsum("bhwc,ck->bhwk", x, self.dec) + self.b


def batches():
    """One learnable batch, repeated: the label is 1 where band 0 is bright."""
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, [2, 8, 8, 3]).astype(np.float32)
    labels = (images[..., 0] > 127).astype(np.uint8)
    return iter(tf.data.Dataset.from_tensors({"image": images, "label": labels}).repeat())


def config(max_lr=0.1, sweep=None, **encoder):
    return TrainConfig(loss="ce", optim=OptimConfig(max_lr=max_lr, max_lr_auto=sweep),
                       encoder=EncoderConfig(**encoder))


class SweepConfigTest(tf.test.TestCase):

    def test_encoder_group_as_in_training(self):
        def losses(model, cfg):
            return lr_finder.sweep_config(cfg, model, batches(), SWEEP).losses

        # Reference: the encoder is a constant, only dec and b train.
        constant = losses(TwoPart(encoder_trainable=False), config())
        # lr multiplier 0: the group never moves, the curve is the reference's.
        self.assertAllClose(losses(TwoPart(), config(lr_multiplier=0.0)), constant,
                            rtol=1e-6, atol=0)
        # Frozen for 2 steps: the losses of steps 0-2 (after 2 updates) are
        # the reference's, step 3's (after the encoder's first update) is not.
        frozen = losses(TwoPart(), config(freeze_steps=2))
        self.assertAllClose(frozen[:3], constant[:3], rtol=1e-6, atol=0)
        self.assertGreater(abs(frozen[3] - constant[3]), 1e-4)


class AutoMaxLrTest(tf.test.TestCase):

    def test_takes_find_lrs_suggestion_and_leaves_the_model_untouched(self):
        found, real = [], lr_finder.find_lr

        def spy(*args, **kwargs):
            found.append(real(*args, **kwargs))
            return found[-1]

        model, lines = TwoPart(), []
        model(tf.zeros([1, 8, 8, 3]))
        before = [v.numpy().copy() for v in model.variables]
        auto = config(max_lr=None, sweep=SWEEP, freeze_steps=1)
        with mock.patch.object(lr_finder, "find_lr", spy):
            chosen = lr_finder.auto_max_lr(auto, model_fn=lambda: model, batches_fn=batches,
                                           log=lines.append)
        (result,) = found
        self.assertLen(result.lrs, 4)
        self.assertEqual(chosen.optim.max_lr, result.suggested_lr)
        # Only max_lr changed; the sweep's record stays.
        self.assertEqual(dataclasses.replace(chosen, optim=dataclasses.replace(
            chosen.optim, max_lr=None)), auto)
        self.assertEqual(to_dict(chosen)["optim"]["max_lr_auto"]["num_steps"], 4)
        self.assertEqual(lines[-1], "max_lr=auto: LR range test over 4 steps from 0.05 to 5 "
                                    f"suggested {result.suggested_lr!r}")
        for var, value in zip(model.variables, before):
            self.assertAllEqual(var, value)

    def test_a_resumed_run_keeps_its_recorded_value_without_sweeping(self):
        def no_sweep():
            raise AssertionError("a resumed run must not sweep")

        auto, lines = config(max_lr=None, sweep=SWEEP), []
        recorded = to_dict(config(max_lr=0.37, sweep=SWEEP).optim)
        kept = lr_finder.auto_max_lr(auto, model_fn=no_sweep, batches_fn=no_sweep,
                                     recorded=recorded, log=lines.append)
        self.assertEqual((kept.optim.max_lr, kept.optim.max_lr_auto), (0.37, SWEEP))
        self.assertIn("max_lr 0.37 was chosen by its LR range test; keeping it", lines[-1])
        # Other sweep flags now: still the recorded value, said so.
        other = config(max_lr=None, sweep=dataclasses.replace(SWEEP, num_steps=50))
        kept = lr_finder.auto_max_lr(other, model_fn=no_sweep, batches_fn=no_sweep,
                                     recorded=recorded, log=lines.append)
        self.assertEqual((kept.optim.max_lr, kept.optim.max_lr_auto), (0.37, SWEEP))
        self.assertIn("the sweep flags now differ", lines[-1])
        # A run started with a given rate keeps it, recorded as given.
        given = to_dict(config(max_lr=0.05).optim)
        kept = lr_finder.auto_max_lr(auto, model_fn=no_sweep, batches_fn=no_sweep,
                                     recorded=given, log=lines.append)
        self.assertEqual((kept.optim.max_lr, kept.optim.max_lr_auto), (0.05, None))
        self.assertIn("was given when it started", lines[-1])
        # A given rate needs nothing.
        explicit = config(max_lr=0.2)
        self.assertIs(lr_finder.auto_max_lr(explicit, model_fn=no_sweep, batches_fn=no_sweep),
                      explicit)

    def test_an_unchosen_rate_is_refused_where_it_would_be_used(self):
        with self.assertRaisesRegex(ValueError, "max_lr is None without max_lr_auto"):
            OptimConfig(max_lr=None)
        with self.assertRaisesRegex(ValueError, "not chosen yet .*auto_max_lr"):
            build.make_optimizer(config(max_lr=None, sweep=SWEEP))


if __name__ == "__main__":
    tf.test.main()
