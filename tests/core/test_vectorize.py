"""core.vectorize on hand-made rasters; files read back with pyogrio and
rasterised back with rasterio.features.rasterize."""
import os
import tempfile

import numpy as np
import rasterio
import tensorflow as tf
from rasterio import features
from rasterio.transform import from_origin
from scipy import ndimage

from core import vectorize

NAMES = ["ground", "building", "tree"]
TRANSFORM = from_origin(1000.0, 2000.0, 0.5, 0.5)  # 0.5 m pixels: 0.25 m2 each
CRS = rasterio.crs.CRS.from_epsg(25832)


def hand_raster():
    """A building (12x8 px) with a 2x2 courtyard, a tree (8x6), a 1-px tree
    speck, and a no-data corner."""
    c = np.zeros((20, 30), np.uint8)
    c[2:10, 3:15] = 1
    c[4:6, 6:8] = 0
    c[12:18, 20:28] = 2
    c[15, 5] = 2
    c[0, 29] = 255
    return c


def rasterise(layer, shape):
    if not layer.geometries:
        return np.zeros(shape, bool)
    return features.rasterize([(g, 1) for g in layer.geometries], out_shape=shape,
                              transform=TRANSFORM, fill=0, dtype="uint8").astype(bool)


class VectorizeTest(tf.test.TestCase):

    def test_exact_polygons_attributes_and_holes(self):
        classes = hand_raster()
        probs = np.zeros((20, 30, 3), np.float32)
        probs[..., 0] = 1.0
        probs[2:10, 3:15] = (0.2, 0.8, 0.0)
        probs[2:6, 3:15] = (0.4, 0.6, 0.0)  # building rows 2..5: 0.6, rows 6..9: 0.8
        probs[12:18, 20:28] = (0.1, 0.0, 0.9)
        probs[15, 5] = (0.5, 0.0, 0.5)
        layers = vectorize.polygonize(classes, NAMES, transform=TRANSFORM,
                                      probabilities=probs)
        self.assertEqual(list(layers), NAMES)
        for k, name in enumerate(NAMES):  # rasterised back: the class mask exactly
            self.assertAllEqual(rasterise(layers[name], classes.shape), classes == k)
        building = layers["building"]
        self.assertLen(building.geometries, 1)
        self.assertLen(building.geometries[0].interiors, 1)  # the courtyard
        self.assertEqual(building.pixels, [92])
        self.assertAllClose(building.areas, [92 * 0.25])
        # 92 pixels: 44 at 0.6 (rows 2..5 minus 4 courtyard pixels), 48 at 0.8
        self.assertAllClose(building.mean_probability, [(44 * 0.6 + 48 * 0.8) / 92])
        self.assertEqual(sorted(layers["tree"].pixels), [1, 48])
        self.assertAllClose(sorted(layers["tree"].mean_probability), [0.5, 0.9])
        # uint8 probabilities (the written format) give the same means to 1/255.
        layers8 = vectorize.polygonize(classes, NAMES, transform=TRANSFORM,
                                       probabilities=np.round(probs * 255).astype(np.uint8))
        self.assertAllClose(layers8["building"].mean_probability,
                            building.mean_probability, atol=1 / 255)

    def test_min_area_and_chosen_classes(self):
        layers = vectorize.polygonize(hand_raster(), NAMES, transform=TRANSFORM,
                                      keep=["tree"], min_area=0.5)  # 2 pixels
        self.assertEqual(list(layers), ["tree"])
        self.assertEqual(layers["tree"].pixels, [48])  # the 1-px speck is dropped
        with self.assertRaisesRegex(ValueError, r"\['roof'\] are not among"):
            vectorize.polygonize(hand_raster(), NAMES, keep=["roof"])

    def test_simplified_polygons_stay_within_the_tolerance(self):
        rng = np.random.default_rng(1)
        # Blobby classes: a smoothed random field cut into 3 classes.
        field = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 4)
        classes = np.digitize(field, np.quantile(field, [0.4, 0.7])).astype(np.uint8)
        tolerance = 1.0  # map units = 2 pixels
        exact = vectorize.polygonize(classes, NAMES, transform=TRANSFORM)
        simple = vectorize.polygonize(classes, NAMES, transform=TRANSFORM,
                                      simplify=tolerance)
        fewer = sum(len(g.exterior.coords) for g in simple["ground"].geometries)
        self.assertLess(fewer, sum(len(g.exterior.coords) for g in exact["ground"].geometries))
        for k, name in enumerate(NAMES):
            self.assertTrue(all(g.is_valid for g in simple[name].geometries))
            mask = classes == k
            back = rasterise(simple[name], classes.shape)
            # Every changed pixel centre lies within the tolerance (+ half a
            # pixel diagonal, the centre-to-edge distance) of the class edge
            # (the raster's border is an edge of the polygons too).
            edge = mask ^ ndimage.binary_erosion(mask, border_value=0)
            edge |= ~mask & ndimage.binary_dilation(mask)
            distance = ndimage.distance_transform_edt(~edge) * 0.5  # metres
            changed = back != mask
            self.assertGreater(changed.sum(), 0)
            self.assertLessEqual(distance[changed].max(), tolerance + 0.5 * 0.71)
            # holes survive simplification
            self.assertEqual(sum(len(g.interiors) for g in simple[name].geometries),
                             sum(len(g.interiors) for g in exact[name].geometries))

    def test_files_keep_crs_layers_and_attributes(self):
        out = tempfile.mkdtemp()
        layers = vectorize.polygonize(hand_raster(), NAMES, transform=TRANSFORM)
        gpkg = vectorize.write_layers(os.path.join(out, "t"), layers, "gpkg", CRS)
        geojson = vectorize.write_layers(os.path.join(out, "t"), layers, "geojson", CRS)
        self.assertEqual(sorted(os.listdir(out)), ["t.gpkg", "t_building.geojson",
                                                   "t_ground.geojson", "t_tree.geojson"])
        back = vectorize.read_layers(gpkg[0])
        self.assertEqual(list(back), NAMES)
        self.assertEqual(back["building"]["crs"], "EPSG:25832")
        self.assertEqual(list(back["tree"]["class_name"]), ["tree", "tree"])
        self.assertAllClose(sorted(back["tree"]["area"]), [0.25, 12.0])
        self.assertTrue(back["building"]["geometry"][0].equals(
            layers["building"].geometries[0]))
        tree = vectorize.read_layers(geojson[2])["tree"]
        self.assertEqual(tree["crs"], "EPSG:25832")
        self.assertAllClose(sorted(tree["pixels"]), [1, 48])


if __name__ == "__main__":
    tf.test.main()
