"""tools.import_encoder and the pretrained-encoder path, offline (Keras
applications built with weights=None, every weight then randomised so that
a wrong mapping cannot pass):

- our features equal the Keras layer outputs at every stride (float32,
  relative difference <= 1e-4) after the tool's copy and checkpoint;
- encoder.json holds the normalisation Keras applies;
- the first-layer rule for five bands in another order;
- a U-Net on each encoder trains (frozen encoder bit-identical, then
  moving), resumes exactly, exports, and the SavedModel serves raw bands;
- tools.train --encoder=resnet50 --encoder_weights=DIR on 5-band demo tiles.
"""
import json
import os
import re
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import export, losses, optim
from layers import UNet, pretrained
from tools import import_encoder
from train_loop import steps as steps_lib
from tests.helpers import run
from train_loop import workdir as workdir_lib

# Keras layers whose outputs are our features (ConvNeXt: the inputs of the
# downsampling blocks, and the model's output for stride 32).
RESNET_LAYERS = {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out",
                 16: "conv4_block6_out", 32: "conv5_block3_out"}


def randomise(keras_model, seed=0):
    """Random values in every Keras weight (kernels keep their He draw)."""
    rng = np.random.default_rng(seed)
    for w in keras_model.weights:
        shape, name = tuple(w.shape), w.path
        if len(shape) >= 2:
            continue
        if "moving_variance" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in name or "layer_scale" in name:
            value = rng.uniform(0.5, 1.0, shape)
        else:  # biases, betas, moving means
            value = rng.normal(0, 0.1, shape)
        w.assign(value.astype(np.float32))


def keras_features(encoder, keras_model, x):
    """{stride: Keras output} for raw RGB input x [N,H,W,3] on 0-255."""
    if encoder == "resnet50":
        outputs = [keras_model.get_layer(n).output for n in RESNET_LAYERS.values()]
        strides = list(RESNET_LAYERS)
        x = keras.applications.resnet50.preprocess_input(x.copy())
    else:
        found = import_encoder._keras_layers(keras_model)  # pylint: disable=protected-access
        outputs = [found[f"convnext_tiny_downsampling_block_{i}"].input for i in range(3)]
        outputs.append(keras_model.output)
        strides = [4, 8, 16, 32]
    values = keras.Model(keras_model.input, outputs)(x, training=False)
    return {s: np.asarray(v) for s, v in zip(strides, values)}


