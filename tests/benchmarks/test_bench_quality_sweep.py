"""bench_quality's sweep bookkeeping: which flag sets it accepts, how rows are
keyed, and the sweep table it writes (hand-made rows, no data, no training)."""
import argparse
import json
import tempfile
import unittest
from pathlib import Path

from benchmarks import bench_quality
from benchmarks.quality import report

CLASSES = ["building", "water"]


def row(flags, steps, miou, config, system="ours"):
    return {"system": system, "steps": steps, "seed": 0, "batch": 8, "precision": "bf16",
            "mean_iou": miou, "overall_accuracy": miou + 0.1,
            "iou": {"building": miou - 0.1, "water": miou + 0.1}, "images_per_s": 4.0,
            "train_wall": 300.0, "first_loop": 9.0, "eval_wall": 50.0,
            "command": None, "finished": "19:00 UTC", "load": 2.0, "flags": flags,
            "config": config}


class FlagSetsTest(unittest.TestCase):

    def test_keras_peer_keeps_flips_and_quarter_turns_only(self):
        from tests.helpers import parse_train_flags  # pylint: disable=import-outside-toplevel
        from tools import data_flags  # pylint: disable=import-outside-toplevel
        args = argparse.Namespace(patch_size=256, batch_size=8, seed=0, deterministic=False)
        aug = data_flags.augment_config_from_flags(parse_train_flags(
            [*bench_quality.data_flags(args, Path("store")), *bench_quality.KERAS_AUGMENT]))
        self.assertEqual((aug.flips, aug.rot90, aug.brightness, aug.contrast),
                         (True, True, 0.0, 0.0))

    def test_sets_split_on_semicolons_and_dash_means_defaults(self):
        self.assertEqual(
            bench_quality.parse_flag_sets("--max_lr=0.2; --optimizer=adamw --max_lr=1e-3;-;"),
            [("--max_lr=0.2",), ("--optimizer=adamw", "--max_lr=1e-3"), ()])

    def test_flags_the_benchmark_fixes_are_refused(self):
        for bad in ("--seed=3", "--train_steps=9", "--nodeterministic", "max_lr=0.2"):
            with self.assertRaisesRegex(ValueError, "--train_flags: .*expected --flag"):
                bench_quality.parse_flag_sets(f"--max_lr=0.2;{bad}")


class RecomputeCostTest(unittest.TestCase):

    def test_first_recompute_as_a_share_of_an_epoch(self):
        log = ("I1129 train.py:71] new run in /x/unet (150 steps, 100 per epoch, precision m\n"
               "I1129 controller.py:254] step 150: batch-norm statistics re-estimated on 20 "
               "batches (26 layers, 15.0 s)\n"
               "I1129 controller.py:254] step 300: batch-norm statistics re-estimated on 20 "
               "batches (26 layers, 9.0 s)\n")
        cost = bench_quality.recompute_cost(log, 2.5)
        self.assertEqual(cost["batches"], 20)
        self.assertEqual(cost["seconds"], 15.0)  # the first one
        self.assertEqual(cost["steps_per_epoch"], 100)
        self.assertAlmostEqual(cost["epoch_share"], 15.0 / 250.0)
        self.assertEqual(cost["later_seconds"], [9.0])
        self.assertAlmostEqual(cost["later_epoch_share"], 9.0 / 250.0)
        self.assertEqual(report.bn_cell({"bn_recompute": cost}),
                         "20 b, 15.0 s = 6.0 % of 100 steps; later 1: mean 9.0 s = 3.6 %")
        self.assertIsNone(bench_quality.recompute_cost(log.splitlines()[0], 2.5))


