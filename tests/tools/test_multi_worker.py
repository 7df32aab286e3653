"""MultiWorkerMirroredStrategy: two tools.train worker processes on
127.0.0.1, started with TF_CONFIG by this test, train a few steps and end
with the same weights; only the chief writes into the workdir."""
import json
import os
import socket
import subprocess
import tempfile

import numpy as np
import tensorflow as tf

from tests.helpers import REPO, checkpoint_tensors, env, tool

FLAGS = """\
--data_dir={data}
--patch_size=32
--batch_size=4
--shuffle_buffer=16
--filters=4
--depth=3
--loss=ce
--max_lr=0.05
--precision=float32
--train_steps=4
--steps_per_loop=2
--eval_every=2
--checkpoint_every=2
--deterministic
--strategy=multi_worker
--workdir={workdir}
"""


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class MultiWorkerTest(tf.test.TestCase):

    def test_two_workers_agree_and_only_the_chief_writes_the_workdir(self):
        from core.data import prepare, synthetic  # pylint: disable=import-outside-toplevel
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        raw, data = os.path.join(base, "raw"), os.path.join(base, "prepared")
        synthetic.make_demo_dataset(raw, dataset="potsdam", tiles=3, size=256, seed=0, log=None)
        prepare.prepare("potsdam", raw, data, bands="RGB")
        workdir = os.path.join(base, "run")
        flagfile = os.path.join(base, "mw.flags")
        with open(flagfile, "w") as f:
            f.write(FLAGS.format(data=data, workdir=workdir))

        workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
        procs = []
        for index in range(2):
            tf_config = json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
            procs.append(subprocess.Popen(
                tool("train", f"--flagfile={flagfile}"), cwd=REPO, env=env(TF_CONFIG=tf_config),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        try:
            outputs = [p.communicate(timeout=300)[1] for p in procs]
        finally:
            for p in procs:  # never leave a worker behind
                if p.poll() is None:
                    p.kill()
                    p.wait()
        codes = [p.returncode for p in procs]
        self.assertEqual(codes, [0, 0], "\n".join(
            f"--- worker {i} (exit {c}):\n{e[-3000:]}" for i, (c, e) in enumerate(zip(codes, outputs))))

        chief = checkpoint_tensors(os.path.join(workdir, "checkpoints", "latest"))
        other = checkpoint_tensors(os.path.join(workdir, "workers", "worker_1", "checkpoints", "latest"))
        self.assertNotEmpty(chief)
        self.assertEqual(sorted(chief), sorted(other))
        for name, value in chief.items():
            np.testing.assert_allclose(other[name], value, rtol=1e-6, atol=1e-7, err_msg=name)
        # Summaries and the DONE marker come from the chief alone.
        self.assertTrue(os.path.exists(os.path.join(workdir, "DONE")))
        self.assertFalse(os.path.exists(os.path.join(workdir, "workers", "worker_1", "tensorboard")))
        self.assertIn("training from step 0 to 4", outputs[0])


if __name__ == "__main__":
    tf.test.main()
