"""--optimizer=adamw's flags resolve to AdamW's defaults and refuse SGD-only
options (parsed in-process on a copy of the flags). Its exact resume through
the binary is test_train's."""
import copy

import tensorflow as tf
from absl import flags

from tools import train_flags


def _optim(args):
    """The OptimConfig for a command line, or the error's text."""
    values = copy.deepcopy(flags.FLAGS)
    try:
        values(["train", "--train_steps=10"] + args)
        return train_flags.train_config_from_flags(values, 1, 6).optim
    except (flags.Error, ValueError) as err:
        return str(err)


class TrainAdamWFlagsTest(tf.test.TestCase):

    def test_flags_resolve_adamw_and_refuse_nesterov(self):
        o = _optim(["--optimizer=adamw", "--adam_beta_2=0.99"])
        self.assertEqual((o.optimizer, o.weight_decay, o.momentum, o.adam_beta_2, o.adam_epsilon),
                         ("adamw", 0.01, 0.9, 0.99, 1e-08))
        self.assertEqual(_optim(["--optimizer=sgd"]).weight_decay, 0.0)
        self.assertIn("--nesterov is an sgd option", _optim(["--optimizer=adamw", "--nesterov"]))


if __name__ == "__main__":
    tf.test.main()
