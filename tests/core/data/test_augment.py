"""Tests for core.data.augment: image and label move together, colour ops."""
import dataclasses
import itertools
import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core.data.augment import AugmentConfig, augment, channels_for_bands
from core.data.warp import affine_transforms, dihedral_moves, warp

N = 15  # odd side: labels y*N+x stay below 255 (the ignore index)


def coordinate_patch(batch=1):
    """Image channels (y, x, 1, 7.5); label y*N+x: values say where they came from."""
    y, x = np.mgrid[0:N, 0:N].astype(np.float32)
    image = np.stack([y, x, np.ones_like(y), np.full_like(y, 7.5)], axis=-1)
    label = (y * N + x).astype(np.uint8)
    return np.repeat(image[None], batch, 0), np.repeat(label[None], batch, 0)


def dihedral(a):
    """The 8 flips/quarter turns of a [H,W,...] array."""
    out = []
    for k in range(4):
        r = np.rot90(a, k)
        out += [r, r[:, ::-1]]
    return out


# Plain TF ops in most tests (no XLA compile per config); XlaTest checks
# that the compiled path gives the same numbers.
NO_SPATIAL = dict(flips=False, rot90=False, xla=False)


class SpatialAlignmentTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.named_parameters(
        ("flips", dict(flips=True, rot90=False), {0, 1, 4, 5}),
        ("rot90", dict(flips=False, rot90=True), {0, 2, 4, 6}),
        ("flips_rot90", dict(flips=True, rot90=True), set(range(8))))
    def test_exact_dihedral_moves(self, kwargs, allowed):
        image, label = coordinate_patch(batch=16)
        out_i, out_l = augment(image, label, AugmentConfig(**kwargs, xla=False), seed=[7, 1])
        out_i, out_l = out_i.numpy(), out_l.numpy()
        seen = set()
        for b in range(16):
            # The label is exactly the image's coordinates: same move.
            self.assertAllEqual(out_i[b, ..., 0] * N + out_i[b, ..., 1], out_l[b])
            matches = [k for k, d in enumerate(dihedral(label[b])) if np.array_equal(d, out_l[b])]
            self.assertLen(matches, 1)
            seen.add(matches[0])
        self.assertTrue(seen <= allowed, seen)
        self.assertGreater(len(seen), 1)  # the batch's patches move differently

    @parameterized.named_parameters(
        ("rotate", dict(rotate_deg=40.0)),
        ("scale", dict(scale_range=(0.7, 1.4))),
        ("crop", dict(crop=0.5)),
        ("everything", dict(flips=True, rot90=True, rotate_deg=30.0, scale_range=(0.8, 1.25),
                            crop=0.7)))
    def test_label_follows_image(self, kwargs):
        cfg = AugmentConfig(**{**NO_SPATIAL, **kwargs})
        image, label = coordinate_patch(batch=8)
        out_i, out_l = (t.numpy() for t in augment(image, label, cfg, seed=[3, 4]))
        moved = 0
        for b in range(8):
            inside = out_i[b, ..., 2] > 1 - 1e-4      # all 4 bilinear taps in the patch
            valid = out_l[b] != 255
            # Bilinear of a linear ramp = the sampled position; the label
            # (nearest) is that position rounded.
            ly, lx = out_l[b] // N, out_l[b] % N
            sy, sx = out_i[b, ..., 0], out_i[b, ..., 1]
            both = inside & valid
            self.assertTrue(both.any())
            self.assertLessEqual(np.abs(ly[both] - sy[both]).max(), 0.5 + 1e-3)
            self.assertLessEqual(np.abs(lx[both] - sx[both]).max(), 0.5 + 1e-3)
            # Pixels sampled wholly from outside the patch are ignore.
            outside = out_i[b, ..., 2] < 1e-6
            self.assertTrue((out_l[b][outside] == 255).all())
            self.assertTrue((out_i[b, ..., 2][valid] > 0).all())
            moved += not np.array_equal(out_l[b], label[b])
        self.assertGreater(moved, 4)

    def test_warp_matches_numpy_nearest_and_corners_are_ignore(self):
        angle, zoom = math.radians(30.0), 1.1
        c = (N - 1) / 2
        a = np.array([[math.cos(angle), -math.sin(angle)],
                      [math.sin(angle), math.cos(angle)]]) / zoom
        t = np.array([c, c]) - a @ np.array([c, c])
        transform = np.array([[a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1], 0, 0]], np.float32)
        image, label = coordinate_patch()
        out_i, out_l = warp(tf.constant(image), tf.constant(label), tf.constant(transform))
        out_l = out_l.numpy()[0]
        expected = np.full((N, N), 255, np.uint8)
        for y, x in itertools.product(range(N), range(N)):
            sx, sy = a @ np.array([x, y]) + t
            ix, iy = (int(np.sign(v) * np.floor(abs(v) + 0.5)) for v in (sx, sy))
            if 0 <= ix < N and 0 <= iy < N:
                expected[y, x] = label[0, iy, ix]
        self.assertAllEqual(out_l, expected)
        for y, x in [(0, 0), (0, N - 1), (N - 1, 0), (N - 1, N - 1)]:
            self.assertEqual(out_l[y, x], 255)
        self.assertEqual(out_l[N // 2, N // 2], label[0, N // 2, N // 2])
        self.assertAllEqual(out_i.numpy()[0, 0, 0], [0, 0, 0, 0])  # image fill is 0


class PhotometricTest(tf.test.TestCase):

    def _batch(self, batch=6):
        rng = np.random.default_rng(0)
        image = rng.uniform(60, 190, (batch, 12, 12, 5)).astype(np.float32)
        label = rng.integers(0, 6, (batch, 12, 12)).astype(np.uint8)
        return image, label

    def _run(self, **kwargs):
        cfg = AugmentConfig(**{**NO_SPATIAL, "rgb_channels": (1, 2, 3),
                               "optical_channels": (0, 1, 2, 3), **kwargs})
        image, label = self._batch()
        out_i, out_l = augment(image, label, cfg, seed=[5, 6])
        self.assertAllEqual(out_l, label)                    # colour never moves labels
        self.assertAllEqual(out_i[..., 4], image[..., 4])    # elevation untouched
        return image, out_i.numpy()

    def test_brightness_is_one_offset_per_patch(self):
        image, out = self._run(brightness=0.1)
        delta = out[..., :4] - image[..., :4]
        for b in range(len(image)):
            self.assertAllClose(delta[b], np.full_like(delta[b], delta[b, 0, 0, 0]), atol=1e-3)
            self.assertLessEqual(abs(delta[b, 0, 0, 0]), 0.1 * 255 + 1e-3)
        self.assertGreater(np.std(delta[:, 0, 0, 0]), 0.5)

    def test_contrast_matches_formula(self):
        image, out = self._run(contrast=0.3)
        for b in range(len(image)):
            x, y = image[b, ..., :4], out[b, ..., :4]
            mx, my = x.mean(axis=(0, 1)), y.mean(axis=(0, 1))
            factor = (y[0, 0] - my) / (x[0, 0] - mx)
            self.assertAllClose(my, mx, atol=1e-2)
            self.assertAllClose((y - my) / (x - mx), np.broadcast_to(factor[0], x.shape),
                                rtol=1e-2, atol=1e-2)
            self.assertTrue(0.7 - 1e-4 <= factor[0] <= 1.3 + 1e-4)

    def test_gamma_matches_formula(self):
        image, out = self._run(gamma=0.4)
        for b in range(len(image)):
            x, y = image[b, ..., :4] / 255, out[b, ..., :4] / 255
            g = np.log(y) / np.log(x)
            self.assertAllClose(g, np.full_like(g, g[0, 0, 0]), atol=1e-3)
            self.assertTrue(0.6 - 1e-3 <= g[0, 0, 0] <= 1.4 + 1e-3)

    def test_saturation_keeps_grays_and_hue_against_tf_image(self):
        image, label = self._batch(1)
        image[..., 1:4] = image[..., 1:2]      # a gray RGB patch
        cfg = AugmentConfig(**NO_SPATIAL, saturation=0.5, rgb_channels=(1, 2, 3),
                            optical_channels=(0, 1, 2, 3))
        out, _ = augment(image, label, cfg, seed=[1, 1])
        self.assertAllClose(out, image, atol=1e-3)
        # Hue alone: a rotation by some angle in +-0.2 turn of the YIQ chroma
        # plane (NumPy reference), luma kept.
        yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]])
        rgb = np.random.default_rng(3).uniform(20, 230, (1, 8, 8, 3)).astype(np.float32)
        label = np.zeros((1, 8, 8), np.uint8)
        out, _ = augment(rgb, label, AugmentConfig(**NO_SPATIAL, hue=0.2), seed=[2, 2])
        out = out.numpy()

        def rotate(turns):
            c, s = np.cos(2 * np.pi * turns), np.sin(2 * np.pi * turns)
            m = np.linalg.inv(yiq) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ yiq
            return np.clip(rgb @ m.T, 0, 255)
        errors = [np.abs(rotate(d) - out).max() for d in np.linspace(-0.2, 0.2, 4001)]
        self.assertLess(min(errors), 0.1)
        self.assertGreater(errors[2000], 1.0)            # not the identity
        unclipped = ((out > 0) & (out < 255)).all(-1)
        self.assertGreater(unclipped.sum(), 32)
        self.assertAllClose((out @ yiq[0])[unclipped], (rgb @ yiq[0])[unclipped], atol=0.05)

    def test_noise_statistics(self):
        rng = np.random.default_rng(0)
        image = rng.uniform(80, 170, (4, 64, 64, 3)).astype(np.float32)
        label = np.zeros((4, 64, 64), np.uint8)
        out, _ = augment(image, label, AugmentConfig(**NO_SPATIAL, noise_std=0.02), seed=[9, 9])
        noise = out.numpy() - image
        self.assertAllClose(noise.std(), 0.02 * 255, rtol=0.05)
        self.assertLess(abs(noise.mean()), 0.1)

    def test_output_stays_in_range(self):
        _, out = self._run(brightness=0.5, contrast=0.9, saturation=0.9, hue=0.3, gamma=0.5,
                           noise_std=0.2)
        self.assertGreaterEqual(out[..., :4].min(), 0.0)
        self.assertLessEqual(out[..., :4].max(), 255.0)


