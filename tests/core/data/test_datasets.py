"""Tests for core.data.datasets: the records and the archive layouts.

Each record gets a tiny archive written here with the real archives' file
names (8x8 rasters through tifffile/imageio); find_sources must return the
pairs, elevations and splits listed by hand below. The class sets are
compared with the published values written out here (the sources named in
core/data/datasets.py).
"""
import functools
import sys
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
import tifffile

from core.data import dataset_files, datasets, labels, synthetic, synthetic_canvas
from core.data.tiles import TileError
from tests.helpers import run


def touch(root, *rels, bands=3):
    """Writes an 8x8 raster at each relative path (format from the suffix)."""
    for rel in rels:
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        array = np.full((8, 8, bands) if bands > 1 else (8, 8), 7, np.uint8)
        if path.suffix == ".tif":
            tifffile.imwrite(path, array)
        else:
            iio.imwrite(path, array, extension=path.suffix)


def table(sources):
    """{name: (image, label, {kind: path}, split)} relative to the archive."""
    return {s.name: (s.image, s.label, dict(s.elevations), s.split) for s in sources}


class LayoutTestCase(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = Path(tempfile.mkdtemp(dir=self.get_temp_dir()))

    def p(self, rel):
        return self.root / rel

    def assertLayoutError(self, regex, folder, fn, *args, **kwargs):
        """One-line TileError matching `regex` that names `folder`."""
        with self.assertRaisesRegex(TileError, regex) as ctx:
            fn(*args, **kwargs)
        message = str(ctx.exception)
        self.assertNotIn("\n", message)
        self.assertIn(str(folder), message)
        return message


class PotsdamTest(LayoutTestCase):

    def write(self, tiles=("2_10", "2_13", "6_7")):
        for t in tiles:
            a, b = (int(v) for v in t.split("_"))
            touch(self.root, f"4_Ortho_RGBIR/top_potsdam_{t}_RGBIR.tif", bands=4)
            touch(self.root, f"5_Labels_all/top_potsdam_{t}_label.tif",
                  f"5_Labels_all_noBoundary/top_potsdam_{t}_label_noBoundary.tif")
            touch(self.root, f"1_DSM/dsm_potsdam_{a:02d}_{b:02d}.tif",
                  f"1_DSM_normalisation/dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.jpg",
                  bands=1)

    def expected(self, t, thin):
        a, b = (int(v) for v in t.split("_"))
        label = (f"5_Labels_all_noBoundary/top_potsdam_{t}_label_noBoundary.tif" if thin
                 else f"5_Labels_all/top_potsdam_{t}_label.tif")
        return (self.p(f"4_Ortho_RGBIR/top_potsdam_{t}_RGBIR.tif"), self.p(label),
                {"dsm": self.p(f"1_DSM/dsm_potsdam_{a:02d}_{b:02d}.tif"),
                 "ndsm": self.p(f"1_DSM_normalisation/dsm_potsdam_{a:02d}_{b:02d}"
                                "_normalized_lastools.jpg")},
                "val" if t == "2_13" else "train")

    def test_pairs_elevations_split_and_eroded(self):
        self.write()
        for eroded, thin in ((False, set()), (True, {"2_10", "2_13", "6_7"}),
                             ("val", {"2_13"})):
            got = table(datasets.find_sources("potsdam", self.root, eroded=eroded))
            self.assertEqual(list(got), ["top_potsdam_2_10", "top_potsdam_2_13",
                                         "top_potsdam_6_7"])
            for t in ("2_10", "2_13", "6_7"):
                self.assertEqual(got[f"top_potsdam_{t}"], self.expected(t, t in thin))

    def test_only_the_elevation_kinds_present(self):
        self.write(("2_10",))
        for f in self.p("1_DSM").iterdir():
            f.unlink()
        self.p("1_DSM").rmdir()
        (s,) = datasets.find_sources("potsdam", self.root)
        self.assertEqual(list(s.elevations), ["ndsm"])

    def test_errors(self):
        self.write(("2_10", "2_13"))
        self.p("5_Labels_all/top_potsdam_2_13_label.tif").unlink()
        self.assertLayoutError(r"No label for .*top_potsdam_2_13_RGBIR.tif: expected "
                               r"5_Labels_all/top_potsdam_2_13_label.tif", self.root,
                               datasets.find_sources, "potsdam", self.root)
        # The eroded label is there, so eroded="val" finds every tile.
        self.assertLen(datasets.find_sources("potsdam", self.root, eroded="val"), 2)
        touch(self.root, "5_Labels_all/top_potsdam_3_10_label.tif")
        self.assertLayoutError("label top_potsdam_3_10_label.tif has no image",
                               self.p("5_Labels_all"), datasets.find_sources,
                               "potsdam", self.root, eroded=True)
        self.p("5_Labels_all/top_potsdam_3_10_label.tif").unlink()
        self.p("1_DSM/dsm_potsdam_02_13.tif").unlink()
        self.assertLayoutError(r"No dsm for .*top_potsdam_2_13_RGBIR.tif: expected "
                               r"dsm_potsdam_02_13.tif", self.root,
                               datasets.find_sources, "potsdam", self.root, eroded=True)
        empty = self.p("empty")
        empty.mkdir()
        self.assertLayoutError(r"no Potsdam image 'top_potsdam_\*_RGBIR.tif' found", empty,
                               datasets.find_sources, "potsdam", empty)
        with self.assertRaisesRegex(ValueError, "eroded must be"):
            datasets.find_sources("potsdam", self.root, eroded="all")


class VaihingenTest(LayoutTestCase):

    def test_pairs_split_duplicates_and_errors(self):
        for n in (1, 2):
            touch(self.root, f"ISPRS_semantic_labeling_Vaihingen/top/top_mosaic_09cm_area{n}.tif",
                  f"gt_complete/top_mosaic_09cm_area{n}.tif",
                  f"gt_eroded/top_mosaic_09cm_area{n}_noBoundary.tif")
            touch(self.root, f"ISPRS_semantic_labeling_Vaihingen/dsm/dsm_09cm_matching_area{n}.tif",
                  bands=1)
        # Area 1 is also in gts_for_participants: the first path in sorted order.
        touch(self.root, "ISPRS_semantic_labeling_Vaihingen/gts_for_participants/"
              "top_mosaic_09cm_area1.tif")
        got = table(datasets.find_sources("vaihingen", self.root, eroded="val"))
        base = self.p("ISPRS_semantic_labeling_Vaihingen")
        self.assertEqual(got, {
            "top_mosaic_09cm_area1": (
                base / "top/top_mosaic_09cm_area1.tif",
                base / "gts_for_participants/top_mosaic_09cm_area1.tif",
                {"dsm": base / "dsm/dsm_09cm_matching_area1.tif"}, "train"),
            "top_mosaic_09cm_area2": (
                base / "top/top_mosaic_09cm_area2.tif",
                self.p("gt_eroded/top_mosaic_09cm_area2_noBoundary.tif"),
                {"dsm": base / "dsm/dsm_09cm_matching_area2.tif"}, "val")})
        self.p("gt_complete/top_mosaic_09cm_area2.tif").unlink()
        self.assertLayoutError(r"No label for .*area2.tif: expected "
                               r"top_mosaic_09cm_area2.tif .*COMPLETE", self.root,
                               datasets.find_sources, "vaihingen", self.root)


class InriaTest(LayoutTestCase):

    def test_pairs_split_and_errors(self):
        base = "AerialImageDataset/train"
        for name in ("austin1", "austin6", "tyrol-w5", "vienna36"):
            touch(self.root, f"{base}/images/{name}.tif")
            touch(self.root, f"{base}/gt/{name}.tif", bands=1)
        touch(self.root, "AerialImageDataset/test/images/bellingham1.tif")
        got = table(datasets.find_sources("inria", self.root))
        self.assertEqual(got, {n: (self.p(f"{base}/images/{n}.tif"),
                                   self.p(f"{base}/gt/{n}.tif"), {}, split)
                               for n, split in (("austin1", "val"), ("austin6", "train"),
                                                ("tyrol-w5", "val"), ("vienna36", "train"))})
        self.p(f"{base}/gt/austin6.tif").unlink()
        self.assertLayoutError(r"No mask for image\(s\) .*austin6.tif", self.p(f"{base}/gt"),
                               datasets.find_sources, "inria", self.root)
        touch(self.root, f"{base}/gt/austin6.tif", f"{base}/gt/chicago2.tif")
        self.assertLayoutError(r"No image for mask\(s\) .*chicago2.tif", self.p(f"{base}/gt"),
                               datasets.find_sources, "inria", self.root)
        with self.assertRaisesRegex(ValueError, "'inria' has no eroded labels"):
            datasets.find_sources("inria", self.root, eroded=True)


class LoveDATest(LayoutTestCase):

    def test_pairs_split_and_errors(self):
        tiles = {("Train", "Urban"): "1366", ("Train", "Rural"): "0",
                 ("Val", "Urban"): "3514", ("Val", "Rural"): "0"}
        for (split, scene), n in tiles.items():
            touch(self.root, f"LoveDA/{split}/{scene}/images_png/{n}.png",
                  f"LoveDA/{split}/{scene}/masks_png/{n}.png")
        touch(self.root, "LoveDA/Test/Urban/images_png/5000.png")   # no masks
        got = table(datasets.find_sources("loveda", self.root))
        self.assertEqual(got, {
            f"{split}_{scene}_{n}".lower(): (
                self.p(f"LoveDA/{split}/{scene}/images_png/{n}.png"),
                self.p(f"LoveDA/{split}/{scene}/masks_png/{n}.png"), {}, split.lower())
            for (split, scene), n in tiles.items()})
        self.p("LoveDA/Val/Rural/masks_png/0.png").unlink()
        self.assertLayoutError("empty folder", self.p("LoveDA/Val/Rural/masks_png"),
                               datasets.find_sources, "loveda", self.root)
        self.assertLayoutError("no images_png/ or masks_png/ folder", self.p("LoveDA/Test"),
                               datasets.find_sources, "loveda", self.p("LoveDA/Test"))


class DeepGlobeTest(LayoutTestCase):

    def test_pairs_split_and_errors(self):
        ids = [str(i) for i in (100694, 102122, 10452, 107781, 114433, 119, 12, 3)]
        for i in ids:
            touch(self.root, f"train/{i}_sat.jpg", f"train/{i}_mask.png")
        touch(self.root, "valid/4_sat.jpg", "test/5_sat.jpg")   # released unlabelled
        got = table(datasets.find_sources("deepglobe", self.root))
        # The documented rule, computed independently: CRC-32 of the id.
        split = {i: "val" if zlib.crc32(i.encode()) % 100 < 20 else "train" for i in ids}
        self.assertEqual(got, {i: (self.p(f"train/{i}_sat.jpg"), self.p(f"train/{i}_mask.png"),
                                   {}, split[i]) for i in ids})
        self.assertCountEqual(set(split.values()), ["train", "val"])
        touch(self.root, "train/999_mask.png")
        self.assertLayoutError("mask 999_mask.png has no image", self.p("train"),
                               datasets.find_sources, "deepglobe", self.root)
        self.p("train/999_mask.png").unlink()
        self.p("train/12_mask.png").unlink()
        self.assertLayoutError("no mask for 12_sat.jpg", self.p("train"),
                               datasets.find_sources, "deepglobe", self.root)


class OpenEarthMapTest(LayoutTestCase):

    def test_lists_decide_the_split_and_errors(self):
        base = self.p("OpenEarthMap_wo_xBD")
        lists = {"train": ["aachen_1.tif", "al_qurnah_3.tif"], "val": ["aachen_2.tif"],
                 "test": ["aachen_3.tif"]}
        for split, names in lists.items():
            base.mkdir(exist_ok=True)
            (base / f"{split}.txt").write_text("\n".join(names) + "\n")
            for n in names:
                city = n.rsplit("_", 1)[0]
                touch(base, f"{city}/images/{n}")
                if split != "test":
                    touch(base, f"{city}/labels/{n}", bands=1)
        got = table(datasets.find_sources("openearthmap", self.root))
        self.assertEqual(got, {
            "aachen_1": (base / "aachen/images/aachen_1.tif",
                         base / "aachen/labels/aachen_1.tif", {}, "train"),
            "aachen_2": (base / "aachen/images/aachen_2.tif",
                         base / "aachen/labels/aachen_2.tif", {}, "val"),
            "al_qurnah_3": (base / "al_qurnah/images/al_qurnah_3.tif",
                            base / "al_qurnah/labels/al_qurnah_3.tif", {}, "train")})
        touch(base, "aachen/images/aachen_9.tif")
        self.assertLayoutError("aachen_9.tif is in no list", base / "aachen/images",
                               datasets.find_sources, "openearthmap", base)
        (base / "aachen/images/aachen_9.tif").unlink()
        (base / "al_qurnah/images/al_qurnah_3.tif").unlink()
        self.assertLayoutError("no image al_qurnah_3.tif .*compile_xbd", base / "al_qurnah",
                               datasets.find_sources, "openearthmap", base)


class FolderTest(LayoutTestCase):

    def test_pairs_elevation_folders_and_errors(self):
        for stem in ("a", "b"):
            touch(self.root, f"images/{stem}_RGBIR.tif", f"masks/{stem}_label.png")
            touch(self.root, f"elevation/{stem}.tif", f"ndsm/{stem}.tif", bands=1)
        got = table(datasets.find_sources("folder", self.root))
        self.assertEqual(got, {s: (self.p(f"images/{s}_RGBIR.tif"), self.p(f"masks/{s}_label.png"),
                                   {"dsm": self.p(f"elevation/{s}.tif"),
                                    "ndsm": self.p(f"ndsm/{s}.tif")}, "train")
                               for s in ("a", "b")})
        touch(self.root, "ndsm/c.tif", bands=1)
        self.assertLayoutError("ndsm c.tif has no image", self.p("ndsm"),
                               datasets.find_sources, "folder", self.root)
        self.p("ndsm/c.tif").unlink()
        self.p("ndsm/b.tif").unlink()
        self.assertLayoutError(r"No ndsm for .*b_RGBIR.tif: expected ndsm/b.tif", self.root,
                               datasets.find_sources, "folder", self.root)
        for f in self.p("ndsm").iterdir():
            f.unlink()
        self.assertLayoutError("empty folder", self.p("ndsm"),
                               datasets.find_sources, "folder", self.root)
        self.p("ndsm").rmdir()
        self.assertEqual([list(s.elevations) for s in
                          datasets.find_sources("folder", self.root)], [["dsm"]] * 2)
        self.p("masks/b_label.png").unlink()
        self.assertLayoutError(r"No mask for image\(s\) .*b_RGBIR.tif", self.p("masks"),
                               datasets.find_sources, "folder", self.root)
        self.assertLayoutError("folder not found", self.p("nowhere"),
                               datasets.find_sources, "folder", self.p("nowhere"))


def _flag_enum(module, flag="dataset"):
    """A data set enum flag of a tools binary, read in a process of its own
    (the binaries define flags with the same names)."""
    code = (f"import {module}\nfrom absl import flags\n"
            f"print(','.join(flags.FLAGS['{flag}'].parser.enum_values))")
    out = run([sys.executable, "-c", code], check=True).stdout
    return out.strip().split(",")


class RegistryTest(tf.test.TestCase):

    def test_names_and_records(self):
        self.assertEqual(datasets.DATASET_NAMES, ("potsdam", "vaihingen", "inria", "loveda",
                                                  "deepglobe", "openearthmap", "folder"))
        for name in datasets.DATASET_NAMES:
            record = datasets.get_dataset(name.upper())
            self.assertEqual(record.name, name)
            self.assertTrue(set(record.elevation_kinds) <= {"dsm", "ndsm"})
            self.assertNotIn("\n", record.description + record.layout + record.split)
            if name != "folder":
                self.assertIn("https://", record.description)
        bands = {n: datasets.get_dataset(n).bands for n in datasets.DATASET_NAMES}
        self.assertEqual(bands, {"potsdam": "RGBIR", "vaihingen": "IRRG", "inria": "RGB",
                                 "loveda": "RGB", "deepglobe": "RGB",
                                 "openearthmap": "RGB", "folder": None})
        thresholds = {n: datasets.get_dataset(n).label_threshold
                      for n in datasets.DATASET_NAMES}
        self.assertEqual({n: t for n, t in thresholds.items() if t}, {"deepglobe": 128})
        with self.assertRaisesRegex(ValueError, "Unknown data set 'isprs'; expected one of "
                                    "potsdam, vaihingen, inria"):
            datasets.get_dataset("isprs")

    def test_official_splits(self):
        self.assertLen(datasets.POTSDAM.val_tiles, 14)
        self.assertEqual(sorted(datasets.VAIHINGEN_TRAIN_AREAS + datasets.VAIHINGEN_VAL_AREAS),
                         [n for n in range(1, 39) if n not in (9, 18, 19, 25, 36)])
        # The demo generator holds out the same Potsdam tiles.
        self.assertEqual(synthetic.POTSDAM_TEST_TILES, datasets.POTSDAM_VAL_IDS)

    def test_class_sets_match_the_published_ones(self):
        isprs = [("impervious_surfaces", (255, 255, 255)), ("building", (0, 0, 255)),
                 ("low_vegetation", (0, 255, 255)), ("tree", (0, 255, 0)),
                 ("car", (255, 255, 0)), ("clutter", (255, 0, 0))]
        published = {
            "potsdam": (isprs, None, (), ((0, 0, 0),)),
            "vaihingen": (isprs, None, (), ((0, 0, 0),)),
            "inria": ([("background", (0, 0, 0)), ("building", (255, 255, 255))],
                      (0, 255), (), ()),
            "loveda": ([("background", (255, 255, 255)), ("building", (255, 0, 0)),
                        ("road", (255, 255, 0)), ("water", (0, 0, 255)),
                        ("barren", (159, 129, 183)), ("forest", (0, 255, 0)),
                        ("agriculture", (255, 195, 128))], tuple(range(1, 8)), (0,), ()),
            "deepglobe": ([("urban_land", (0, 255, 255)), ("agriculture_land", (255, 255, 0)),
                           ("rangeland", (255, 0, 255)), ("forest_land", (0, 255, 0)),
                           ("water", (0, 0, 255)), ("barren_land", (255, 255, 255))],
                          None, (), ((0, 0, 0),)),
            "openearthmap": ([("bareland", (128, 0, 0)), ("rangeland", (0, 255, 36)),
                              ("developed_space", (148, 148, 148)), ("road", (255, 255, 255)),
                              ("tree", (34, 97, 38)), ("water", (0, 69, 255)),
                              ("agriculture_land", (75, 181, 73)), ("building", (222, 31, 7))],
                             tuple(range(1, 9)), (0,), ()),
            "folder": (isprs, None, (), ((0, 0, 0),)),
        }
        for name, (classes, ids, ignore_values, ignore_colors) in published.items():
            spec = datasets.get_dataset(name).labels
            self.assertEqual(list(zip(spec.class_names, spec.palette)), classes, name)
            self.assertEqual((spec.ids, spec.ignore_values, spec.ignore_colors),
                             (ids, ignore_values, ignore_colors), name)
        self.assertEqual(datasets.POTSDAM.labels.excluded_from_mean, ("clutter",))
        # The demo renderer's class ids follow the registry's order.
        self.assertEqual([synthetic_canvas.IMPERVIOUS, synthetic_canvas.BUILDING,
                          synthetic_canvas.LOW_VEG, synthetic_canvas.TREE,
                          synthetic_canvas.CAR, synthetic_canvas.CLUTTER],
                         [datasets.POTSDAM.labels.class_names.index(n) for n in
                          ("impervious_surfaces", "building", "low_vegetation", "tree",
                           "car", "clutter")])

    def test_classes_override_and_check(self):
        mine = labels.LabelSpec("mine", ("a", "b"), ((1, 2, 3), (4, 5, 6)))
        self.assertIs(datasets.label_spec("folder"), datasets.ISPRS_CLASSES)
        self.assertIs(datasets.label_spec("folder", mine), mine)
        with self.assertRaisesRegex(TypeError, "classes must be a LabelSpec"):
            datasets.find_sources("folder", ".", classes="potsdam")

    def test_a_new_record_is_enough(self):
        root = Path(tempfile.mkdtemp(dir=self.get_temp_dir()))
        touch(root, "img/x1.png", "lbl/x1.png", "img/x2.png", "lbl/x2.png")
        toy = datasets.Dataset(
            name="toy", description="toy; https://example.org", layout="img/ and lbl/",
            bands="RGB", elevations=(), labels=datasets.INRIA_CLASSES,
            split="x2 is val",
            find=functools.partial(dataset_files.find_paired, roots=(("",),),
                                   images="img", masks="lbl",
                                   split=lambda base, stem: "val" if stem == "x2" else "train"))
        with mock.patch.dict(datasets.REGISTRY, {"toy": toy}):
            got = table(datasets.find_sources("toy", root))
        self.assertEqual(got, {"x1": (root / "img/x1.png", root / "lbl/x1.png", {}, "train"),
                               "x2": (root / "img/x2.png", root / "lbl/x2.png", {}, "val")})
        self.assertEqual(datasets.DATASET_NAMES, tuple(datasets.REGISTRY))

    def test_demo_flag_offers_registry_names(self):
        self.assertTrue(set(_flag_enum("tools.make_demo_data")) <= set(datasets.DATASET_NAMES))

    def test_prepare_flag_enum_is_the_registry(self):
        for tool in ("tools.prepare", "tools.train"):
            self.assertEqual(_flag_enum(tool, "prepare_dataset"), list(datasets.DATASET_NAMES))


if __name__ == "__main__":
    tf.test.main()
