"""What several test modules share, in one place: the repository root, one
runner for the binaries, the tiny training flag file and its writer, readers
of a run's final weights, and small builders (a workdir with a random U-Net,
a folder archive, reference models, rasters written with GDAL). Test modules import these from here,
never from one another."""
import hashlib
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- processes -------------------------------------------------------------------

def env(**extra) -> dict:
    """The environment of a binary under test: the repository importable
    (PYTHONPATH, unless `extra` sets it), TF quiet, then `extra`."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def run(cmd, *, cwd: str = REPO, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    """Runs `cmd` (from the repository root by default) to its end, text
    output captured; `env=` replaces `env()`."""
    return subprocess.run(cmd, cwd=cwd, env=kwargs.pop("env", None) or env(),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def start(cmd, **kwargs) -> subprocess.Popen:
    """Starts `cmd` from the repository root, stdout and stderr merged in one
    text pipe (for tests that signal it when a line appears)."""
    return subprocess.Popen(cmd, cwd=REPO, env=kwargs.pop("env", None) or env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def run_and_signal(cmd, when: str, sig: int, timeout: int = 600):
    """Runs `cmd`, sends it `sig` at the first output line that contains
    `when` (and kills it if it is still running after `timeout` seconds).

    Returns:
      (exit code, output lines): -sig when the signal ended it.
    """
    proc = start(cmd)
    lines, sent, deadline = [], False, time.time() + timeout
    for line in proc.stdout:
        lines.append(line)
        if not sent and when in line:
            proc.send_signal(sig)
            sent = True
        if time.time() > deadline:
            proc.kill()
            lines.append(f"[killed after {timeout} s]\n")
            break
    code = proc.wait(timeout=120)
    proc.stdout.close()
    return code, lines


def tool(name: str, *args) -> list:
    """The command line of `python -m tools.<name> args...`."""
    return [sys.executable, "-m", f"tools.{name}", *args]


def run_tool(name: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return run(tool(name, *args), timeout=timeout)


# --- training runs ---------------------------------------------------------------

def parse_train_flags(args):
    """tools.train's flags for a command line (with --train_steps=10 unless
    `args` give a length), parsed in-process on a deep copy of the flags so
    the process's FLAGS stay unparsed. Raises what parsing raises (absl
    flags.Error)."""
    import copy  # pylint: disable=import-outside-toplevel
    from absl import flags  # pylint: disable=import-outside-toplevel
    from tools import train_flags  # noqa: F401  pylint: disable=import-outside-toplevel

    values = copy.deepcopy(flags.FLAGS)
    length = [] if any(a.startswith(("--train_steps", "--epochs")) for a in args) else [
        "--train_steps=10"]
    values(["train"] + length + list(args))
    return values


def parse_train_config(args, steps_per_epoch: int = 1, num_classes: int = 6):
    """tools.train's TrainConfig for a command line, parsed as
    `parse_train_flags` does. Raises what parsing raises (absl flags.Error,
    ValueError)."""
    from tools import train_flags  # pylint: disable=import-outside-toplevel
    return train_flags.train_config_from_flags(parse_train_flags(args), steps_per_epoch,
                                               num_classes)


TINY_FLAGS = """\
--prepare_src={root}/raw
--make_demo_data
--demo_tiles=2
--demo_size=256
--data_dir={root}/prepared
--bands=IRRGB
--elevation=ndsm
--patch_size=32
--batch_size=4
--shuffle_buffer=16
--filters=4
--depth=3
--center=serial_dilated
--loss=ce+jaccard
--max_lr=0.05
--precision=float32
--train_steps=8
--steps_per_loop=2
--eval_every=4
--checkpoint_every=4
--deterministic
--workdir_root={root}/runs
"""


def train_command(flagfile: str) -> list:
    return tool("train", f"--flagfile={flagfile}")


def write_flags(root: str, data_root: str = None, **overrides) -> str:
    """root/run.flags: TINY_FLAGS with the demo data under `data_root`
    (default `root`), runs under root/runs, and `overrides` (flag -> value)
    replacing or adding flags. Returns its path."""
    lines = TINY_FLAGS.format(root=data_root or root).splitlines()
    lines = [f"--workdir_root={root}/runs" if line.startswith("--workdir_root=") else line
             for line in lines]
    for name, value in overrides.items():
        line = f"--{name}={value}"
        index = [i for i, old in enumerate(lines) if old.split("=", 1)[0] == f"--{name}"]
        if index:
            lines[index[0]] = line
        else:
            lines.append(line)
    path = os.path.join(root, "run.flags")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def checkpoint_tensors(checkpoint_dir: str, prefixes=("model/",)) -> dict:
    """{name: array} of the newest checkpoint in `checkpoint_dir`, the
    variables whose names start with one of `prefixes`."""
    path = tf.train.latest_checkpoint(checkpoint_dir)
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if name.startswith(tuple(prefixes))}


def final_weights(root: str) -> dict:
    """Model, optimizer and step of the `latest` checkpoint of the one run under root/runs."""
    (run_dir,) = os.listdir(os.path.join(root, "runs"))
    return checkpoint_tensors(os.path.join(root, "runs", run_dir, "checkpoints", "latest"),
                              ("model/", "optimizer/", "step/"))


# --- builders ----------------------------------------------------------------------

PALETTE = [(255, 255, 255), (0, 0, 255), (0, 255, 0)]


def make_workdir(root, bands=("R", "G", "B", "nDSM"), class_names=("road", "roof", "tree"),
                 palette=PALETTE, seed=0, dtype=None, band_ranges=None, name="run"):
    """A workdir with config.json and a `best` checkpoint of a random U-Net.

    `dtype` / `band_ranges` are what dataset_info records of a v2 store (the
    model's input_dtype and band ranges); None leaves them out. A uint16
    model normalises with mean/std 257 times the uint8 ones, so it predicts
    on x * 257 what the uint8 model predicts on x.
    """
    from layers import UNet  # pylint: disable=import-outside-toplevel
    from train_loop import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
    kwargs = {"num_classes": len(class_names), "in_channels": len(bands),
              "filters": 4, "depth": 3}
    gain = 257.0 if dtype == "uint16" else 1.0
    data = {"dataset": "test", "class_names": list(class_names),
            "palette": [list(c) for c in palette], "bands": list(bands),
            "mean": [5.0 if b.endswith("DSM") else 128.0 * gain for b in bands],
            "std": [3.0 if b.endswith("DSM") else 60.0 * gain for b in bands]}
    if dtype is not None:
        data["dtype"] = dtype
    if band_ranges is not None:
        data["band_ranges"] = band_ranges
    model = UNet(**kwargs, mean=data["mean"], std=data["std"])
    model(tf.zeros([1, 8, 8, len(bands)]), training=False)
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.normal(scale=0.4, size=v.shape).astype(np.float32))
    workdir = os.path.join(root, name)
    workdir_lib.write_config(workdir, {"model": kwargs, "data": data})
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         workdir_lib.checkpoint_dir(workdir, "best"), 1)
    manager.save()
    return workdir, model


# Inputs of tools.predict: georeferenced RGBIR tiles with nDSM rasters.
B = "top_potsdam_2_11_RGBIR"  # the second tile, smaller than a window


def make_inputs(root):
    """Two georeferenced RGBIR tiles (one smaller than a window) with nDSM, a
    broken file and a 2-band file."""
    from core.data import geotiff  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(5)
    tiles_dir, elev_dir = os.path.join(root, "tiles"), os.path.join(root, "ndsm")
    os.makedirs(tiles_dir)
    os.makedirs(elev_dir)
    arrays = {}
    for name, (h, w), origin in (("a", (50, 70), (366000.0, 5808000.0)),
                                 (B, (20, 13), (366100.0, 5808100.0))):
        rgbir = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)  # R, G, B, IR
        height = rng.uniform(0, 10, (h, w)).astype(np.float32)
        if name == "a":
            height[3:5, 7:10] = np.nan
        geo = geotiff.make_geoinfo(25832, origin, 0.05)
        geotiff.write_geotiff(os.path.join(tiles_dir, f"{name}.tif"), rgbir, geo)
        # "a" is matched by name; "b" like Potsdam's archive, by its tile numbers.
        elev_name = "a" if name == "a" else "dsm_potsdam_02_11_normalized_lastools"
        geotiff.write_geotiff(os.path.join(elev_dir, f"{elev_name}.tif"), height, geo)
        arrays[name] = (rgbir, height)
    with open(os.path.join(tiles_dir, "broken.tif"), "wb") as f:
        f.write(b"II*\x00 this is not a TIFF")
    geotiff.write_geotiff(os.path.join(tiles_dir, "c.tif"), np.zeros((40, 40, 2), np.uint8), None)
    return tiles_dir, elev_dir, arrays


def expected_input(rgbir, height):
    """The model's bands R, G, B, nDSM with NaN replaced by the mean height."""
    filled = np.where(np.isnan(height), np.nanmean(height), height)
    return np.concatenate([rgbir[..., :3].astype(np.float32), filled[..., None]], axis=-1)


def make_folder_dataset(root, sizes, *, seed=0, elevation=True, bands=4):
    """images/<stem>_RGBIR.tif, masks/<stem>_label.tif (Potsdam colours),
    elevation/<stem>.tif. Returns {stem: (image, ids, elevation)}."""
    import tifffile  # pylint: disable=import-outside-toplevel
    from core.data import geotiff  # pylint: disable=import-outside-toplevel
    from core.data.datasets import ISPRS_CLASSES  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "elevation"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    out = {}
    palette = np.array(ISPRS_CLASSES.palette, np.uint8)
    for i, (h, w) in enumerate(sizes):
        stem = f"tile{i}"
        image = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        ids = rng.integers(0, 6, (h, w)).astype(np.uint8)
        elev = rng.normal(5.0, 2.0, (h, w)).astype(np.float32)
        # R,G,B,IR with the 4th band tagged data (ExtraSamples 0), as GDAL
        # writes PHOTOMETRIC=RGB + ALPHA=UNSPECIFIED.
        geotiff.write_geotiff(os.path.join(root, "images", f"{stem}_RGBIR.tif"), image, None)
        tifffile.imwrite(os.path.join(root, "masks", f"{stem}_label.tif"), palette[ids])
        if elevation:
            tifffile.imwrite(os.path.join(root, "elevation", f"{stem}.tif"), elev)
        out[stem] = (image, ids, elev)
    return out


def tree_state(root):
    """{relative path: (mtime_ns, sha1)} of every file under root."""
    state = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as handle:
                digest = hashlib.sha1(handle.read()).hexdigest()
            state[os.path.relpath(p, root)] = (os.stat(p).st_mtime_ns, digest)
    return state


def numpy_conv_same(x, w, b, dilation=1):
    """Direct 'SAME' convolution, stride 1, NHWC, float64."""
    k = w.shape[0]
    span = (k - 1) * dilation
    lo = span // 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (lo, span - lo), (lo, span - lo), (0, 0)])
    n, h, wd, _ = x.shape
    out = np.zeros([n, h, wd, w.shape[3]])
    for i in range(k):
        for j in range(k):
            patch = xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + wd, :]
            out += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return out + b


