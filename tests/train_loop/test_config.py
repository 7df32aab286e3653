"""OptimConfig resolves the optimizer's default weight decay and names it in
the experiment name."""
import dataclasses

import tensorflow as tf

from train_loop.config import OptimConfig, TrainConfig, experiment_name


class OptimConfigTest(tf.test.TestCase):

    def test_weight_decay_default_depends_on_the_optimizer(self):
        # SGD's is the training default chosen on real imagery, not core.optim's 0.
        self.assertEqual(OptimConfig().weight_decay, 2e-3)
        self.assertEqual(OptimConfig(weight_decay=0.0).weight_decay, 0.0)
        self.assertEqual(OptimConfig(optimizer="adamw").weight_decay, 0.01)
        self.assertEqual(OptimConfig(optimizer="adamw", weight_decay=0.0).weight_decay, 0.0)
        self.assertEqual(dataclasses.asdict(OptimConfig(optimizer="adamw"))["weight_decay"], 0.01)
        with self.assertRaisesRegex(ValueError, "optimizer must be one of.*got 'adam'"):
            OptimConfig(optimizer="adam")

    def test_experiment_name_names_the_optimizer(self):
        def name(**optim):
            return experiment_name(TrainConfig(optim=OptimConfig(**optim)), patch_size=256,
                                   scale=1.0, batch_size=50)
        self.assertEqual(name(), "unet_input256_skip4_residual_convCenter_sgd_ce_jaccard_bs50_onecycle")
        self.assertIn("_sgdnesterov_", name(nesterov=True))
        self.assertEqual(name(optimizer="adamw"),
                         "unet_input256_skip4_residual_convCenter_adamw_ce_jaccard_bs50_onecycle")


if __name__ == "__main__":
    tf.test.main()
