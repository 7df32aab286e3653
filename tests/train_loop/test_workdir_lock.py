"""The workdir lock, between real processes.

Three child processes take the lock of their own folder at once (they load
the lock module by its path: no TensorFlow import, a fraction of a second
each); the test process then finds each folder locked by
name (host, pid), and sees the lock go away on a normal exit and on SIGTERM,
and left behind by kill -9, where it is taken over with a warning.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile

import tensorflow as tf

from train_loop import workdir_lock
from train_loop.workdir_lock import LOCK_FILE, WorkdirLockedError, lock_workdir

HOLDER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("workdir_lock", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.lock_workdir(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()  # the test says when to exit normally
"""


def start_holder(folder):
    return subprocess.Popen([sys.executable, "-c", HOLDER, folder, workdir_lock.__file__],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class WorkdirLockTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(dir=self.get_temp_dir())

    def test_second_process_refused_then_released_or_taken_over(self):
        folders = {k: os.path.join(self.root, k) for k in ("exits", "sigterm", "sigkill")}
        children = {k: start_holder(f) for k, f in folders.items()}
        try:
            for key, child in children.items():
                self.assertEqual(child.stdout.readline().strip(), "locked",
                                 child.stderr.read() if child.poll() is not None else key)
            host = socket.gethostname()
            for key, child in children.items():
                with self.assertRaises(WorkdirLockedError) as caught:
                    lock_workdir(folders[key])
                message = str(caught.exception)
                self.assertIn(f"workdir {folders[key]} is in use by another training: "
                              f"pid {child.pid} on this host, {host}, since ", message)
                self.assertIn(folders[key], message)  # its command line names the folder
                self.assertNotIn("\n", message)

            # A normal exit and SIGTERM release the lock: the file is gone.
            children["exits"].stdin.write("exit\n")
            children["exits"].stdin.flush()
            self.assertEqual(children["exits"].wait(60), 0)
            children["sigterm"].send_signal(signal.SIGTERM)
            self.assertEqual(children["sigterm"].wait(60), -signal.SIGTERM)
            for key in ("exits", "sigterm"):
                self.assertFalse(os.path.exists(os.path.join(folders[key], LOCK_FILE)), key)
                warnings = []
                with lock_workdir(folders[key], log=warnings.append):
                    pass
                self.assertEqual(warnings, [])

            # kill -9 leaves the file; its process is gone, so it is taken over.
            children["sigkill"].kill()
            children["sigkill"].wait(60)
            path = os.path.join(folders["sigkill"], LOCK_FILE)
            with open(path, encoding="utf-8") as f:
                self.assertEqual(json.load(f)["pid"], children["sigkill"].pid)
            warnings = []
            lock = lock_workdir(folders["sigkill"], log=warnings.append)
            self.assertLen(warnings, 1)
            self.assertIn(f"taking over the lock of pid {children['sigkill'].pid}", warnings[0])
            with open(path, encoding="utf-8") as f:
                self.assertEqual(json.load(f)["pid"], os.getpid())
            lock.release()
            self.assertFalse(os.path.exists(path))
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.kill()
                child.wait()
                for stream in (child.stdin, child.stdout, child.stderr):
                    stream.close()

    def test_same_process_twice_is_refused(self):
        with lock_workdir(self.root):
            with self.assertRaisesRegex(WorkdirLockedError, f"pid {os.getpid()} on this host"):
                lock_workdir(self.root)
        with lock_workdir(self.root):  # released by the context manager
            pass

    def test_lock_files_nobody_holds(self):
        path = os.path.join(self.root, LOCK_FILE)
        # Another host: its process cannot be checked from here.
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"host": "gpu-node-7", "pid": 4242, "started": "2026-11-29 10:00:00 UTC"}, f)
        with self.assertRaisesRegex(
                WorkdirLockedError, r"in use by another training: pid 4242 on gpu-node-7, since "
                r"2026-11-29 10:00:00 UTC; .*if that run is over, delete .*LOCK$"):
            lock_workdir(self.root)
        # This host, a live process that holds no flock (a filesystem without
        # locks): its pid decides. The parent of this test process runs.
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getppid()}, f)
        with self.assertRaisesRegex(WorkdirLockedError, f"pid {os.getppid()} on this host"):
            lock_workdir(self.root)
        # This host, the pid now belongs to another process (its start time differs).
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getppid(), "process_start": 1}, f)
        warnings = []
        with lock_workdir(self.root, log=warnings.append):
            self.assertLen(warnings, 1)
        self.assertFalse(os.path.exists(path))

    def test_unwritable_folder_is_one_clear_error(self):
        blocker = os.path.join(self.root, "a_file")
        with open(blocker, "w", encoding="utf-8") as f:
            f.write("user data")
        with self.assertRaisesRegex(ValueError, r"workdir .*a_file/run is not writable"):
            lock_workdir(os.path.join(blocker, "run"))
        with open(blocker, encoding="utf-8") as f:
            self.assertEqual(f.read(), "user data")


if __name__ == "__main__":
    tf.test.main()
