"""tools.prepare as a user runs it (a subprocess): output, exit codes, errors,
the flag names tools.train uses, and one flag file driving both."""
import json
import os
import sys

import numpy as np
import tensorflow as tf
import tifffile

from core.data import geotiff
from tests.helpers import make_folder_dataset, run, run_tool, tree_state


def prepare(*args):
    return run_tool("prepare", *args, timeout=120)


class PrepareToolTest(tf.test.TestCase):

    def test_folder_dataset_with_a_class_file_and_errors(self):
        root = self.get_temp_dir()
        src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
        arrays = make_folder_dataset(src, [(20, 24), (18, 30), (25, 25)])
        classes = os.path.join(root, "classes.csv")
        with open(classes, "w", encoding="utf-8") as f:
            f.write("name,color\nroad,#ffffff\nroof,#0000ff\ngrass,#00ffff\n"
                    "tree,#00ff00\ncar,#ffff00\nother,#ff0000\n")
        # The same flags a flag file gives tools.train.
        flagfile = os.path.join(root, "mine.flags")
        with open(flagfile, "w", encoding="utf-8") as f:
            f.write(f"--prepare_dataset=folder\n--prepare_src={src}\n--data_dir={dst}\n"
                    f"--classes={classes}\n--bands=IRRGB\n--elevation=dsm\n--val_tiles=tile2\n"
                    "--patch_size=16\n--batch_size=2\n")
        proc = prepare(f"--flagfile={flagfile}")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        info = json.load(open(os.path.join(dst, "info.json")))
        self.assertEqual(info["class_names"], ["road", "roof", "grass", "tree", "car", "other"])
        self.assertEqual(info["bands"], ["R", "G", "B", "IR"])
        self.assertEqual(info["elevations"], ["dsm"])
        self.assertEqual(info["splits"], {"train": ["tile0", "tile1"], "val": ["tile2"]})
        printed = json.loads(proc.stdout[:proc.stdout.rindex("}") + 1])
        self.assertEqual(printed["splits"], {"train": 2, "val": 1})
        ir = np.concatenate([arrays[t][0][..., 3].ravel() for t in ("tile0", "tile1")])
        self.assertAllClose(printed["band_stats"]["IR"]["mean"],
                            round(ir.mean(dtype=np.float64), 4))
        store = tree_state(dst)

        bad = prepare("--prepare_dataset=potsdam", f"--prepare_src={src}", f"--data_dir={dst}_p")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no Potsdam image", bad.stderr)
        self.assertNotIn("Traceback", bad.stderr)
        self.assertFalse(os.path.exists(os.path.join(f"{dst}_p", "info.json")))
        missing = prepare("--prepare_dataset=folder", f"--prepare_src={src}")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("--data_dir", missing.stderr)
        old = prepare("--dataset=folder", f"--src={src}", f"--dst={dst}")
        self.assertEqual(old.returncode, 1)
        self.assertIn("--src is now --prepare_src", old.stderr)
        self.assertNotIn("Traceback", old.stderr)
        self.assertEqual(tree_state(dst), store)


if __name__ == "__main__":
    tf.test.main()


class FlagFileTest(tf.test.TestCase):

    def test_the_repository_flag_files_parse_in_tools_prepare(self):
        # One flag file drives prepare and train: every flag of potsdam.flags,
        # inria.flags and demo.flags is one tools.prepare knows.
        for name in ("potsdam.flags", "inria.flags", "demo.flags"):
            code = ("import sys\nfrom absl import flags\nimport tools.prepare\n"
                    f"tools.prepare.parse_flags(['prepare', '--flagfile={name}'])\n"
                    "f = flags.FLAGS\nprint(f.prepare_dataset, f.prepare_src, f.data_dir)")
            proc = run([sys.executable, "-c", code], timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
            dataset = {"inria.flags": "inria"}.get(name, "potsdam")
            self.assertTrue(proc.stdout.startswith(f"{dataset} data/"), proc.stdout)
        misspelt = prepare("--prepare_dataset=folder", "--prepare_src=x", "--data_dir=y",
                       "--prepare_sr=x", "--train_steps=5")
        self.assertEqual(misspelt.returncode, 1)
        self.assertIn("Unknown command line flag 'prepare_sr'", misspelt.stderr)


class BadInputTest(tf.test.TestCase):
    """Each bad archive: exit 1, one error line naming the file or flag and what
    was expected, no traceback, the user's files byte-identical afterwards."""

    def test_bad_archives_give_one_line(self):
        root = self.get_temp_dir()

        def archive(name, change):
            src = os.path.join(root, name)
            arrays = make_folder_dataset(src, [(20, 24), (18, 30), (25, 25)])
            change(src, arrays)
            return src

        def unknown_values(src, arrays):
            rgb = np.full((20, 24, 3), 77, np.uint8)   # a colour of no class
            tifffile.imwrite(os.path.join(src, "masks", "tile0_label.tif"), rgb)

        def constant_band(src, arrays):
            for stem, (image, _, _) in arrays.items():
                image = image.copy()
                image[..., 1] = 9
                geotiff.write_geotiff(os.path.join(src, "images", f"{stem}_RGBIR.tif"),
                                      image, None)

        def no_labels(src, arrays):
            for stem in ("tile0", "tile1"):
                h, w = arrays[stem][1].shape
                tifffile.imwrite(os.path.join(src, "masks", f"{stem}_label.tif"),
                                 np.zeros((h, w, 3), np.uint8))

        def truncated(src, arrays):
            path = os.path.join(src, "images", "tile1_RGBIR.tif")
            data = open(path, "rb").read()
            open(path, "wb").write(data[:len(data) // 2])

        def bad_class_file(src, arrays):
            with open(os.path.join(src, "classes.csv"), "w", encoding="utf-8") as f:
                f.write("name,color\nroad,#ffffff\nroof,#0000zz\n")

        cases = [
            (unknown_values, [], r"tile0_label\.tif: .*match no class.*\(77,77,77\)"),
            (constant_band, [], r"band G is constant \(9\) over the train split"),
            (no_labels, [], r"train split \(2 tiles\) has no labelled pixel"),
            (truncated, [], r"tile1_RGBIR\.tif: truncated TIFF"),
            (bad_class_file, ["--classes={src}/classes.csv"], r"classes\.csv.*line 3"),
        ]
        for change, extra, message in cases:
            src = archive(change.__name__, change)
            before = tree_state(src)
            dst = os.path.join(root, change.__name__ + "_store")
            proc = prepare("--prepare_dataset=folder", f"--prepare_src={src}", f"--data_dir={dst}",
                       "--val_tiles=tile2", *[e.format(src=src) for e in extra])
            with self.subTest(change.__name__):
                self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
                self.assertNotIn("Traceback", proc.stderr)
                errors = [line for line in proc.stderr.splitlines() if line.startswith("E")]
                self.assertLen(errors, 1, proc.stderr)
                self.assertRegex(errors[0], message)
                self.assertEqual(tree_state(src), before)
                self.assertFalse(os.path.exists(os.path.join(dst, "info.json")))
