"""The outer loop's callbacks driven by a planted validation sequence."""
import os

import tensorflow as tf

from core import optim, precision, schedules
from train_loop import controller
from train_loop.state import TrainState
from tests.helpers import PixelLinear


def _state(plateau_patience=None, early_patience=None):
    model = PixelLinear(3, 3)
    opt = optim.SGD(0.1, momentum=0.9)
    plateau = early = None
    if plateau_patience is not None:
        plateau = schedules.ReduceOnPlateau(opt.learning_rate, factor=0.5,
                                            patience=plateau_patience, min_delta=1e-4)
    if early_patience is not None:
        early = schedules.EarlyStopping(patience=early_patience, min_delta=1e-4)
    return TrainState.create(model, opt, precision.DynamicLossScale.for_policy("float32"),
                             plateau, early)


class AfterEvaluationTest(tf.test.TestCase):

    def test_best_checkpoint_and_plateau_follow_the_planted_sequence(self):
        state = _state(plateau_patience=1)
        best_dir = os.path.join(self.get_temp_dir(), "best")
        best = tf.train.CheckpointManager(state.checkpoint(), best_dir, max_to_keep=1)
        planted = [0.5, 0.6, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7, 0.7]
        lrs, saved_at, lines = [], [], []
        for step, miou in enumerate(planted, start=1):
            stop = controller.after_evaluation(state, miou, step, best, log=lines.append)
            self.assertFalse(stop)
            lrs.append(round(float(state.optimizer.learning_rate.numpy()), 6))
            if best.latest_checkpoint and best.latest_checkpoint.endswith(f"-{step}"):
                saved_at.append(step)
        # Improvements at evaluations 1, 2 and 6; patience 1 means the lr
        # halves at the second evaluation in a row without improvement.
        self.assertEqual(saved_at, [1, 2, 6])
        self.assertEqual(lrs, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025])
        self.assertAllClose(state.best_metric.numpy(), 0.7)
        self.assertTrue(any("plateau" in line for line in lines))
        # The best checkpoint holds the weights and the best score.
        restored = _state(plateau_patience=1)
        restored.checkpoint().read(best.latest_checkpoint).expect_partial()
        self.assertAllClose(restored.best_metric.numpy(), 0.7)

    def test_early_stopping_after_patience_evaluations_without_improvement(self):
        state = _state(early_patience=3)
        best = tf.train.CheckpointManager(state.checkpoint(),
                                          os.path.join(self.get_temp_dir(), "b"), max_to_keep=1)
        planted = [0.5, 0.6, 0.6, 0.6, 0.55, 0.9]
        stops = [controller.after_evaluation(state, m, s, best, log=lambda _: None)
                 for s, m in enumerate(planted, start=1)]
        self.assertEqual(stops, [False, False, False, False, True, False])

    def test_plateau_and_early_stopping_state_survive_a_checkpoint(self):
        state = _state(plateau_patience=5, early_patience=4)
        best = tf.train.CheckpointManager(state.checkpoint(),
                                          os.path.join(self.get_temp_dir(), "c"), max_to_keep=1)
        for step, miou in enumerate([0.5, 0.4, 0.4], start=1):
            controller.after_evaluation(state, miou, step, best, log=lambda _: None)
        path = state.checkpoint().write(os.path.join(self.get_temp_dir(), "state"))
        resumed = _state(plateau_patience=5, early_patience=4)
        resumed.checkpoint().read(path).expect_partial()
        # Two bad evaluations were recorded before the checkpoint; two more
        # after the restore reach patience 4.
        stops = [controller.after_evaluation(resumed, 0.4, s, best, log=lambda _: None)
                 for s in (4, 5)]
        self.assertEqual(stops, [False, True])


if __name__ == "__main__":
    tf.test.main()
