"""Test-wide set-up, applied before any test creates a tensor or a file.

Two logical CPU devices let the distribution tests run a two-replica
MirroredStrategy on a machine without accelerators; every other test keeps
using /CPU:0 as usual. The run's temporary files go to one folder, removed
when the run ends.
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Every temporary folder of the run, the tests' own and those of the binaries
# they start, goes under one scratch folder removed when the run ends: a run
# writes hundreds of MB of stores, checkpoints and exports, which would
# otherwise pile up in /tmp run after run. Registered before TensorFlow's own
# clean-up, so that one (atexit is last-in first-out) still finds its folder.
_scratch = tempfile.mkdtemp(prefix="ortholoop-tests-")
tempfile.tempdir = _scratch
os.environ["TMPDIR"] = _scratch
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)

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
