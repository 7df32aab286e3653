"""Schedules against hand-computed values and, where installed, PyTorch."""
import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import schedules

try:
    import torch
except ImportError:  # the PyTorch comparisons need it; the hand values do not
    torch = None


def _torch_one_cycle(total_steps, max_lr, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr,
                                                total_steps=total_steps, **kwargs)
    lrs, moms = [], []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return np.array(lrs), np.array(moms)


class OneCycleTest(tf.test.TestCase, parameterized.TestCase):
    # T=100, max_lr=1: a0 = 0.04, a_min = 4e-6, phase 1 ends at step 29,
    # phase 2 at 99.

    def test_boundaries_and_midpoints_by_hand(self):
        steps = tf.constant([0, 29, 64, 99], tf.int64)
        lr, momentum = schedules.one_cycle(steps, 100, 1.0)
        self.assertAllClose(lr, [0.04, 1.0, (1.0 + 4e-6) / 2, 4e-6], rtol=1e-6)
        self.assertAllClose(momentum, [0.95, 0.85, 0.90, 0.95], rtol=1e-6)
        # Half-way through phase 1 (step 14.5) cosine gives the average.
        lr, momentum = schedules.one_cycle(tf.constant(14.5), 100, 1.0)
        self.assertAllClose([lr, momentum], [0.52, 0.90], rtol=1e-6)

    def test_in_between_by_hand(self):
        lr, momentum = schedules.one_cycle(10, 100, 1.0)
        pct = 10 / 29
        self.assertAllClose(lr, 1.0 + (0.04 - 1.0) / 2 * (math.cos(math.pi * pct) + 1))
        self.assertAllClose(momentum, 0.85 + 0.05 * (math.cos(math.pi * pct) + 1))
        lr, momentum = schedules.one_cycle(10, 100, 1.0, anneal="linear")
        self.assertAllClose(lr, 0.04 + 0.96 * pct)
        self.assertAllClose(momentum, 0.95 - 0.10 * pct)
        lr, _ = schedules.one_cycle(80, 100, 1.0, anneal="linear")
        self.assertAllClose(lr, 1.0 + (4e-6 - 1.0) * 51 / 70)
        # Past the end: clamped to T = 100.
        lr_end, _ = schedules.one_cycle(100, 100, 1.0, anneal="linear")
        lr_far, _ = schedules.one_cycle(10_000, 100, 1.0, anneal="linear")
        self.assertAllClose([lr_end, lr_far], [1.0 + (4e-6 - 1.0) * 71 / 70] * 2)

    def test_inside_tf_function(self):
        step = tf.Variable(0, dtype=tf.int64)
        fn = tf.function(lambda: schedules.one_cycle(step, 100, 1.0))
        step.assign(29)
        self.assertAllClose(fn(), (1.0, 0.85))

    @parameterized.parameters(
        dict(total_steps=100, max_lr=1.0),
        dict(total_steps=37, max_lr=0.02, pct_start=0.25, anneal_strategy="linear"),
        dict(total_steps=250, max_lr=3.0, div_factor=10.0, final_div_factor=100.0,
             base_momentum=0.8, max_momentum=0.9))
    def test_matches_pytorch(self, total_steps, max_lr, **kwargs):
        if torch is None:
            self.skipTest("PyTorch is not installed")
        expected_lr, expected_momentum = _torch_one_cycle(total_steps, max_lr, **kwargs)
        if "anneal_strategy" in kwargs:
            kwargs["anneal"] = kwargs.pop("anneal_strategy")
        lr, momentum = schedules.one_cycle(tf.range(total_steps), total_steps, max_lr,
                                           **kwargs)
        self.assertAllClose(lr, expected_lr, rtol=1e-6, atol=1e-9)
        self.assertAllClose(momentum, expected_momentum, rtol=1e-6)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "leaves a phase empty"):
            schedules.one_cycle(0, 3, 1.0)
        with self.assertRaisesRegex(ValueError, "anneal must be"):
            schedules.one_cycle(0, 100, 1.0, anneal="exp")


