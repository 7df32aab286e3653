"""Tests for core/data/classes.py: class files a GIS user writes by hand."""
import json
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.data import classes
from core.data import label_decode, labels
from tests.helpers import REPO


class ClassFileTestCase(tf.test.TestCase, parameterized.TestCase):

    def write(self, name, text):
        path = os.path.join(self.get_temp_dir(), name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return path

    def assertOneLineError(self, path, *parts):
        with self.assertRaises(classes.ClassFileError) as err:
            classes.load_class_file(path)
        self.assertIsInstance(err.exception, ValueError)
        text = str(err.exception)
        self.assertNotIn("\n", text)
        self.assertTrue(text.startswith(str(path)), text)
        for part in parts:
            self.assertIn(part, text)


class JsonTest(ClassFileTestCase):

    def test_ids_colours_ignore_and_excluded(self):
        path = self.write("mine.json", {
            "name": "city",
            "classes": [{"name": "building", "color": "#3C1098", "id": 1},
                        {"name": "road", "colour": [110, 193, 228], "id": 2},
                        {"name": "clutter", "color": "255, 0, 0", "value": 7}],
            "ignore": [{"color": [155, 155, 155]}, {"id": 0}, 65535, "#000000"],
            "exclude_from_mean": ["clutter"]})
        spec = classes.load_class_file(path)
        self.assertEqual(spec, labels.LabelSpec(
            name="city", class_names=("building", "road", "clutter"),
            palette=((60, 16, 152), (110, 193, 228), (255, 0, 0)),
            ids=(1, 2, 7), ignore_values=(0, 65535),
            ignore_colors=((155, 155, 155), (0, 0, 0)),
            excluded_from_mean=("clutter",)))

    def test_bare_list_without_ids_or_colours(self):
        path = self.write("plain.json", [{"name": "background"},
                                         {"name": "Low vegetation"},
                                         {"name": "tree", "exclude_from_mean": True}])
        spec = classes.load_class_file(path)
        self.assertEqual(spec.name, "plain")
        self.assertEqual(spec.class_names, ("background", "Low_vegetation", "tree"))
        self.assertIsNone(spec.ids)
        self.assertEqual(spec.raw_ids, (0, 1, 2))
        self.assertEqual(spec.excluded_from_mean, ("tree",))
        # Display colours: the first Tableau colours, the same every run.
        self.assertEqual(spec.palette,
                         ((31, 119, 180), (255, 127, 14), (44, 160, 44)))

    def test_names_normalised_for_files_and_tags(self):
        path = self.write("n.json", {
            "classes": [{"name": "  Low vegetation / grass "},
                        {"name": "tree (deciduous)"}, {"name": "car.small-1"}],
            "exclude_from_mean": ["low VEGETATION / grass"]})
        spec = classes.load_class_file(path)
        self.assertEqual(spec.class_names,
                         ("Low_vegetation_grass", "tree_deciduous", "car.small-1"))
        self.assertEqual(spec.excluded_from_mean, ("Low_vegetation_grass",))

    def test_missing_colours_avoid_given_and_ignore_colours(self):
        path = self.write("some.json", {
            "classes": [{"name": "a", "color": "#1f77b4"}, {"name": "b"},
                        {"name": "c"}],
            "ignore": [{"color": [255, 127, 14]}]})
        spec = classes.load_class_file(path)
        self.assertEqual(spec.palette,
                         ((31, 119, 180), (44, 160, 44), (214, 39, 40)))

    def test_display_colors_distinct_for_many_classes(self):
        colours = classes.display_colors(200, taken=[(44, 160, 44)])
        self.assertLen(set(colours), 200)
        self.assertNotIn((0, 0, 0), colours)
        self.assertNotIn((44, 160, 44), colours)
        self.assertEqual(colours, classes.display_colors(200, taken=[(44, 160, 44)]))

    def test_dubai_example_file(self):
        spec = classes.load_class_file(
            os.path.join(REPO, "benchmarks", "quality", "dubai_classes.json"))
        self.assertEqual(spec.class_names,
                         ("building", "land", "road", "vegetation", "water"))
        self.assertEqual(spec.palette, ((0x3C, 0x10, 0x98), (0x84, 0x29, 0xF6),
                                        (0x6E, 0xC1, 0xE4), (0xFE, 0xDD, 0x3A),
                                        (0xE2, 0xA9, 0x29)))
        self.assertEqual(set(spec.ignore_colors), {(155, 155, 155), (0, 0, 0)})
        self.assertIsNone(spec.ids)
        # A hand-built Dubai label decodes: 3 classes, unlabeled and black ignored.
        rgb = np.array([[(60, 16, 152), (226, 169, 41), (155, 155, 155)],
                        [(0, 0, 0), (110, 193, 228), (60, 16, 152)]], np.uint8)
        ids, counts = label_decode.decode_label(rgb, spec)
        self.assertAllEqual(ids, [[0, 4, 255], [255, 2, 0]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 2})


class CsvTest(ClassFileTestCase):

    def test_name_id_color_with_ignore_rows_and_comments(self):
        path = self.write("classes.csv", (
            "# my classes\n"
            "Name,ID,Color,exclude_from_mean\n"
            "building,1,#3C1098,\n"
            "road,2,\"110,193,228\",no\n"
            "\n"
            "clutter,7,[255 0 0],yes\n"
            "ignore,0,,\n"
            "ignore:unlabeled,,#9B9B9B,\n"))
        spec = classes.load_class_file(path)
        self.assertEqual(spec, labels.LabelSpec(
            name="classes", class_names=("building", "road", "clutter"),
            palette=((60, 16, 152), (110, 193, 228), (255, 0, 0)),
            ids=(1, 2, 7), ignore_values=(0,), ignore_colors=((155, 155, 155),),
            excluded_from_mean=("clutter",)))

    def test_name_id_only(self):
        spec = classes.load_class_file(self.write(
            "ids.csv", "name,id\nbackground,0\nbuilding,255\n"))
        self.assertEqual(spec.ids, (0, 255))
        self.assertEqual(spec.class_names, ("background", "building"))
        # 255 is a class value here, so an INRIA-style mask decodes.
        ids, counts = label_decode.decode_label(np.array([[0, 255]], np.uint8), spec)
        self.assertAllEqual(ids, [[0, 1]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})

    def test_name_color_semicolon_and_rgb_columns(self):
        spec = classes.load_class_file(self.write(
            "c.csv", "name;colour\nwater;#0000ff\nland;0,255,0\n"))
        self.assertEqual(spec.palette, ((0, 0, 255), (0, 255, 0)))
        self.assertIsNone(spec.ids)
        spec = classes.load_class_file(self.write(
            "rgb.csv", "name,r,g,b\nwater,0,0,255\nland,0,255,0\nignore,0,0,0\n"))
        self.assertEqual(spec.palette, ((0, 0, 255), (0, 255, 0)))
        self.assertEqual(spec.ignore_colors, ((0, 0, 0),))


class BadFileTest(ClassFileTestCase):

    @parameterized.named_parameters(
        ("not_json", "x.json", '{"classes": [\n  {"name": "a"},,\n]}',
         ["line 2 column", "not valid JSON"]),
        ("not_object", "x.json", '"building"', ['"classes" list']),
        ("unknown_top_key", "x.json", {"classes": [], "ignored": []},
         ["'ignored'", "expected name, classes"]),
        ("entry_not_object", "x.json", ["a", "b"], ["classes[0]", "object"]),
        ("missing_name", "x.json", [{"name": "a"}, {"id": 3}],
         ["classes[1]", '"name"']),
        ("unknown_entry_key", "x.json", [{"name": "a", "colr": "#000001"},
                                         {"name": "b"}],
         ["classes[0]", "'colr'"]),
        ("duplicate_name", "x.json", [{"name": "Road"}, {"name": "road"}],
         ["classes[1]", "repeats classes[0]"]),
        ("duplicate_id", "x.json", [{"name": "a", "id": 1}, {"name": "b", "id": 1}],
         ["classes[1]", "id 1 is already used by classes[0]"]),
        ("duplicate_colour", "x.json", [{"name": "a", "color": "#010203"},
                                        {"name": "b", "color": [1, 2, 3]}],
         ["classes[1]", "colour (1,2,3)"]),
        ("class_colour_is_ignore", "x.json",
         {"classes": [{"name": "a", "color": "#000000"}, {"name": "b"}],
          "ignore": [{"color": [0, 0, 0]}]}, ["ignore[0]", "classes[0]"]),
        ("class_id_is_ignore", "x.json",
         {"classes": [{"name": "a", "id": 0}, {"name": "b", "id": 1}],
          "ignore": [0]}, ["ignore[0]", "id 0"]),
        ("ignore_id_is_implicit_class", "x.csv", "name,color\na,#000001\n"
         "b,#000002\nignore,\n", ["line 4", "id and/or a color"]),
        ("ignore_id_is_implicit_class_json", "x.json",
         {"classes": [{"name": "a"}, {"name": "b"}], "ignore": [1]},
         ["ignore[0]", "id 1 is class 'b'", "0..K-1"]),
        ("colour_out_of_range", "x.json", [{"name": "a", "color": [1, 2, 256]},
                                           {"name": "b"}],
         ["classes[0]", "0..255"]),
        ("bad_hex", "x.json", [{"name": "a", "color": "#12345"}, {"name": "b"}],
         ["classes[0]", "colour '#12345' is not", "#rrggbb"]),
        ("id_out_of_range", "x.json", [{"name": "a", "id": 70000}, {"name": "b", "id": 1}],
         ["classes[0]", "0..65535"]),
        ("negative_id", "x.json", [{"name": "a", "id": -1}, {"name": "b", "id": 1}],
         ["classes[0]", "0..65535"]),
        ("fractional_id", "x.json", [{"name": "a", "id": 1.5}, {"name": "b", "id": 2}],
         ["classes[0]", "whole number"]),
        ("mixed_ids", "x.json", [{"name": "a", "id": 1}, {"name": "b"}],
         ["classes[1]", "every class or for none"]),
        ("ignore_as_class", "x.json", [{"name": "Ignore"}, {"name": "b"}],
         ["classes[0]", "reserved"]),
        ("empty_ignore_entry", "x.json",
         {"classes": [{"name": "a"}, {"name": "b"}], "ignore": [{"name": "x"}]},
         ["ignore[0]", "id and/or a color"]),
        ("unknown_excluded", "x.json",
         {"classes": [{"name": "a"}, {"name": "b"}], "exclude_from_mean": ["c"]},
         ["exclude_from_mean[0]", "'c' is not a class"]),
        ("one_class", "x.json", [{"name": "a"}], ["expected 2..255 classes"]),
        ("name_without_letters", "x.json", [{"name": " ?! "}, {"name": "b"}],
         ["classes[0]", "no letters or digits"]),
        ("csv_bad_header", "x.csv", "class,colour\na,#000001\n",
         ["line 1", "expected distinct columns name"]),
        ("csv_unquoted_rgb", "x.csv", "name,color\na,1,2,3\nb,#000001\n",
         ["line 2", "quote"]),
        ("csv_empty", "x.csv", "# nothing\n\n", ["empty"]),
        ("csv_bad_colour", "x.csv", "name,color\na,#000001\nb,blue\n",
         ["line 3", "'blue'"]),
        ("csv_bad_flag", "x.csv", "name,id,exclude_from_mean\na,1,maybe\nb,2,\n",
         ["line 2", "yes/no"]),
        ("csv_duplicate_colour_line", "x.csv",
         "name,color\na,#000001\nb,#000002\nignore,#000002\n",
         ["line 4", "already used by line 3"]),
    )
    def test_bad_file(self, name, text, parts):
        self.assertOneLineError(self.write(name, text), *parts)

    def test_missing_file(self):
        path = os.path.join(self.get_temp_dir(), "nope.json")
        self.assertOneLineError(path, "not found", ".json or .csv")
