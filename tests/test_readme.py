"""README.md's examples run as written, so they cannot rot."""
import os
import re
import subprocess
import sys
import tempfile

import tensorflow as tf

from tests.helpers import REPO, env, run
from tests.isolation import without_project


def readme_block(heading: str, language: str = "python") -> str:
    """The first ```language block after `## heading` in README.md."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    if match is None:
        raise AssertionError(f"no ```{language} block under '## {heading}' in README.md")
    return match.group(1)


def run_python(code: str, cwd: str, pythonpath: str = REPO) -> subprocess.CompletedProcess:
    return run([sys.executable, "-c", code], cwd=cwd, timeout=400,
               env=env(PYTHONPATH=pythonpath))


def run_bash(script: str, cwd: str) -> subprocess.CompletedProcess:
    """With this interpreter's folder first on PATH (python, saved_model_cli)
    and the repository importable, as after `pip install -e .`."""
    return run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, timeout=400,
               env=env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))


def make_workdir(cwd: str) -> None:
    """A workdir as tools.train leaves it (config.json, a best checkpoint),
    with an untrained model: the export example only needs the layout."""
    from core.data import pipeline  # pylint: disable=import-outside-toplevel
    from layers import UNet  # pylint: disable=import-outside-toplevel
    from train_loop import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
    make_demo_store(cwd)
    info = pipeline.dataset_info(pipeline.PipelineConfig(
        data_dir=os.path.join(cwd, "data", "demo", "prepared")))
    model_kwargs = dict(num_classes=len(info["class_names"]), in_channels=info["in_channels"],
                        filters=4, depth=3, residual=True, center="conv", policy="float32")
    workdir = os.path.join(cwd, "runs", "unet_demo-20261126-05h00mn")
    workdir_lib.write_config(workdir, {"model": model_kwargs, "data": info})
    model = UNet(**model_kwargs, mean=info["mean"], std=info["std"])
    model(tf.zeros([1, 8, 8, info["in_channels"]]), training=False)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               workdir_lib.checkpoint_dir(workdir, "best"),
                               max_to_keep=1).save(checkpoint_number=1)


def make_demo_store(cwd: str) -> None:
    """What the demo's first run leaves in data/demo/prepared, at toy size."""
    from core.data import prepare, synthetic  # pylint: disable=import-outside-toplevel
    raw = os.path.join(cwd, "data", "demo", "raw")
    synthetic.make_demo_dataset(raw, dataset="potsdam", tiles=2, size=256, seed=0, log=None)
    prepare.prepare("potsdam", raw, os.path.join(cwd, "data", "demo", "prepared"),
                    bands="IRRGB", elevation="ndsm")


class ReadmeTest(tf.test.TestCase):

    def test_two_commands_on_the_first_screen(self):
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
            head = f.read().split("\n## ", 1)[0]
        commands = re.findall(r"```bash\n(.*?)```", head, re.S)
        self.assertLen(commands, 2)
        self.assertIn("python -m tools.train --flagfile=demo.flags", commands[0])
        self.assertTrue(commands[1].strip().endswith("python -m pytest"))
        with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
            ci = f.read()
        # CI installs the way the test command does and runs the same command.
        self.assertIn('pip install -e ".[cpu,test]"', commands[1])
        self.assertIn('pip install -e ".[cpu,test]"', ci)
        self.assertIn("python -m pytest", ci)

    def test_custom_loop_example_runs_as_written(self):
        cwd = tempfile.mkdtemp(dir=self.get_temp_dir())
        make_demo_store(cwd)
        result = run_python(readme_block("Your own training loop"), cwd)
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        losses = [float(m) for m in re.findall(r"step \d+ loss ([0-9.]+)", result.stdout)]
        self.assertLen(losses, 3)
        self.assertTrue(all(l > 0 for l in losses))
        # The confusion table names every Potsdam class.
        for name in ("impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter"):
            self.assertIn(name, result.stdout)

    def test_export_and_serving_examples_run_as_written(self):
        cwd = tempfile.mkdtemp(dir=self.get_temp_dir())
        make_workdir(cwd)
        export = run_bash(readme_block("Export and serve", "bash"), cwd)
        self.assertEqual(export.returncode, 0, export.stderr[-4000:])
        self.assertIn("signature_def['serving_default']", export.stdout)
        self.assertIn("signature_def['predict_tile']", export.stdout)
        # Served from a folder where this project cannot be imported.
        serve = run_python(without_project("import core\n"), cwd, pythonpath="")
        self.assertNotEqual(serve.returncode, 0, "the project must not be importable here")
        serve = run_python(without_project(readme_block("Export and serve", "python")), cwd,
                           pythonpath="")
        self.assertEqual(serve.returncode, 0, serve.stderr[-4000:])
        self.assertIn("(1, 256, 256) (1, 256, 256, 6)", serve.stdout)


if __name__ == "__main__":
    tf.test.main()