class SweepTableTest(unittest.TestCase):

    def test_rows_keyed_by_flags_ranked_and_written(self):
        rows = {}
        for r in (row("", 150, 0.45, "sgd lr 0.1 wd 0 warm 0.3 ce"),
                  row("--max_lr=0.2", 150, 0.50, "sgd lr 0.2 wd 0 warm 0.3 ce"),
                  row("--loss=ce+jaccard", 150, 0.40, "sgd lr 0.1 wd 0 warm 0.3 ce+jaccard"),
                  row("", 60, 0.38, "sgd lr 0.1 wd 0 warm 0.3 ce"),
                  row("", 60, 0.12, None, system="keras")):
            rows[report.row_key(r)] = r
        self.assertEqual(len(rows), 5)  # same steps, other flags: another row
        table = report.sweep_table(rows, CLASSES).splitlines()
        self.assertEqual(len(table), 2 + 3)  # only 150 steps has flagged rows; ours only
        self.assertTrue(table[2].startswith("| `--max_lr=0.2` | sgd lr 0.2 wd 0 warm 0.3 ce | "
                                            "150 | 0 | 0.5000 | 0.6000 | 0.400 | 0.600 |"))
        self.assertTrue(table[3].startswith("| (defaults) | sgd lr 0.1"))
        self.assertIn("ce+jaccard", table[4])

        args = argparse.Namespace(val_areas=["tile_4"])
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            report.write(out, dict(rows), CLASSES, "machine", args,
                         {"train": ["tile_1__a"], "val": ["tile_4__b"]})
            self.assertIn("\n".join(table), (out / "sweep.md").read_text(encoding="utf-8"))
            self.assertEqual(set(report.load_rows(out)), set(rows))  # read back, same keys
            saved = json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"]
            self.assertEqual(sorted(r["flags"] for r in saved),
                             ["", "", "", "--loss=ce+jaccard", "--max_lr=0.2"])
            self.assertIn("| ours | `--max_lr=0.2` |",
                          (out / "results.md").read_text(encoding="utf-8"))

    def test_curves_follow_the_values_used_not_the_flags(self):
        old, new = "sgd lr 0.1 wd 0 warm 0.3 ce", "sgd lr 0.2 wd 0 warm 0.3 ce"
        rows = {report.row_key(r): r for r in (
            row("", 60, 0.38, old), row("", 150, 0.45, old),
            row("--max_lr=0.2", 150, 0.52, new),  # today's defaults, measured as a sweep row
            row("--loss=dice", 150, 0.30, "sgd lr 0.1 wd 0 warm 0.3 dice"),  # no curve
            row("", 60, 0.40, new), row("", 60, 0.12, None, system="keras"))}
        self.assertEqual(len(rows), 6)  # the old defaults' 60-step row stays
        self.assertEqual(report.curves(rows), {
            ("keras", "bf16", "", 0): [(60, 0.12)],
            ("ours", "bf16", old, 0): [(60, 0.38), (150, 0.45)],
            ("ours", "bf16", new, 0): [(60, 0.40), (150, 0.52)]})

    def test_config_summary_reads_what_train_recorded(self):
        config = {"train": {"loss": "ce+jaccard", "optim": {
            "optimizer": "adamw", "max_lr": 0.003, "weight_decay": 0.01, "pct_start": 0.3,
            "schedule": "one_cycle"}}, "pipeline": {"sampling": "random"}}
        self.assertEqual(report.config_summary(config),
                         "adamw lr 0.003 wd 0.01 warm 0.3 ce+jaccard random-sampling")
        config["pipeline"]["augment"] = {"brightness": 0.15, "contrast": 0.3, "saturation": 0.0,
                                         "gamma": 0.0, "scale_range": [0.75, 1.33], "flips": True}
        self.assertEqual(report.config_summary(config),
                         "adamw lr 0.003 wd 0.01 warm 0.3 ce+jaccard random-sampling "
                         "aug brightness 0.15 contrast 0.3 scale 0.75-1.33")
        config["pipeline"]["augment"] = None  # --noaugment
        self.assertTrue(report.config_summary(config).endswith("random-sampling no-augment"))


if __name__ == "__main__":
    unittest.main()
