"""ortholoop: low-level TensorFlow segmentation of orthorectified aerial tiles.

TensorFlow comes through extras so that a CPU machine never pulls the CUDA
wheel: `pip install -e ".[cpu]"` on a laptop or CI, `".[gpu]"` on a CUDA host.
"""
from setuptools import find_packages, setup

EXTRAS = {
    "cpu": ["tensorflow-cpu>=2.21"],
    "gpu": ["tensorflow[and-cuda]>=2.21"],
    # GDAL through rasterio: core.data.raster reads what tifffile/imagecodecs
    # and Pillow do not (JPEG 2000 orthophotos, VRT mosaics, TIFF codecs
    # imagecodecs lacks) through it when installed.
    # Maps out (tools.predict --stream/--vector): rasterio's windowed reads,
    # COG driver, polygonizer (features.shapes) and rasterize; shapely's
    # geometries (GeoJSON in one call, topology-preserving simplification,
    # areas); pyogrio, which writes GeoPackage / GeoJSON through GDAL's OGR
    # drivers without geopandas.
    "geo": ["rasterio>=1.3", "shapely>=2.0", "pyogrio>=0.7"],
    "plot": ["matplotlib>=3.7"],
    # What the test suite imports: references (scikit-learn for metrics,
    # SciPy's ndimage for eroded boundaries, Keras that ships with TensorFlow
    # for the focal loss and SGD), rasterio to read back georeferenced
    # output, matplotlib for the PNGs tools write. PyTorch, the reference of
    # the one-cycle schedule, is used when present but not required: its
    # wheels are gigabytes; hand-computed values always run. shapely and
    # pyogrio: the polygon outputs are tested (the rest of the geo extra).
    "test": ["pytest>=7", "scikit-learn>=1.3", "scipy>=1.10", "rasterio>=1.3",
             "shapely>=2.0", "pyogrio>=0.7", "matplotlib>=3.7"],
}
EXTRAS["all"] = sorted({dep for key in ("geo", "plot", "test") for dep in EXTRAS[key]})

setup(
    name="ortholoop",
    version="0.1.0",
    description=("Semantic segmentation of orthorectified aerial tiles on "
                 "low-level TensorFlow: tf.Module layers, GradientTape step "
                 "functions, one-cycle SGD, mixed precision, SavedModel export."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["core", "core.*", "layers", "layers.*",
                                    "train_loop", "train_loop.*", "tools", "tools.*"]),
    install_requires=[
        "numpy>=1.24",
        "imageio>=2.31",
        "tifffile>=2023.7.10",
        # tifffile decodes only uncompressed/DEFLATE/PackBits TIFFs by itself:
        # LZW, JPEG (incl. YCbCr), ZSTD, LERC, WebP and the floating-point
        # predictor GDAL writes need imagecodecs' codecs, and 16-bit PNGs are
        # read through its libpng (Pillow cuts 16-bit RGB to 8 bits).
        "imagecodecs>=2024.1.1",
        # Palette PNGs are read with Pillow itself (imageio's pillow plugin
        # expands them to colours); imageio installs it, named here because
        # core.data.raster imports it.
        "pillow>=10.0",
        "absl-py>=1.4",
        # tf.summary's scalar/image writers live in the tensorboard package,
        # which TensorFlow 2.21 no longer installs by itself.
        "tensorboard>=2.16",
    ],
    extras_require=EXTRAS,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: GIS",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
