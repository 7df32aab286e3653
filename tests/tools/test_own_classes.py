"""A user's own classes end to end: a class file and 16-bit imagery prepared,
trained a few steps, evaluated and predicted through the binaries; the class
names reach the store, the workdir, evaluate's table and the export's
model_info, and the class colours reach predict's colour PNG."""
import json
import os
import tempfile

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from tests.helpers import run_tool

CLASSES = {"classes": [{"name": "water", "color": "#1f78b4"},
                       {"name": "field", "color": "#b2df8a"},
                       {"name": "roof", "color": "#e31a1c"}],
           "ignore": [{"color": "#000000"}]}
COLOURS = np.array([[0x1f, 0x78, 0xb4], [0xb2, 0xdf, 0x8a], [0xe3, 0x1a, 0x1c]], np.uint8)


def make_archive(root):
    """images/t*.tif: 12-bit values in uint16; masks/t*.png in the class colours,
    each class a band of rows so that a few steps learn something."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(root, sub))
    for i in range(3):
        ids = np.repeat(np.arange(48) // 16, 40).reshape(48, 40).astype(np.uint8)
        ids = np.roll(ids, 5 * i, axis=0)
        image = (ids[..., None].astype(np.int64) * 1200 + rng.integers(0, 400, (48, 40, 3))).astype(np.uint16)
        iio.imwrite(os.path.join(root, "images", f"t{i}.tif"), image)
        rgb = COLOURS[ids]
        rgb[:2, :2] = 0   # declared ignore colour
        iio.imwrite(os.path.join(root, "masks", f"t{i}.png"), rgb)


class OwnClassesTest(tf.test.TestCase):

    def test_class_file_reaches_every_output(self):
        root = tempfile.mkdtemp(dir=self.get_temp_dir())
        make_archive(os.path.join(root, "raw"))
        with open(os.path.join(root, "classes.json"), "w", encoding="utf-8") as f:
            json.dump(CLASSES, f)
        store = os.path.join(root, "store")
        with open(os.path.join(root, "own.flags"), "w", encoding="utf-8") as f:
            f.write(f"--prepare_dataset=folder\n--prepare_src={root}/raw\n--data_dir={store}\n"
                    f"--classes={root}/classes.json\n--val_tiles=t2\n--patch_size=16\n"
                    "--batch_size=4\n--filters=4\n--depth=3\n--precision=float32\n"
                    "--train_steps=4\n--steps_per_loop=2\n--eval_every=4\n"
                    f"--workdir_root={root}/runs\n--max_lr=0.05\n")
        train = run_tool("train", f"--flagfile={root}/own.flags")
        self.assertEqual(train.returncode, 0, train.stderr[-3000:])
        info = json.load(open(os.path.join(store, "info.json")))
        self.assertEqual(info["class_names"], ["water", "field", "roof"])
        self.assertEqual(info["dtype"], "uint16")
        self.assertEqual(info["tiles"]["t0"]["ignore_pixels"], 4)
        (workdir,) = [os.path.join(root, "runs", d) for d in os.listdir(os.path.join(root, "runs"))]
        config = json.load(open(os.path.join(workdir, "config.json")))
        self.assertEqual(config["data"]["class_names"], ["water", "field", "roof"])

        out = os.path.join(root, "eval")
        evaluate = run_tool("evaluate", f"--model={workdir}", f"--data_dir={store}",
                            f"--output_dir={out}", "--window=16")
        self.assertEqual(evaluate.returncode, 0, evaluate.stderr[-3000:])
        table = open(os.path.join(out, "metrics.md"), encoding="utf-8").read()
        for name in ("water", "field", "roof"):
            self.assertIn(f"| {name} |", table)

        pred = os.path.join(root, "pred")
        predict = run_tool("predict", f"--model={workdir}", f"--input={root}/raw/images/t2.tif",
                           f"--output_dir={pred}", "--window=16")
        self.assertEqual(predict.returncode, 0, predict.stderr[-3000:])
        colour = iio.imread(os.path.join(pred, "t2_colour.png"))
        classes = iio.imread(os.path.join(pred, "t2_classes.tif"))
        self.assertAllEqual(colour, COLOURS[classes])

        exported = os.path.join(root, "export")
        export = run_tool("export", f"--model={workdir}", f"--export_dir={exported}")
        self.assertEqual(export.returncode, 0, export.stderr[-3000:])
        model_info = json.load(open(os.path.join(exported, "assets", "model_info.json")))
        self.assertEqual(model_info["class_names"], ["water", "field", "roof"])
        self.assertEqual(model_info["palette"], COLOURS.tolist())
        self.assertEqual(model_info["input_dtype"], "uint16")


if __name__ == "__main__":
    tf.test.main()
