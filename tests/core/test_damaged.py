"""Damaged exports and checkpoints are named in one line; killed exports
leave no temporary folder behind (or the next export removes it).

A cheap convolution model is exported once; copies are damaged the ways
disks and killed copies damage them (truncated, emptied, overwritten).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from unittest import mock

import tensorflow as tf
from absl.testing import parameterized

from core import export
from tests.helpers import info_for, random_conv
from tools import outputs
from train_loop import workdir as workdir_lib


def damage(path, how):
    with open(path, "rb") as f:
        data = f.read()
    data = {"truncated": data[:len(data) // 2], "empty": b"",
            "overwritten": b"\x12\x34not a tensorflow file" * 8}[how]
    with open(path, "wb") as f:
        f.write(data)


class DamagedTest(tf.test.TestCase, parameterized.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.model = random_conv(size=3, channels=3, classes=3, depth=3)
        cls.export_dir = export.export_saved_model(
            cls.model, os.path.join(cls.root, "export"), info_for(cls.model))
        # A workdir whose config describes a 3-class U-Net (restore_model builds it).
        cls.workdir = os.path.join(cls.root, "run")
        from layers import UNet  # pylint: disable=import-outside-toplevel
        kwargs = {"num_classes": 3, "in_channels": 3, "filters": 4, "depth": 3}
        unet = UNet(**kwargs)
        unet(tf.zeros([1, 8, 8, 3]), training=False)
        workdir_lib.write_config(cls.workdir, {"model": kwargs, "data": {}})
        for which in ("best", "latest"):
            tf.train.CheckpointManager(tf.train.Checkpoint(model=unet),
                                       workdir_lib.checkpoint_dir(cls.workdir, which), 1).save()

    def copy(self, src):
        dst = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), os.path.basename(src))
        shutil.copytree(src, dst)
        return dst

    @parameterized.parameters(
        ("saved_model.pb", "truncated", "Error parsing message"),
        ("saved_model.pb", "empty", "it holds no MetaGraph"),
        ("variables/variables.data-00000-of-00001", "truncated", "Read less bytes"),
        ("variables/variables.index", "overwritten", "not an sstable"))
    def test_damaged_export(self, name, how, detail):
        copy = self.copy(self.export_dir)
        damage(os.path.join(copy, name), how)
        with self.assertRaises(export.ExportError) as caught:
            export.LoadedModel(copy)
        message = str(caught.exception)
        self.assertStartsWith(message, f"{os.path.join(copy, name)} is damaged (cannot be "
                                       f"read: ")
        self.assertIn(detail, message)
        self.assertEndsWith(message, "; export the model again")
        self.assertNotIn("\n", message)
        export.LoadedModel(self.export_dir)  # the original still loads

    @parameterized.parameters(
        ("best/ckpt-1.index", "truncated", "best", "not an sstable"),
        ("best/ckpt-1.data-00000-of-00001", "empty", "best", "Read less bytes"),
        ("latest/ckpt-1.data-00000-of-00001", "overwritten", "latest", "Checksum does not match"))
    def test_damaged_checkpoint(self, name, how, which, detail):
        copy = self.copy(self.workdir)
        damage(os.path.join(copy, "checkpoints", name), how)
        with self.assertRaisesRegex(
                workdir_lib.WorkdirError,
                f"^{os.path.join(copy, 'checkpoints', name)} is damaged \\(cannot be read: "
                f".*{detail}.*\\); use the other --checkpoint \\(best, latest\\) or train again$"):
            workdir_lib.restore_model(copy, which)

    def test_damaged_state_file_is_not_skipped(self):
        # TensorFlow ignores an unparsable `checkpoint` file; `best` must not
        # then silently become `latest`.
        copy = self.copy(self.workdir)
        state = os.path.join(copy, "checkpoints", "best", "checkpoint")
        damage(state, "overwritten")
        with self.assertRaisesRegex(workdir_lib.WorkdirError, f"^{state} is damaged"):
            workdir_lib.restore_model(copy, "best")
        os.remove(state)  # no best at all: latest, as documented
        self.assertEqual(workdir_lib.restore_model(copy, "best")[1]["model"]["filters"], 4)
        with open(os.path.join(copy, "config.json"), "w") as f:
            f.write('{"model": ')
        with self.assertRaisesRegex(workdir_lib.WorkdirError,
                                    r"config.json is damaged \(cannot be read: Expecting"):
            workdir_lib.restore_model(copy, "best")

    def test_stale_temporaries_removed_others_kept(self):
        parent = tempfile.mkdtemp(dir=self.get_temp_dir())
        target = os.path.join(parent, "export")
        host = socket.gethostname()
        dead = subprocess.Popen(["true"])  # a pid that no longer runs
        dead.wait()
        folders = {
            f"export.tmp-{host}-{dead.pid}-ab12": ["saved_model.pb", "variables/"],  # killed
            "export.tmp-k3j9x_2q": [],  # an older release's, empty
            f"export.tmp-{host}-{os.getpid()}-cd34": ["saved_model.pb"],  # running
            f"export.tmp-gpu-node-7-{dead.pid}-ef56": ["variables/"],  # another host's
            "export.tmp-notes": ["keep.txt"],  # a user's, whatever its name
        }
        for name, parts in folders.items():
            os.makedirs(os.path.join(parent, name))
            for part in parts:
                if part.endswith("/"):
                    os.makedirs(os.path.join(parent, name, part))
                else:
                    open(os.path.join(parent, name, part), "wb").close()
        said = []
        export.export_saved_model(self.model, target, info_for(self.model), log=said.append)
        kept = sorted(os.listdir(parent))
        self.assertEqual(kept, sorted(["export"] + list(folders)[2:]))
        self.assertLen(said, 2)
        self.assertIn("left by an interrupted export", said[0])

    def test_sigterm_during_export_leaves_nothing(self):
        parent = tempfile.mkdtemp(dir=self.get_temp_dir())
        target = os.path.join(parent, "export")

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` from a shell
            raise AssertionError("SIGTERM did not stop the export")

        with mock.patch.object(tf.saved_model, "save", side_effect=killed):
            with self.assertRaises(SystemExit) as caught:
                with outputs.sigterm_unwinds():
                    export.export_saved_model(self.model, target, info_for(self.model))
        self.assertEqual(caught.exception.code, 128 + signal.SIGTERM)
        self.assertEqual(os.listdir(parent), [])
        self.assertEqual(signal.getsignal(signal.SIGTERM), signal.SIG_DFL)
        json.dumps(info_for(self.model))


if __name__ == "__main__":
    tf.test.main()
