"""One flag name, one meaning, in every binary.

Every binary's flags are collected through absl (in one subprocess, each
binary imported into a fresh flag registry) with the module that declares
them. A name defined by two binaries must be declared once, in one shared
module, so its type, default and help are the same object; the few names
each binary declares for itself (its output folder, its split, its seed)
are listed with the one meaning they share. The old names of tools/renamed_flags.py
are gone from their binaries and stop with one line naming the new one.
"""
import collections
import json
import os
import sys

import tensorflow as tf

from tests.helpers import run, run_tool

BINARIES = ("train", "lr_find", "evaluate", "predict", "export", "prepare",
            "time_pipeline", "make_demo_data", "import_encoder")
# Declared by each binary itself, with the one meaning they share.
OWN_DECLARATIONS = {
    "output_dir": "the folder the binary writes its results to",
    "split": "a split of the prepared store",
    "seed": "the seed of everything random the binary does",
}

COLLECT = """
import importlib, json, sys
from absl import flags
absl_flags = set(flags.FLAGS)
found = {}
for binary in sys.argv[1:]:
    for name in list(flags.FLAGS):
        if name not in absl_flags:
            delattr(flags.FLAGS, name)
    for module in [m for m in sys.modules if m == "tools" or m.startswith("tools.")]:
        del sys.modules[module]
    importlib.import_module("tools." + binary)
    found[binary] = {
        name: {"module": flags.FLAGS.find_module_defining_flag(name),
               "type": flags.FLAGS[name].flag_type(), "default": repr(flags.FLAGS[name].default),
               "help": flags.FLAGS[name].help}
        for name in flags.FLAGS if name not in absl_flags}
print(json.dumps(found))
"""


class FlagNamesTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        result = run([sys.executable, "-c", COLLECT, *BINARIES], timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        cls.flags = json.loads(result.stdout)
        from tools import renamed_flags  # pylint: disable=import-outside-toplevel
        cls.renamed, cls.remeant = renamed_flags.RENAMED, renamed_flags.REMEANT

    def test_a_shared_name_is_declared_once(self):
        binaries_of = collections.defaultdict(dict)
        for binary, flags in self.flags.items():
            for name, flag in flags.items():
                binaries_of[name][binary] = flag
        shared = {name: found for name, found in binaries_of.items() if len(found) > 1}
        self.assertContainsSubset(["batch_size", "model", "window", "windows_per_call",
                                   "data_dir", "elevation"], shared)
        for name, found in shared.items():
            if name in OWN_DECLARATIONS:
                # Same kind of value (an enum of strings is a string).
                self.assertLen({f["type"].split()[0] for f in found.values()}, 1, (name, found))
                continue
            self.assertLen({f["module"] for f in found.values()}, 1,
                           f"--{name} is declared in several modules: {found}")

    def test_renamed_flags_are_gone_and_remeant_ones_keep_the_trainers_meaning(self):
        for binary, renamed in self.renamed.items():
            for old, new in renamed.items():
                self.assertNotIn(old, self.flags[binary], (binary, old))
                self.assertIn(new, self.flags[binary], (binary, new))
        for binary, remeant in self.remeant.items():
            for old, new in remeant.items():
                self.assertEqual(self.flags[binary][old], self.flags["train"][old])
                self.assertIn(new, self.flags[binary])
        self.assertEqual(self.flags["evaluate"]["windows_per_call"]["module"],
                         "tools.inference_flags")
        self.assertEqual(self.flags["train"]["batch_size"]["help"],
                         "Global batch size (split over replicas).")

    def test_defaults_come_from_the_config(self):
        from train_loop.config import OptimConfig  # pylint: disable=import-outside-toplevel
        train = self.flags["train"]
        for name in ("plateau_factor", "plateau_patience", "min_lr", "max_lr", "pct_start"):
            self.assertEqual(train[name]["default"], repr(getattr(OptimConfig, name)), name)
        from train_loop.config import LRSweepConfig  # pylint: disable=import-outside-toplevel
        for name in ("min_lr", "max_lr", "num_steps", "smoothing", "divergence", "suggestion"):
            flag = "sweep_steps" if name == "num_steps" else f"sweep_{name}"
            self.assertEqual(train[flag], self.flags["lr_find"][flag])
            self.assertEqual(train[flag]["default"], repr(getattr(LRSweepConfig, name)), flag)

    def test_old_names_stop_with_one_line_naming_the_new_one(self):
        flagfile = os.path.join(self.get_temp_dir(), "old.flags")
        with open(flagfile, "w", encoding="utf-8") as f:
            f.write("--elevation=ndsm/\n")
        cases = [
            (("export", "--workdir=runs/x", "--batch_size=2"),
             "tools.export: --workdir is now --model (--model is the experiment folder in "
             "every binary that loads one); --batch_size is now --windows_per_call "
             "(--batch_size is tools.train's global training batch)"),
            (("predict", f"--flagfile={flagfile}", "--model=m"),
             "tools.predict: --elevation is now --input_elevation"),
            (("lr_find", "--max_lr=1"),
             "tools.lr_find: --max_lr is now --sweep_max_lr"),
            (("lr_find", "--num_steps=8"), "tools.lr_find: --num_steps is now --sweep_steps"),
            (("make_demo_data", "--out=demo"),
             "tools.make_demo_data: --out is now --output_dir (--output_dir is the folder "
             "every binary writes to)"),
            (("import_encoder", "--encoder=resnet50", "--out=weights"),
             "tools.import_encoder: --out is now --output_dir"),
        ]
        for args, message in cases:
            result = run_tool(*args, timeout=60)
            self.assertEqual(result.returncode, 1, result.stderr)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            self.assertLen(lines, 1, result.stderr)
            self.assertIn(message, lines[0])
            self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    tf.test.main()
