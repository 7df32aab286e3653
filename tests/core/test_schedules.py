"""Schedules against hand-computed values and PyTorch's schedulers (through
golden/schedules_golden.json, made by golden/make_schedules_golden.py)."""
import inspect
import json
import math
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import schedules
from train_loop.config import OptimConfig

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                      "schedules_golden.json")


def _golden():
    with open(GOLDEN, encoding="utf-8") as f:
        return json.load(f)


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

    @parameterized.parameters("linear", "cos")
    def test_ends_at_the_final_values_and_stays(self, anneal):
        # T=100: the last step is 99, where lr = a_min = 4e-6 and momentum =
        # max_momentum; later steps keep them (linear extrapolation to step
        # 100 would give 1 + (4e-6 - 1) * 71 / 70 < 0).
        steps = tf.constant([99, 100, 101, 10_000], tf.int64)
        lr, momentum = schedules.one_cycle(steps, 100, 1.0, anneal=anneal)
        self.assertAllClose(lr, [4e-6] * 4, rtol=1e-6)
        self.assertAllClose(momentum, [0.95] * 4, rtol=1e-6)
        lr, _ = schedules.one_cycle(tf.range(300), 100, 1.0, anneal=anneal)
        self.assertGreaterEqual(float(tf.reduce_min(lr)), np.float32(4e-6))

    def test_inside_tf_function(self):
        step = tf.Variable(0, dtype=tf.int64)
        fn = tf.function(lambda: schedules.one_cycle(step, 100, 1.0))
        step.assign(29)
        self.assertAllClose(fn(), (1.0, 0.85))

    @parameterized.parameters(range(5))
    def test_matches_torch_one_cycle_lr(self, index):
        case = _golden()["one_cycle"][index]
        args = dict(case["args"])
        total_steps, max_lr = args.pop("total_steps"), args.pop("max_lr")
        args["anneal"] = args.pop("anneal_strategy")
        lr, momentum = schedules.one_cycle(tf.range(total_steps), total_steps, max_lr,
                                           **args)
        self.assertAllClose(lr, case["lrs"], rtol=1e-6, atol=1e-9)
        self.assertAllClose(momentum, case["momentums"], rtol=1e-6)
        # One step past the end torch extrapolates: linearly below the final
        # value (negative for the first two linear cases); ours stays at it.
        past, _ = schedules.one_cycle(total_steps, total_steps, max_lr, **args)
        self.assertAllClose(past, case["lrs"][-1], rtol=1e-6)
        if args["anneal"] == "linear":
            self.assertLess(case["lr_at_total_steps"], case["lrs"][-1])
            self.assertEqual(case["lr_at_total_steps"] < 0, index in (1, 2))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "leaves a phase empty"):
            schedules.one_cycle(0, 3, 1.0)
        with self.assertRaisesRegex(ValueError, "anneal must be"):
            schedules.one_cycle(0, 100, 1.0, anneal="exp")

    def test_min_steps_is_the_shortest_run_one_cycle_takes(self):
        for pct, shortest in ((0.1, 11), (0.25, 5), (0.3, 4), (1 / 3, 4), (0.5, 3), (0.9, 2)):
            self.assertEqual(schedules.one_cycle_min_steps(pct), shortest, pct)
            self.assertGreater(pct * shortest, 1.0)
            self.assertLessEqual(pct * (shortest - 1), 1.0)
            lr, _ = schedules.one_cycle(0, shortest, 1.0, pct_start=pct)
            self.assertTrue(np.isfinite(float(lr)))
            with self.assertRaisesRegex(ValueError, "leaves a phase empty"):
                schedules.one_cycle(0, shortest - 1, 1.0, pct_start=pct)


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


class PlateauTest(tf.test.TestCase, parameterized.TestCase):

    def _plateau(self, lr=1.0):
        return schedules.ReduceOnPlateau(lr, factor=0.5, patience=2, cooldown=1,
                                         min_lr=0.2, min_delta=0.01)

    def test_sequence_by_hand(self):
        plateau = self._plateau()
        self.assertAllClose([plateau.update(m) for m in METRICS], EXPECTED_LR)

    @parameterized.parameters(range(3))
    def test_matches_torch_reduce_lr_on_plateau(self, index):
        """ReduceLROnPlateau(threshold_mode="abs"): min_delta is its threshold."""
        case = _golden()["plateau"][index]
        args = dict(case["args"])
        args["min_delta"] = args.pop("threshold")
        plateau = schedules.ReduceOnPlateau(case["initial_lr"], **args)
        self.assertAllClose([plateau.update(m) for m in case["metrics"]], case["lrs"],
                            rtol=1e-6)

    def test_defaults_are_the_configs(self):
        """One set of plateau defaults: the trainer's config and the class agree."""
        params = inspect.signature(schedules.ReduceOnPlateau).parameters
        config = OptimConfig()
        self.assertEqual(
            {k: params[k].default for k in ("factor", "patience", "cooldown", "min_lr",
                                            "min_delta")},
            dict(factor=config.plateau_factor, patience=config.plateau_patience,
                 cooldown=config.plateau_cooldown, min_lr=config.min_lr,
                 min_delta=config.min_delta))

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