class ImportEncoderTest(tf.test.TestCase, parameterized.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.keras_models, cls.dirs, cls.infos = {}, {}, {}
        for i, name in enumerate(("resnet50", "convnext_tiny")):
            model = import_encoder.keras_application(name, weights=None)
            randomise(model, seed=i)
            cls.keras_models[name] = model
            cls.dirs[name] = os.path.join(cls.root, name)
            cls.infos[name] = import_encoder.import_encoder(
                name, cls.dirs[name], keras_weights=None, keras_model=model)

    @parameterized.parameters("resnet50", "convnext_tiny")
    def test_features_equal_keras_at_every_stride(self, name):
        x = np.random.default_rng(5).uniform(0, 255, [2, 64, 64, 3]).astype(np.float32)
        expected = keras_features(name, self.keras_models[name], x)
        ours = pretrained.ENCODERS[name]()
        ours(tf.zeros([1, 32, 32, 3]))
        pretrained.load_encoder_weights(ours, self.dirs[name], ["R", "G", "B"])
        info = self.infos[name]
        got = ours((x - np.float32(info["mean"])) / np.float32(info["std"]), training=False)
        self.assertEqual(sorted(got), sorted(expected))
        for stride, ref in expected.items():
            self.assertEqual(got[stride].shape, ref.shape)
            rel = float(np.abs(got[stride].numpy() - ref).max() / np.abs(ref).max())
            self.assertLess(rel, 1e-4, f"{name} stride {stride}: relative difference {rel}")
        self.assertEqual(info["keras_weights_copied"], len(self.keras_models[name].weights))

    def test_normalisation_read_from_keras(self):
        resnet, convnext = self.infos["resnet50"], self.infos["convnext_tiny"]
        # Caffe style: ImageNet means (given in BGR by Keras), no scaling.
        self.assertAllClose(resnet["mean"], [123.68, 116.779, 103.939], atol=1e-4)
        self.assertAllClose(resnet["std"], [1.0, 1.0, 1.0])
        self.assertAllClose(convnext["mean"], [123.675, 116.28, 103.53], atol=1e-3)
        self.assertAllClose(convnext["std"], [58.395, 57.12, 57.375], atol=1e-3)
        with open(os.path.join(self.dirs["resnet50"], "encoder.json")) as f:
            self.assertEqual(json.load(f)["encoder"], "resnet50")

    def test_five_band_first_layer_rule(self):
        bands = ["nDSM", "B", "IR", "R", "G"]
        model = UNet(2, in_channels=5, filters=4, depth=3, encoder="resnet50")
        model(tf.zeros([1, 32, 32, 5]))
        pretrained.load_encoder_weights(model.encoder, self.dirs["resnet50"], bands)
        rgb = UNet(2, in_channels=3, filters=4, depth=3, encoder="resnet50")
        rgb(tf.zeros([1, 32, 32, 3]))
        pretrained.load_encoder_weights(rgb.encoder, self.dirs["resnet50"], ["R", "G", "B"])
        k3, k5 = rgb.encoder.first_conv.w.numpy(), model.encoder.first_conv.w.numpy()
        mean = k3.mean(axis=2)
        for i, expected in enumerate([mean, k3[:, :, 2], mean, k3[:, :, 0], k3[:, :, 1]]):
            self.assertAllClose(k5[:, :, i], expected * 3 / 5, atol=1e-7)
        # The rule's point: a grey input reaches the first layer as in RGB.
        grey = np.full([1, 8, 8, 1], 0.7, np.float32)
        self.assertAllClose(model.encoder.first_conv(np.tile(grey, [1, 1, 1, 5])),
                            rgb.encoder.first_conv(np.tile(grey, [1, 1, 1, 3])), atol=1e-5)
        # Everything else is the pretrained encoder.
        first = model.encoder.first_conv.w.ref()
        for a, b in zip(model.encoder.variables, rgb.encoder.variables):
            if a.ref() != first:
                self.assertAllEqual(a, b)
        # Normalisation: uint8 R, G, B take the weights', other bands the data's
        # statistics scaled to a normalised ImageNet pixel's spread.
        info = self.infos["resnet50"]
        mean, std = pretrained.input_normalisation(
            info, bands, [1, 2, 3, 4, 5], [10, 20, 30, 40, 50], "uint8")
        spread = np.mean(np.float64(info["pixel_std"]))
        self.assertAllClose(mean, [1, info["mean"][2], 3, info["mean"][0], info["mean"][1]])
        self.assertAllClose(std, [10 / spread, 1, 30 / spread, 1, 1])
        _, std16 = pretrained.input_normalisation(info, ["R"], [0], [300], "uint16")
        self.assertAllClose(std16, [300 / spread])

    def test_bad_folders(self):
        with self.assertRaisesRegex(ValueError, "holds 'resnet50' weights but the model's "
                                                "encoder is 'convnext_tiny'"):
            pretrained.read_encoder_info(self.dirs["resnet50"], "convnext_tiny")
        with self.assertRaisesRegex(ValueError, "cannot read .*encoder.json"):
            pretrained.read_encoder_info(self.root, "resnet50")
        foreign = os.path.join(self.root, "mine")
        os.makedirs(foreign)
        with open(os.path.join(foreign, "notes.txt"), "w") as f:
            f.write("keep me")
        with self.assertRaisesRegex(ValueError, "holds other files"):
            import_encoder.import_encoder("resnet50", foreign, keras_weights=None,
                                          keras_model=self.keras_models["resnet50"])
        self.assertTrue(os.path.exists(os.path.join(foreign, "notes.txt")))

    # Depth 3 (strides up to 8) keeps the traces small; full depth is the
    # equality test's.
    @parameterized.parameters(("resnet50", 3), ("convnext_tiny", 3))
    def test_train_freeze_resume_export_serve(self, name, depth):
        bands, c = ["R", "G", "B", "IR"], 4
        config = {"model": dict(num_classes=3, in_channels=c, filters=4, depth=depth,
                                encoder=name),
                  "data": {"bands": bands, "mean": [100.0] * c, "std": [50.0] * c,
                           "dtype": "uint8"},
                  "train": {"encoder": {"weights": self.dirs[name], "freeze_steps": 1}}}
        rng = np.random.default_rng(0)
        batch = {"image": tf.constant(rng.uniform(0, 255, [2, 64, 64, c]), tf.float32),
                 "label": tf.constant(rng.integers(0, 3, [2, 64, 64]), tf.uint8)}

        def start():
            model = workdir_lib.build_model(config, for_training=True)
            opt = optim.SGD(0.01, weight_decay=1e-4)
            opt.build(model.trainable_variables)
            opt.add_group("encoder", model.encoder_variables, lr_multiplier=0.1,
                          freeze_steps=1, frozen_flag=model.encoder_frozen)
            # Eager steps: tracing costs more than these two (tools.train's
            # run below is the traced path).
            step = steps_lib.make_train_step(model, losses.cross_entropy, opt)
            return model, opt, step

        model, opt, step = start()
        info = self.infos[name]
        self.assertAllClose(model.mean[:3], info["mean"])  # the weights' normalisation
        encoder_start = [v.numpy().copy() for v in model.encoder_variables]
        decoder_start = model.head.w.numpy().copy()
        step(batch)
        for v, old in zip(model.encoder_variables, encoder_start):
            self.assertAllEqual(v, old)
        self.assertNotAllClose(model.head.w, decoder_start)
        ckpt = tf.train.Checkpoint(model=model, optimizer=opt, step=step.step_counter)
        path = ckpt.write(os.path.join(self.get_temp_dir(), name, "ckpt"))
        step(batch)
        self.assertGreater(max(float(np.abs(v.numpy() - old).max()) for v, old
                               in zip(model.encoder_variables, encoder_start)), 0.0)
        if name == "convnext_tiny":  # no batch norm: resume is tested on ResNet's
            return self._export_and_serve(name, model, batch, bands, depth)
        # Resume: fresh objects from the checkpoint give the same second step.
        model2, opt2, step2 = start()
        opt2.groups["encoder"].freeze_steps.assign(7)  # the checkpoint's value wins
        tf.train.Checkpoint(model=model2, optimizer=opt2, step=step2.step_counter) \
            .read(path).assert_existing_objects_matched()
        self.assertEqual(int(opt2.groups["encoder"].freeze_steps), 1)
        step2(batch)
        for a, b in zip(model.variables, model2.variables):
            self.assertAllEqual(a, b)
        return self._export_and_serve(name, model, batch, bands, depth)

    def _export_and_serve(self, name, model, batch, bands, depth):
        info = self.infos[name]
        out = os.path.join(self.get_temp_dir(), name, "export")
        model_info = export.make_model_info(
            model, class_names=["a", "b", "c"], palette=[[0, 0, 0]] * 3, bands=bands,
            window=64, encoder_weights=info)
        export.export_saved_model(model, out, model_info)
        served = tf.saved_model.load(out).signatures["serving_default"](
            images=batch["image"][:1, :48, :40])
        expected = tf.nn.softmax(model(export.pad_to_multiple(batch["image"][:1, :48, :40],
                                                              2 ** depth)))[:, :48, :40]
        self.assertAllClose(served["probabilities"], expected, atol=1e-4)
        written = export.read_model_info(out)
        self.assertEqual(written["encoder"]["name"], name)
        self.assertEqual(written["encoder"]["weights"]["mean"], info["mean"])
        self.assertAllClose(written["mean"][:3], info["mean"])

    def test_train_binary_with_imported_encoder_on_five_bands(self):
        root = tempfile.mkdtemp(dir=self.get_temp_dir())
        weights = self.dirs["resnet50"]
        cmd = [sys.executable, "-m", "tools.train", f"--prepare_src={root}/raw",
               "--make_demo_data", "--demo_tiles=2", "--demo_size=256",
               f"--data_dir={root}/prepared", "--bands=IRRGB", "--elevation=ndsm",
               "--patch_size=64", "--batch_size=2", "--shuffle_buffer=4", "--filters=4",
               "--depth=3", "--encoder=resnet50", f"--encoder_weights={weights}",
               "--freeze_encoder_steps=1", "--encoder_lr_multiplier=0.1",
               "--precision=float32", "--schedule=constant", "--max_lr=0.01",
               "--train_steps=2", "--steps_per_loop=1",
               "--eval_every=1", "--bn_recompute_batches=1", f"--workdir_root={root}/runs"]
        done = run(cmd, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        # After step 1 the encoder is still frozen, so the recompute leaves its
        # layers alone; after step 2 it trains and is re-estimated too.
        counts = [int(n) for n in re.findall(
            r"step [12]: batch-norm statistics re-estimated on 1 batches \((\d+) layers",
            done.stderr)]
        self.assertLen(counts, 2)
        # The encoder's batch norms up to stride 8: stem, 3 + 4 blocks of 3, 2 projections.
        self.assertEqual(counts[1] - counts[0], 1 + 7 * 3 + 2)
        (workdir,) = [os.path.join(root, "runs", d) for d in os.listdir(os.path.join(root, "runs"))]
        self.assertIn("unet_resnet50_input64", workdir)
        config = workdir_lib.read_config(workdir)
        self.assertEqual(config["train"]["encoder"]["weights_info"]["encoder"], "resnet50")
        model, _ = workdir_lib.restore_model(workdir, "latest")
        # IRRGB + nDSM: the optical bands are uint8, so R, G, B carry ResNet's
        # caffe means with std 1; IR and nDSM their data statistics / spread.
        self.assertEqual(config["data"]["bands"], ["IR", "R", "G", "B", "nDSM"])
        self.assertAllClose(model.mean[1:4], [123.68, 116.779, 103.939], atol=1e-3)
        self.assertAllClose(model.std[1:4], [1.0, 1.0, 1.0])
        spread = np.mean([0.229 * 255, 0.224 * 255, 0.225 * 255])
        self.assertAllClose(model.std[0], config["data"]["std"][0] / spread, rtol=1e-5)