class PatchStageAndXlaTest(tf.test.TestCase, parameterized.TestCase):

    def test_warp_matches_image_projective_transform_v3(self):
        rng = np.random.default_rng(6)
        image = rng.uniform(0, 255, (3, 20, 20, 2)).astype(np.float32)
        label = rng.integers(0, 6, (3, 20, 20)).astype(np.uint8)
        a = np.array([[0.8, -0.5, 6.0, 0.5, 0.8, -3.0, 0, 0],
                      [1.1, 0.2, -2.0, -0.2, 1.1, 1.5, 0, 0],
                      [0.0, 1.0, 0.0, -1.0, 0.0, 19.0, 0, 0]], np.float32)
        for xla in (True, False):
            out_i, out_l = warp(tf.constant(image), tf.constant(label), tf.constant(a), xla=xla)
            ref_i = tf.raw_ops.ImageProjectiveTransformV3(
                images=image, transforms=a, output_shape=[20, 20], fill_value=0.0,
                interpolation="BILINEAR", fill_mode="CONSTANT")
            ref_l = tf.raw_ops.ImageProjectiveTransformV3(
                images=label[..., None], transforms=a, output_shape=[20, 20], fill_value=255.0,
                interpolation="NEAREST", fill_mode="CONSTANT")[..., 0]
            self.assertAllClose(out_i, ref_i, atol=1e-3)
            self.assertAllEqual(out_l, ref_l)

    def test_gamma_same_for_uint8_and_float_input(self):
        image = np.random.default_rng(5).integers(0, 256, (3, 8, 8, 4), dtype=np.uint8)
        label = np.zeros((3, 8, 8), np.uint8)
        cfg = AugmentConfig(**NO_SPATIAL, gamma=0.4, optical_channels=(0, 1, 2))
        from_uint8, _ = augment(image, label, cfg, seed=[4, 4])
        powered, _ = augment(image.astype(np.float32), label, cfg, seed=[4, 4])
        self.assertEqual(from_uint8.dtype, tf.float32)
        self.assertAllClose(from_uint8, powered, atol=1e-3)
        self.assertAllEqual(from_uint8[..., 3], image[..., 3])          # not optical
        self.assertGreater(np.abs(from_uint8.numpy()[..., :3] - image[..., :3]).max(), 5.0)

    def test_uint8_output_is_the_float_output_rounded(self):
        rng = np.random.default_rng(6)
        image = rng.integers(0, 256, (4, 32, 32, 4), dtype=np.uint8)
        label = rng.integers(0, 6, (4, 32, 32), dtype=np.uint8)
        cfg = AugmentConfig(rotate_deg=20, scale_range=(0.9, 1.1), brightness=0.3,
                            contrast=0.2, gamma=0.2, noise_std=0.02,
                            rgb_channels=(0, 1, 2), optical_channels=(0, 1, 2, 3))
        as_float, float_label = augment(image, label, cfg, seed=[7, 8])
        as_uint8, uint8_label = augment(image, label, cfg, seed=[7, 8],
                                        output_dtype=tf.uint8)
        self.assertEqual(as_uint8.dtype, tf.uint8)
        self.assertAllEqual(uint8_label, float_label)
        expected = np.clip(np.round(as_float.numpy()), 0, 255)
        diff = np.abs(as_uint8.numpy().astype(np.float32) - expected)
        # Same maths; only a value within float round-off of .5 may round the
        # other way when XLA fuses the rounding into the computation.
        self.assertLessEqual(diff.max(), 1.0)
        self.assertGreater(np.mean(diff == 0), 0.999)
        self.assertGreater(as_float.numpy().max(), 255.0 - 1e-3)  # the clip was exercised
        plain, _ = augment(image, label, AugmentConfig(flips=False, rot90=False),
                           seed=[1, 1], output_dtype=tf.uint8)
        self.assertAllEqual(plain, image)  # no augmentation: the input itself

    def test_affine_prob_splits_the_batch(self):
        image, label = coordinate_patch(batch=8)
        cfg = AugmentConfig(**NO_SPATIAL, rotate_deg=30.0, affine_prob=0.5)
        out_i, out_l = augment(image, label, cfg, seed=[1, 1])
        self.assertAllEqual(out_l[4:], label[4:])
        self.assertAllEqual(out_i[4:], image[4:])
        for b in range(4):
            self.assertNotAllEqual(out_l[b], label[b])

    def test_xla_matches_plain_ops(self):
        kwargs = dict(rotate_deg=20, scale_range=(0.9, 1.1), crop=0.8, brightness=0.1,
                      contrast=0.1, saturation=0.1, hue=0.05, gamma=0.1, noise_std=0.01,
                      rgb_channels=(0, 1, 2), optical_channels=(0, 1, 2))
        image, label = coordinate_patch(batch=4)
        image = image * 10.0
        a = augment(image, label, AugmentConfig(**kwargs, xla=True), seed=[2, 3])
        b = augment(image, label, AugmentConfig(**kwargs, xla=False), seed=[2, 3])
        self.assertAllClose(a[0], b[0], atol=1e-2)
        self.assertAllEqual(a[1], b[1])


    @parameterized.named_parameters(
        ("square", (12, 12), dict(flips=True, rot90=True)),
        ("not_square", (10, 14), dict(flips=True, rot90=False)))
    def test_dihedral_moves_equal_the_warp(self, size, kwargs):
        rng = np.random.default_rng(9)
        image = rng.integers(0, 256, (16,) + size + (3,), dtype=np.uint8)
        label = rng.integers(0, 6, (16,) + size, dtype=np.uint8)
        transforms = affine_transforms(tf.constant([3, 4]), 16, *size,
                                       AugmentConfig(**kwargs))
        moved_i, moved_l = dihedral_moves(image, label, transforms)
        warped_i, warped_l = warp(image, label, transforms)
        self.assertEqual(moved_i.dtype, tf.uint8)
        self.assertAllEqual(tf.cast(moved_i, tf.float32), warped_i)
        self.assertAllEqual(moved_l, warped_l)
        self.assertGreater(len({m.tobytes() for m in moved_l.numpy()}), 4)

    def test_xla_moves_then_colour_match_plain_ops(self):
        # Flips and quarter turns with colour: the compiled path runs the
        # moves and the colour ops as two XLA functions.
        rng = np.random.default_rng(10)
        image = rng.integers(0, 256, (6, 16, 16, 4), dtype=np.uint8)
        label = rng.integers(0, 6, (6, 16, 16), dtype=np.uint8)
        kwargs = dict(gamma=0.2, brightness=0.1, contrast=0.1, saturation=0.1, hue=0.05,
                      noise_std=0.01, rgb_channels=(0, 1, 2), optical_channels=(0, 1, 2))
        for dtype in (tf.float32, tf.uint8):
            a = augment(image, label, AugmentConfig(**kwargs), seed=[5, 6], output_dtype=dtype)
            b = augment(image, label, AugmentConfig(**kwargs, xla=False), seed=[5, 6],
                        output_dtype=dtype)
            self.assertEqual(a[0].dtype, dtype)
            self.assertAllClose(tf.cast(a[0], tf.float32), tf.cast(b[0], tf.float32), atol=1.0)
            self.assertAllEqual(a[1], b[1])
            self.assertAllEqual(a[0][..., 3], b[0][..., 3])  # not optical: moved only


