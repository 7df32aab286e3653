"""Test-wide TensorFlow set-up, applied before any test creates a tensor.

Two logical CPU devices let the distribution tests run a two-replica
MirroredStrategy on a machine without accelerators; every other test keeps
using /CPU:0 as usual.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:
    # Already initialised (e.g. a plugin touched TF first): the tests that
    # need two devices check for them and say so.
    pass


def pytest_collection_modifyitems(config, items):
    """tf.test.TestCase carries a `test_session` helper that pytest collects
    and TF skips as "Not a test"; drop it so skips in the summary are real."""
    kept = [item for item in items if item.name != "test_session"]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.name == "test_session"])
        items[:] = kept
