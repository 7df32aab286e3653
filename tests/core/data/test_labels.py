"""Tests for core/data/labels.py against hand-built arrays and NumPy loops."""
import os
import unittest

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.data import labels

P = labels.POTSDAM.palette
WHITE, BLUE, CYAN, GREEN, YELLOW, RED = P


class SpecTest(tf.test.TestCase, parameterized.TestCase):

    def test_potsdam_order_and_colours(self):
        spec = labels.get_label_spec("Potsdam")
        self.assertEqual(spec.num_classes, 6)
        self.assertEqual(spec.class_names,
                         ("impervious_surfaces", "building", "low_vegetation",
                          "tree", "car", "clutter"))
        self.assertEqual(spec.palette,
                         ((255, 255, 255), (0, 0, 255), (0, 255, 255),
                          (0, 255, 0), (255, 255, 0), (255, 0, 0)))

    def test_inria(self):
        spec = labels.get_label_spec("inria")
        self.assertEqual(spec.num_classes, 2)
        self.assertEqual(spec.class_names, ("background", "building"))

    def test_unknown_name(self):
        with self.assertRaisesRegex(ValueError, "Unknown label spec 'vaihingen'"):
            labels.get_label_spec("vaihingen")

    @parameterized.parameters(
        (((1, 2, 3), (1, 2, 3)), "repeats"),
        (((1, 2, 300),), "0..255"),
        (((1, 2),), "triple"),
        ((), "1..255"))
    def test_bad_palette(self, palette, message):
        with self.assertRaisesRegex(ValueError, message):
            labels.index_to_rgb(np.zeros((2, 2), np.uint8), palette)

    def test_spec_length_mismatch(self):
        with self.assertRaisesRegex(ValueError, "2 class names but 1 palette"):
            labels.LabelSpec("x", ("a", "b"), ((1, 2, 3),))


def _spec(**kw):
    """A 3-class spec with explicit ids (LoveDA-like: 0 = no data)."""
    args = dict(name="toy", class_names=("a", "b", "c"),
                palette=((10, 0, 0), (0, 20, 0), (0, 0, 30)))
    args.update(kw)
    return labels.LabelSpec(**args)


def _one_line(test, err, *parts):
    text = str(err.exception)
    test.assertNotIn("\n", text)
    for part in parts:
        test.assertIn(part, text)


class SpecValidationTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(
        dict(ids=(1, 1, 2)),
        dict(ids=(1, 2, 70000)),
        dict(ids=(1, 2, 3), ignore_values=(3,)),
        dict(ignore_colors=((0, 20, 0),)))
    def test_contradictory_specs_are_refused(self, **kw):
        with self.assertRaisesRegex(ValueError, "LabelSpec 'toy'"):
            _spec(**kw)


