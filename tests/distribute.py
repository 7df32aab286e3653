"""The two-replica strategy the distribution tests share."""
import tensorflow as tf


def two_replica_strategy() -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over the two logical CPUs that tests/conftest.py makes.

    ReductionToOneDevice: every MirroredStrategy of a process starts its
    collective keys at the same value, so the collectives of strategies made
    by earlier tests would collide ("Shape mismatch in the collective
    instance").
    """
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        raise AssertionError("tests/conftest.py should provide 2 logical CPU devices")
    return tf.distribute.MirroredStrategy(
        [d.name for d in devices[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice())