class BitDepthTest(tf.test.TestCase, parameterized.TestCase):
    """intensity_ranges: the colour ops mean the same on 12-bit or signed bands
    as on 8-bit ones (every op is relative to [lo, hi], so mapping 8-bit
    values affinely onto [lo, hi] maps the augmented values the same way)."""

    def _pair(self, ranges, **kwargs):
        rng = np.random.default_rng(11)
        image8 = rng.uniform(0, 255, (6, 12, 12, 5)).astype(np.float32)
        label = np.zeros((6, 12, 12), np.uint8)
        lo, hi = np.asarray(ranges, np.float32).T
        mapped = image8.copy()
        mapped[..., :4] = lo[:4] + image8[..., :4] * ((hi - lo)[:4] / 255)
        base = dict(NO_SPATIAL, rgb_channels=(0, 1, 2), optical_channels=(0, 1, 2, 3), **kwargs)
        out8, _ = augment(image8, label, AugmentConfig(**base), seed=[3, 9])
        cfg = AugmentConfig(**base, intensity_ranges=tuple(map(tuple, ranges)))
        out, _ = augment(mapped, label, cfg, seed=[3, 9])
        self.assertAllEqual(out[..., 4], mapped[..., 4])          # elevation untouched
        return image8, out8.numpy(), mapped, out.numpy(), lo[:4], hi[:4], cfg

    def test_brightness_is_a_fraction_of_each_band_full_scale(self):
        # 12-bit bands in uint16 (train max 4095) and one of max 1000.
        ranges = [(0, 4095)] * 3 + [(0, 1000), (0, 1)]
        image8, out8, mapped, out, lo, hi, _ = self._pair(ranges, brightness=0.1)
        offset8 = (out8 - image8)[..., :4].reshape(6, -1, 4)
        offset = (out - mapped)[..., :4].reshape(6, -1, 4)
        # Unclipped patches: one offset per patch, delta * (hi - lo) per band,
        # delta the same fraction as the 8-bit run's offset / 255.
        for b in range(6):
            inside = ((out8[b, ..., :4] > 0) & (out8[b, ..., :4] < 255)).reshape(-1, 4).all(-1)
            delta = offset8[b, inside][0, 0] / 255
            self.assertLessEqual(abs(delta), 0.1 + 1e-6)
            self.assertAllClose(offset[b, inside], np.broadcast_to(delta * (hi - lo),
                                                                   offset[b, inside].shape),
                                rtol=1e-4, atol=1e-3 * hi)
        self.assertGreater(np.abs(offset[..., 0]).max(), 0.05 * 4095)

    @parameterized.named_parameters(
        ("twelve_bit_all_ops", [(0, 4095)] * 4 + [(0, 1)],
         dict(brightness=0.2, contrast=0.3, saturation=0.3, hue=0.1, gamma=0.4,
              noise_std=0.02)),
        ("signed_per_band", [(-1000, 3000), (0, 4095), (-5, 20), (0, 65535), (0, 1)],
         dict(brightness=0.2, contrast=0.3, gamma=0.4, noise_std=0.02)))
    def test_same_augmentation_as_on_8_bit_data(self, ranges, kwargs):
        _, out8, mapped, out, lo, hi, cfg = self._pair(ranges, **kwargs)
        scale = (hi - lo) / 255
        self.assertAllClose(out[..., :4], lo + out8[..., :4] * scale, rtol=1e-4,
                            atol=2e-3 * scale.max())
        self.assertTrue((out[..., :4] >= lo).all() and (out[..., :4] <= hi).all())
        self.assertGreater(np.mean((out8[..., :4] == 0) | (out8[..., :4] == 255)), 0)
        # The XLA-compiled function computes the same.
        compiled, _ = augment(mapped, np.zeros(mapped.shape[:3], np.uint8),
                              dataclasses.replace(cfg, xla=True), seed=[3, 9])
        self.assertAllClose(compiled, out, rtol=1e-4, atol=2e-3 * scale.max())

    def test_uint16_input_float32_output(self):
        # Flips/quarter turns move the uint16 pixels (XLA), brightness adds
        # one offset per patch of at most 0.1 * 4095; nothing clips in [500, 3500].
        image = np.random.default_rng(1).integers(500, 3500, (4, 8, 8, 3)).astype(np.uint16)
        label = np.zeros((4, 8, 8), np.uint8)
        cfg = AugmentConfig(brightness=0.1, intensity_ranges=((0, 4095),) * 3)
        out, _ = augment(image, label, cfg, seed=[1, 2])
        self.assertEqual(out.dtype, tf.float32)
        out = out.numpy()
        offsets = (out.mean((1, 2, 3)) - image.mean((1, 2, 3)))
        for b in range(4):
            self.assertAllClose(np.sort(out[b].ravel() - offsets[b]), np.sort(image[b].ravel()),
                                atol=0.05)
        self.assertLessEqual(np.abs(offsets).max(), 409.5 + 0.05)
        self.assertGreater(np.abs(offsets).max(), 100)
        with self.assertRaisesRegex(ValueError, "intensity_ranges has 3 entries for 4"):
            augment(np.zeros((2, 8, 8, 4), np.uint16), label, cfg, seed=[1, 2])
        with self.assertRaisesRegex(ValueError, "one \\(lo, hi\\) with hi > lo"):
            AugmentConfig(intensity_ranges=((5, 5),))