class PixelLinear(tf.Module):
    """logits = images @ w + b per pixel: a 1x1 conv whose gradient NumPy can
    write in two lines."""

    def __init__(self, in_channels, num_classes, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = tf.Variable(rng.normal(size=[in_channels, num_classes]).astype(np.float32) * 0.3)
        self.b = tf.Variable(np.zeros([num_classes], np.float32))

    @property
    def decay_variables(self):
        return (self.w,)

    def __call__(self, images, training=False):
        return tf.einsum("bhwc,ck->bhwk", tf.cast(images, tf.float32), self.w) + self.b


class Conv(tf.Module):
    """logits = conv2d(images, kernel [k,k,C,K], SAME zero padding) + bias."""

    def __init__(self, kernel, bias, depth=0):
        super().__init__()
        self.kernel = tf.Variable(np.asarray(kernel, np.float32), name="w")
        self.bias = tf.Variable(np.asarray(bias, np.float32), name="b")
        self.num_classes = int(self.kernel.shape[-1])
        self.in_channels = int(self.kernel.shape[-2])
        self.depth = depth

    def __call__(self, images, training=False):
        x = tf.cast(images, tf.float32)
        return tf.nn.conv2d(x, self.kernel, 1, "SAME") + self.bias


def random_conv(size=3, channels=3, classes=4, seed=0, symmetric=False, depth=0):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(size, size, channels, classes)).astype(np.float32)
    if symmetric:  # average over the 8 symmetries of the square
        kernel = sum(np.rot90(k, r, axes=(0, 1)) for k in (kernel, kernel[:, ::-1])
                     for r in range(4)) / 8
    return Conv(kernel, rng.normal(size=classes), depth=depth)