class SimpleSchedulesTest(tf.test.TestCase):

    def test_lr_range(self):
        lr = schedules.lr_range(tf.constant([0, 2, 5, 10, 12]), 11, 1e-4, 1.0)
        self.assertAllClose(lr, [1e-4, 1e-4 * 10 ** 0.8, 1e-2, 1.0, 1.0], rtol=1e-6)
        step = tf.Variable(5, dtype=tf.int64)
        fn = tf.function(lambda: schedules.lr_range(step, 11, 1e-4, 1.0))
        self.assertAllClose(fn(), 1e-2, rtol=1e-6)

    def test_constant_and_step_decay(self):
        self.assertAllClose(schedules.constant(7, 0.3), 0.3)
        values = [schedules.step_decay(s, [10, 20], [1.0, 0.1, 0.01])
                  for s in (0, 9, 10, 19, 20, 1000)]
        self.assertAllClose(values, [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
        with self.assertRaisesRegex(ValueError, "one more value"):
            schedules.step_decay(0, [10], [1.0])


METRICS = [0.5, 0.6, 0.605, 0.6, 0.59, 0.58, 0.7, 0.69, 0.68, 0.67, 0.66, 0.65,
           0.64, 0.63, 0.62, 0.61]
# Traced by hand: factor 0.5, patience 2, cooldown 1, min_lr 0.2, min_delta 0.01.
EXPECTED_LR = [1, 1, 1, 1, .5, .5, .5, .5, .5, .25, .25, .25, .25, .2, .2, .2]


class PlateauTest(tf.test.TestCase):

    def _plateau(self, lr=1.0):
        return schedules.ReduceOnPlateau(lr, factor=0.5, patience=2, cooldown=1,
                                         min_lr=0.2, min_delta=0.01)

    def test_sequence_by_hand(self):
        plateau = self._plateau()
        self.assertAllClose([plateau.update(m) for m in METRICS], EXPECTED_LR)

    def test_matches_pytorch(self):
        if torch is None:
            self.skipTest("PyTorch is not installed")
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=0.5, patience=2, cooldown=1, min_lr=0.2,
            threshold=0.01, threshold_mode="abs")
        expected = []
        for m in METRICS:
            reference.step(m)
            expected.append(opt.param_groups[0]["lr"])
        plateau = self._plateau()
        self.assertAllClose([plateau.update(m) for m in METRICS], expected)

    def test_checkpoint_resumes_and_shares_optimizer_variable(self):
        lr_var = tf.Variable(1.0)
        plateau = self._plateau(lr_var)
        for m in METRICS[:8]:
            plateau.update(m)
        path = tf.train.Checkpoint(p=plateau).save(self.get_temp_dir() + "/p")
        fresh = self._plateau(tf.Variable(123.0))
        tf.train.Checkpoint(p=fresh).restore(path).assert_consumed()
        rest = [fresh.update(m) for m in METRICS[8:]]
        self.assertAllClose(rest, EXPECTED_LR[8:])
        self.assertAllClose(fresh.learning_rate, 0.2)
        self.assertAllClose(lr_var, 0.5)  # the original saw 8 evaluations


class EarlyStoppingTest(tf.test.TestCase):

    def test_sequence_and_checkpoint(self):
        stop = schedules.EarlyStopping(patience=3, min_delta=0.01)
        metrics = [0.5, 0.52, 0.525, 0.529, 0.528]
        decisions = [stop.update(m) for m in metrics[:5]]
        self.assertEqual(decisions, [False, False, False, False, True])
        self.assertAllClose(stop.best, 0.52)
        fresh = schedules.EarlyStopping(patience=3, min_delta=0.01)
        path = tf.train.Checkpoint(s=stop).save(self.get_temp_dir() + "/s")
        tf.train.Checkpoint(s=fresh).restore(path).assert_consumed()
        self.assertEqual(int(fresh.num_bad), 3)
        self.assertFalse(fresh.update(0.6))  # an improvement resets patience

    def test_min_mode(self):
        stop = schedules.EarlyStopping(patience=1, mode="min")
        self.assertEqual([stop.update(m) for m in (1.0, 0.9, 0.95)], [False, False, True])
        with self.assertRaisesRegex(ValueError, "mode must be"):
            schedules.EarlyStopping(patience=1, mode="maximum")


if __name__ == "__main__":
    tf.test.main()