class ReproducibilityAndErrorsTest(tf.test.TestCase):

    def test_seed_determines_everything(self):
        cfg = AugmentConfig(xla=False, rotate_deg=20, scale_range=(0.9, 1.1), crop=0.8, brightness=0.1,
                            contrast=0.1, saturation=0.1, hue=0.05, gamma=0.1, noise_std=0.01)
        image, label = coordinate_patch(batch=3)
        image = image[..., :3] * 10
        a = augment(image, label, cfg, seed=[1, 2])
        b = augment(image, label, cfg, seed=tf.constant([1, 2], tf.int64))
        c = augment(image, label, cfg, seed=[1, 3])
        self.assertAllEqual(a[0], b[0])
        self.assertAllEqual(a[1], b[1])
        self.assertNotAllClose(a[0], c[0])
        single = augment(image[0], label[0], cfg, seed=[1, 2])
        self.assertEqual(single[0].shape, (N, N, 3))
        self.assertEqual(single[1].dtype, tf.uint8)
        graph = tf.function(lambda i, l: augment(i, l, cfg, seed=[1, 2]))(image, label)
        self.assertAllClose(graph[0], a[0], atol=1e-4)

    def test_config_errors(self):
        for kwargs, msg in [(dict(scale_range=(1.2, 1.0)), "scale_range"),
                            (dict(crop=0.0), "crop"), (dict(hue=-0.1), "hue must be >= 0"),
                            (dict(rgb_channels=(0, 1)), "rgb_channels needs 3")]:
            with self.assertRaisesRegex(ValueError, msg):
                AugmentConfig(**kwargs)
        with self.assertRaisesRegex(ValueError, "rot90 needs square patches"):
            augment(np.zeros((4, 6, 3)), np.zeros((4, 6), np.uint8), AugmentConfig(), [0, 0])
        with self.assertRaisesRegex(ValueError, "channel 5 out of range"):
            augment(np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8),
                    AugmentConfig(brightness=0.1, optical_channels=(5,)), [0, 0])

    def test_channels_for_bands(self):
        self.assertEqual(channels_for_bands(["IR", "R", "G", "B", "nDSM"]),
                         {"rgb_channels": (1, 2, 3), "optical_channels": (0, 1, 2, 3)})
        self.assertEqual(channels_for_bands(["IR", "R", "G", "DSM"]),
                         {"rgb_channels": (), "optical_channels": (0, 1, 2)})


if __name__ == "__main__":
    tf.test.main()