# --- exports ------------------------------------------------------------------------

# predict_tile settings of the test exports (in-graph TTA: tests/core/test_inference.py).
EXPORT_WINDOW, EXPORT_OVERLAP, EXPORT_TTA = 16, 0.25, None


def info_for(model):
    """model_info.json of a 3-class IR, R, G test export with the predict_tile
    settings above."""
    from core import export  # pylint: disable=import-outside-toplevel
    return export.make_model_info(
        model, class_names=["a", "b", "c"], palette=[(1, 2, 3), (4, 5, 6), (7, 8, 9)],
        bands=["IR", "R", "G"], window=EXPORT_WINDOW, overlap=EXPORT_OVERLAP, tta=EXPORT_TTA,
        batch_size=2,
        input_dtype="uint16", band_ranges={"G": [3, 4000], "IR": [0, 4095.5], "R": [1, 2]})


# --- rasters written with GDAL (rasterio) -------------------------------------------

H, W = 64, 80


def raster_data(dtype, bands, seed=0):
    """[bands,H,W] covering the dtype's range (random: a hard case for codecs)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == bool:
        return rng.integers(0, 2, (bands, H, W)).astype(np.uint8)
    if dtype.kind == "f":
        return rng.normal(100.0, 50.0, (bands, H, W)).astype(dtype)
    info = np.iinfo(dtype)
    low, high = max(info.min, -2 ** 20), min(info.max, 2 ** 20)
    return rng.integers(low, high, (bands, H, W), endpoint=True).astype(dtype)


def smooth_bands(bands):
    """[bands,H,W] uint8 gradients (JPEG's case: photos are smooth)."""
    yy, xx = np.mgrid[0:H, 0:W]
    planes = [xx * 3, yy * 3, (xx + yy) * 1.5, 200 - xx]
    return np.stack(planes[:bands]).astype(np.uint8)


def write_raster(path, data, *, driver="GTiff", colormap=None, mask=None,
                 overviews=None, env=None, **options):
    """Writes [bands,H,W] with rasterio (GDAL) and the creation options."""
    import warnings  # pylint: disable=import-outside-toplevel
    import rasterio  # pylint: disable=import-outside-toplevel
    from rasterio.errors import NotGeoreferencedWarning  # pylint: disable=import-outside-toplevel
    from rasterio.transform import from_origin  # pylint: disable=import-outside-toplevel
    profile = {"driver": driver, "height": data.shape[1], "width": data.shape[2],
               "count": data.shape[0], "dtype": data.dtype.name,
               "crs": "EPSG:25833", "transform": from_origin(368000, 5807000, 0.05, 0.05)}
    profile.update(options)
    with warnings.catch_warnings(), rasterio.Env(**(env or {})):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if colormap is not None:
                dst.write_colormap(1, colormap)
            if mask is not None:
                dst.write_mask(mask)
            if overviews:
                dst.build_overviews(overviews)
    return path
