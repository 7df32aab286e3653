"""README.md's examples run as written, so they cannot rot."""
import os
import re
import subprocess
import sys
import tempfile

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block(heading: str, language: str = "python") -> str:
    """The first ```language block after `## heading` in README.md."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    if match is None:
        raise AssertionError(f"no ```{language} block under '## {heading}' in README.md")
    return match.group(1)


def run_python(code: str, cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=400)


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


if __name__ == "__main__":
    tf.test.main()