class DecodeRgbTest(tf.test.TestCase):

    def test_hand_built_potsdam(self):
        rgb = np.array([[WHITE, BLUE, CYAN],
                        [GREEN, YELLOW, RED],
                        [(0, 0, 0), (12, 200, 7), (255, 255, 254)]],
                       dtype=np.uint8)
        ids, counts = labels.decode_label(rgb, labels.POTSDAM,
                                          max_unknown_fraction=0.5)
        self.assertEqual(ids.dtype, np.uint8)
        self.assertAllEqual(ids, [[0, 1, 2], [3, 4, 5], [255, 255, 255]])
        # Black is the declared boundary colour: ignore, not unknown.
        self.assertEqual(counts, {"unknown": 2, "ignore": 1})

    def test_matches_numpy_loop_reference(self):
        rng = np.random.default_rng(1)
        colours = np.array(list(P) + [(0, 0, 0), (0, 0, 254), (1, 255, 0)],
                           np.uint8)
        rgb = colours[rng.integers(0, len(colours), (37, 23))]
        ref = np.full(rgb.shape[:2], 255, np.uint8)
        unknown = ignore = 0
        for i in range(rgb.shape[0]):
            for j in range(rgb.shape[1]):
                colour = tuple(int(c) for c in rgb[i, j])
                if colour in P:
                    ref[i, j] = P.index(colour)
                elif colour == (0, 0, 0):
                    ignore += 1
                else:
                    unknown += 1
        ids, counts = labels.decode_label(rgb, labels.POTSDAM,
                                          max_unknown_fraction=1.0)
        self.assertAllEqual(ids, ref)
        self.assertEqual(counts, {"unknown": unknown, "ignore": ignore})

    def test_round_trip_with_index_to_rgb(self):
        rng = np.random.default_rng(2)
        ids = rng.integers(0, 6, (31, 17)).astype(np.uint8)
        ids[3:5, 4:9] = 255
        rgb = labels.index_to_rgb(ids, P)
        self.assertAllEqual(rgb[3, 4], (0, 0, 0))
        back, counts = labels.decode_label(rgb, labels.POTSDAM)
        self.assertAllEqual(back, ids)
        self.assertEqual(counts, {"unknown": 0, "ignore": 10})

    def test_other_palette_is_not_mixed_with_cached_one(self):
        rgb = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
        ids, _ = labels.decode_label(rgb, labels.INRIA)
        self.assertAllEqual(ids, [[0, 1]])
        ids, counts = labels.decode_label(rgb, labels.POTSDAM)
        self.assertAllEqual(ids, [[255, 0]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_uint16_rgb_within_0_255_is_read_and_beyond_refused(self):
        rgb = np.array([[BLUE, RED]], np.uint16)
        ids, _ = labels.decode_label(rgb, labels.POTSDAM)
        self.assertAllEqual(ids, [[1, 5]])
        rgb[0, 0, 0] = 256
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(rgb, labels.POTSDAM, path="l.tif")
        _one_line(self, err, "l.tif", "0..255")


class DecodeValuesTest(tf.test.TestCase, parameterized.TestCase):

    def test_class_values_0_to_k_minus_1_and_255(self):
        mask = np.array([[0, 1, 2], [255, 2, 0]], np.uint8)
        ids, counts = labels.decode_label(mask[..., None], _spec())
        self.assertAllEqual(ids, [[0, 1, 2], [255, 2, 0]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_explicit_ids_and_ignore_values(self):
        # LoveDA style: 0 = no data (declared ignore), classes 1..3.
        spec = _spec(ids=(1, 2, 3), ignore_values=(0,))
        mask = np.array([[0, 1, 2, 3], [3, 255, 0, 9]], np.uint8)
        ids, counts = labels.decode_label(mask, spec, max_unknown_fraction=0.2)
        self.assertAllEqual(ids, [[255, 0, 1, 2], [2, 255, 255, 255]])
        self.assertEqual(counts, {"unknown": 1, "ignore": 3})

    @parameterized.parameters(np.uint16, np.int32, np.int64, np.float32)
    def test_wide_dtypes(self, dtype):
        spec = _spec(ids=(100, 2000, 65535), ignore_values=(0,))
        mask = np.array([[100, 2000, 65535], [0, 2000, 100]]).astype(dtype)
        ids, counts = labels.decode_label(mask[..., None], spec)
        self.assertAllEqual(ids, [[0, 1, 2], [255, 1, 0]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_int16_negative_ignore_value(self):
        spec = _spec(ignore_values=(-1,))
        mask = np.array([[-1, 0, 2], [1, -32768, 2]], np.int16)
        ids, counts = labels.decode_label(mask, spec, max_unknown_fraction=0.2)
        self.assertAllEqual(ids, [[255, 0, 2], [1, 255, 2]])
        self.assertEqual(counts, {"unknown": 1, "ignore": 1})

    def test_sparse_wide_range_int32(self):
        # A range wider than 2**16 takes the sorting path.
        spec = _spec(ids=(0, 5, 65535))
        mask = np.array([[5, 65535, 0, 5, -100000]], np.int32)
        ids, counts = labels.decode_label(mask, spec, max_unknown_fraction=0.2)
        self.assertAllEqual(ids, [[1, 2, 0, 1, 255]])
        self.assertEqual(counts, {"unknown": 1, "ignore": 0})
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(mask, spec, path="w.tif")
        _one_line(self, err, "w.tif", "-100000: 1 px", "c=65535")

    def test_fractional_float_refused(self):
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.array([[0.5, 1.0]], np.float32), _spec(),
                                path="m.tif")
        _one_line(self, err, "m.tif", "whole-number")

    @parameterized.parameters(
        ((4, 4, 4), "4 bands", "alpha"), ((4, 4, 2), "2 bands", "expected 1"),
        ((4,), "shape", "[H,W]"))
    def test_band_count_refused(self, shape, *parts):
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.zeros(shape, np.uint8), labels.POTSDAM,
                                path="x.png")
        _one_line(self, err, "x.png", *parts)


class DecodeBinaryTest(tf.test.TestCase, parameterized.TestCase):
    """INRIA: 0 background, building 255 (or 1); single-band or grey RGB."""

    @parameterized.parameters((255,), (1,))
    def test_inria_0_255_and_0_1_single_band(self, on):
        mask = np.array([[0, on, on], [0, 0, on]], np.uint8)
        for m in (mask, mask[..., None]):
            ids, counts = labels.decode_label(m, labels.INRIA)
            self.assertAllEqual(ids, [[0, 1, 1], [0, 0, 1]])
            self.assertEqual(counts, {"unknown": 0, "ignore": 0})

    @parameterized.parameters((255,), (1,))
    def test_inria_grey_rgb(self, on):
        mask = np.array([[0, on, on], [0, 0, on]], np.uint8)
        rgb = np.repeat(mask[..., None], 3, axis=-1)
        ids, counts = labels.decode_label(rgb, labels.INRIA)
        self.assertAllEqual(ids, [[0, 1, 1], [0, 0, 1]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})

    def test_rgb_inria_counts_never_negative(self):
        # The old prepare path subtracted black pixels from the unknown count.
        rgb = np.zeros((2, 3, 3), np.uint8)
        rgb[0, 1] = 255
        rgb[1, 2] = (255, 0, 0)  # not grey: read as colours
        ids, counts = labels.decode_label(rgb, labels.INRIA,
                                          max_unknown_fraction=0.5)
        self.assertAllEqual(ids, [[0, 1, 0], [0, 0, 255]])
        self.assertEqual(counts, {"unknown": 1, "ignore": 0})

    def test_one_bit_mask(self):
        mask = np.array([[False, True], [True, True]])
        ids, counts = labels.decode_label(mask, labels.INRIA)
        self.assertAllEqual(ids, [[0, 1], [1, 1]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})

    def test_both_1_and_255_in_one_tile(self):
        mask = np.array([[0, 255, 1, 255]], np.uint8)
        ids, counts = labels.decode_label(mask, labels.INRIA,
                                          max_unknown_fraction=0.5)
        self.assertAllEqual(ids, [[0, 1, 255, 1]])
        self.assertEqual(counts, {"unknown": 1, "ignore": 0})

    def test_0_1_spec_keeps_255_as_ignore(self):
        spec = labels.LabelSpec("bin01", ("background", "building"),
                                ((0, 0, 0), (255, 255, 255)))
        ids, counts = labels.decode_label(np.array([[0, 1, 255]], np.uint8), spec)
        self.assertAllEqual(ids, [[0, 1, 255]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_grey_rgb_ambiguous_spec_is_an_error(self):
        # Value 0 is class "a" but colour (0,0,0) is class "b".
        spec = _spec(ids=(0, 1, 2), palette=((9, 9, 9), (0, 0, 0), (5, 5, 5)))
        rgb = np.zeros((2, 2, 3), np.uint8)
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(rgb, spec, path="g.png")
        _one_line(self, err, "g.png", "(0,0,0)", "class 1 (b)", "class 0 (a)")

    def test_grey_rgb_tie_between_ignore_and_class_is_an_error(self):
        # Colour (0,0,0) is declared ignore, value 0 is class "a": an all-black
        # tile would be all-ignore one way and all "a" the other.
        spec = _spec(ids=(0, 1, 2), ignore_colors=((0, 0, 0),))
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.zeros((2, 2, 3), np.uint8), spec, path="k.png")
        _one_line(self, err, "k.png", "ignore", "class 0 (a)", "drop the ids")
        # The same spec reads a grey tile whose readings agree.
        rgb = np.full((1, 2, 3), 255, np.uint8)
        ids, counts = labels.decode_label(rgb, spec)
        self.assertAllEqual(ids, [[255, 255]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 2})


class DecodePaletteTest(tf.test.TestCase):
    """Palette-indexed labels: (indices [H,W,1], colour table [N,3])."""

    def test_colour_only_spec_reads_a_permuted_table(self):
        # The table lists Potsdam's colours in another order (what PIL's
        # quantize does); the spec defines its classes by colour.
        order = [5, 3, 0, 1, 4, 2]
        table = np.array([P[i] for i in order] + [(0, 0, 0)], np.uint8)
        indices = np.array([[0, 1, 2], [3, 4, 5], [6, 6, 2]], np.uint8)
        ids, counts = labels.decode_label(indices[..., None], labels.POTSDAM,
                                          palette=table)
        self.assertAllEqual(ids, [[5, 3, 0], [1, 4, 2], [255, 255, 0]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 2})

    def test_table_without_class_colours_reads_indices(self):
        grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
        indices = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
        ids, counts = labels.decode_label(indices, labels.POTSDAM, palette=grey)
        self.assertAllEqual(ids, indices)
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})
        # All index 0 (grey table: black = an ignore colour): still class 0,
        # never an all-ignore tile.
        ids, counts = labels.decode_label(np.zeros((3, 3), np.uint8),
                                          labels.POTSDAM, palette=grey)
        self.assertAllEqual(ids, np.zeros((3, 3)))
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})

    def test_half_matching_table_that_contradicts_indices_is_an_error(self):
        # Index 0's colour is building (class 1), index 1's is no class: the
        # indices win on unknown pixels, but they call index 0 class 0.
        table = np.array([BLUE, (7, 7, 7)], np.uint8)
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.array([[0, 1]], np.uint8), labels.POTSDAM,
                                palette=table, path="h.png")
        _one_line(self, err, "h.png", "index 0 (0,0,255)",
                  "class 0 (impervious_surfaces) as palette indices",
                  "class 1 (building) as palette colours")

    def test_explicit_ids_read_indices(self):
        spec = _spec(ids=(1, 2, 3), ignore_values=(0,))
        table = np.array([(0, 0, 0), (200, 1, 1), (1, 200, 1), (1, 1, 200)],
                         np.uint8)
        indices = np.array([[0, 1], [2, 3]], np.uint8)
        ids, counts = labels.decode_label(indices, spec, palette=table)
        self.assertAllEqual(ids, [[255, 0], [1, 2]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_inria_0_1_palette_mask(self):
        table = np.array([(0, 0, 0), (255, 255, 255)], np.uint8)
        indices = np.array([[0, 1], [1, 1]], np.uint8)
        ids, counts = labels.decode_label(indices, labels.INRIA, palette=table)
        self.assertAllEqual(ids, [[0, 1], [1, 1]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})

    def test_table_contradicting_explicit_ids_is_an_error(self):
        spec = _spec(ids=(0, 1, 2))
        # Index 0 is class "a" by value but its colour is class "c"'s.
        table = np.array([(0, 0, 30), (0, 20, 0)], np.uint8)
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.array([[0, 1]], np.uint8), spec,
                                palette=table, path="p.png")
        _one_line(self, err, "p.png", "index 0 (0,0,30)", "class 0 (a)",
                  "class 2 (c)")

    def test_table_with_alpha_column(self):
        table = np.array([(255, 255, 255, 0), (0, 0, 255, 255)], np.uint8)
        ids, _ = labels.decode_label(np.array([[1, 0]], np.uint8),
                                     labels.POTSDAM, palette=table)
        self.assertAllEqual(ids, [[1, 0]])
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.array([[1, 0]], np.uint8), labels.POTSDAM,
                                palette=np.zeros(6, np.uint8), path="t.png")
        _one_line(self, err, "t.png", "[N,3]")

    def test_unknown_index_named_with_its_colour(self):
        table = np.array(list(P) + [(7, 8, 9)], np.uint8)
        indices = np.array([[6, 6, 9], [0, 1, 2]], np.uint8)
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(indices, labels.POTSDAM, palette=table,
                                path="q.png")
        # The table holds class colours: read as colours, so named as such.
        _one_line(self, err, "q.png", "palette colours",
                  "index 6 (7,8,9): 2 px", "index 9: 1 px", "building=(0,0,255)")

    def test_pillow_written_palette_png(self):
        # Reference reader: Pillow itself gives (indices, table) of a mode "P"
        # file, independent of core.data.raster.
        from PIL import Image
        order = [2, 0, 1, 5, 4, 3]
        table = [c for i in order for c in P[i]] + [0, 0, 0]
        indices = np.array([[0, 1, 2, 3], [4, 5, 6, 0]], np.uint8)
        path = os.path.join(self.get_temp_dir(), "label_p.png")
        image = Image.fromarray(indices, mode="P")
        image.putpalette(table)
        image.save(path)
        with Image.open(path) as im:
            self.assertEqual(im.mode, "P")
            read = np.array(im)
            pal = np.array(im.getpalette(), np.uint8).reshape(-1, 3)
        ids, counts = labels.decode_label(read[..., None], labels.POTSDAM,
                                          palette=pal, path=path)
        self.assertAllEqual(ids, [[2, 0, 1, 5], [4, 3, 255, 2]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_palette_png_through_read_raster(self):
        from PIL import Image
        from core.data import raster
        order = [2, 0, 1, 5, 4, 3]
        table = [c for i in order for c in P[i]] + [0, 0, 0]
        indices = np.array([[0, 1, 2, 3], [4, 5, 6, 0]], np.uint8)
        path = os.path.join(self.get_temp_dir(), "label_rr.png")
        image = Image.fromarray(indices, mode="P")
        image.putpalette(table)
        image.save(path)
        r = raster.read_raster(path)
        self.assertIsNotNone(r.palette)
        self.assertAllEqual(r.array, indices[..., None])
        ids, counts = labels.decode_label(r.array, labels.POTSDAM,
                                          palette=r.palette, path=r.path)
        self.assertAllEqual(ids, [[2, 0, 1, 5], [4, 3, 255, 2]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})


class NoDataTest(tf.test.TestCase):
    """`valid` (the label file's own no-data) excludes pixels from counts."""

    def test_int16_nodata_border(self):
        mask = np.full((4, 5), -9999, np.int16)
        mask[1:3, 1:4] = [[0, 1, 2], [2, 255, 7]]
        valid = mask != -9999
        with self.assertRaises(labels.LabelError):  # -9999 would be unknown
            labels.decode_label(mask, _spec())
        ids, counts = labels.decode_label(mask, _spec(), valid=valid,
                                          max_unknown_fraction=0.2)
        expected = np.full((4, 5), 255, np.uint8)
        expected[1:3, 1:4] = [[0, 1, 2], [2, 255, 255]]
        self.assertAllEqual(ids, expected)
        # 7 is 1 of 6 valid pixels (17%): within 0.2 of the valid pixels,
        # and beyond 0.1 (it would be 5% of the whole tile).
        self.assertEqual(counts, {"unknown": 1, "ignore": 1})
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(mask, _spec(), valid=valid,
                                max_unknown_fraction=0.1, path="n.tif")
        _one_line(self, err, "n.tif", "1 of 6", "7: 1 px")

    def test_float_nan_and_rgb_garbage_outside_valid(self):
        mask = np.array([[np.nan, 1.0], [2.0, -3.4e38]], np.float32)
        valid = np.isfinite(mask) & (mask > -1)
        ids, counts = labels.decode_label(mask, _spec(), valid=valid)
        self.assertAllEqual(ids, [[255, 1], [2, 255]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 0})
        rgb = np.array([[BLUE, (1, 2, 3)], [(0, 0, 0), RED]], np.uint8)
        valid = np.array([[True, False], [True, True]])
        ids, counts = labels.decode_label(rgb, labels.POTSDAM, valid=valid)
        self.assertAllEqual(ids, [[1, 255], [255, 5]])
        self.assertEqual(counts, {"unknown": 0, "ignore": 1})

    def test_valid_of_another_size_refused(self):
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(np.zeros((2, 3), np.uint8), _spec(),
                                valid=np.ones((3, 2), bool), path="v.tif")
        _one_line(self, err, "v.tif", "same size")


class UnknownValuesTest(tf.test.TestCase):

    def test_error_lists_values_counts_and_classes(self):
        mask = np.array([[0, 7, 7, 7], [9, 1, 2, 200]], np.uint16)
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(mask, _spec(), path="/data/t1.tif")
        self.assertIsInstance(err.exception, ValueError)
        _one_line(self, err, "/data/t1.tif", "5 of 8", "7: 3 px", "9: 1 px",
                  "200: 1 px", "a=0, b=1, c=2", "ignore 255")
        text = str(err.exception)
        self.assertLess(text.index("7: 3 px"), text.index("9: 1 px"))

    def test_error_lists_colours(self):
        rgb = np.zeros((1, 3, 3), np.uint8)
        rgb[0] = [(12, 200, 7), (12, 200, 7), BLUE]
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(rgb, labels.POTSDAM, path="t.tif")
        _one_line(self, err, "t.tif", "(12,200,7): 2 px",
                  "building=(0,0,255)", "ignore (0,0,0)")

    def test_at_most_8_values_listed(self):
        mask = np.arange(3, 23, dtype=np.uint8)[None]
        with self.assertRaises(labels.LabelError) as err:
            labels.decode_label(mask, _spec(), path="t.tif")
        _one_line(self, err, "and 12 more", "10: 1 px")
        self.assertNotIn("11: 1 px", str(err.exception))

    def test_below_threshold_maps_to_ignore_and_counts(self):
        mask = np.zeros((10, 10), np.uint8)
        mask[0, 0] = 7
        ids, counts = labels.decode_label(mask, _spec())  # 1% is allowed
        self.assertEqual(ids[0, 0], 255)
        self.assertEqual(int((ids == 0).sum()), 99)
        self.assertEqual(counts, {"unknown": 1, "ignore": 0})
        mask[0, 1] = 7
        with self.assertRaises(labels.LabelError):
            labels.decode_label(mask, _spec())
        ids, counts = labels.decode_label(mask, _spec(),
                                          max_unknown_fraction=0.02)
        self.assertEqual(counts["unknown"], 2)

    def test_a_label_with_class_pixels_is_never_all_ignore(self):
        # A tile with one class pixel among values that are no class: either
        # the class pixel survives (unknowns within the threshold) or it raises.
        one = np.full((4, 4), 9, np.uint8)
        one[0, 0] = 0
        cases = [
            (one, _spec(), None, 0.99, True),
            (one, _spec(), None, 0.9, False),
            (np.where(one == 9, 77, 255).astype(np.uint8)[..., None]
             .repeat(3, -1), labels.INRIA, None, 0.99, True),
            (one, labels.POTSDAM, np.array(list(P), np.uint8), 0.99, True),
            (one, labels.POTSDAM, np.array(list(P), np.uint8), 0.5, False),
        ]
        for mask, spec, table, fraction, survives in cases:
            if survives:
                ids, counts = labels.decode_label(
                    mask, spec, palette=table, max_unknown_fraction=fraction)
                self.assertEqual(int((ids != 255).sum()), 1)
                self.assertEqual(counts["unknown"], 15)
            else:
                with self.assertRaises(labels.LabelError):
                    labels.decode_label(mask, spec, palette=table,
                                        max_unknown_fraction=fraction)


class ColorizeTfTest(tf.test.TestCase):

    def test_equals_numpy_encoder(self):
        rng = np.random.default_rng(3)
        ids = rng.integers(0, 6, (2, 9, 11)).astype(np.int32)
        ids[0, 0, :4] = [255, 6, 100, 254]
        got = labels.colorize_tf(tf.constant(ids), P)
        self.assertEqual(got.dtype, tf.uint8)
        self.assertAllEqual(got, labels.index_to_rgb(ids, P))

    def test_inside_tf_function_with_uint8_and_negative(self):
        fn = tf.function(lambda x: labels.colorize_tf(x, P, (1, 2, 3)))
        got = fn(tf.constant([[0, 4], [-1, 255]], tf.int64))
        self.assertAllEqual(got, [[WHITE, YELLOW], [(1, 2, 3), (1, 2, 3)]])
        got = labels.colorize_tf(tf.constant([[1, 3]], tf.uint8), P)
        self.assertAllEqual(got, [[BLUE, GREEN]])


if __name__ == "__main__":
    tf.test.main()
