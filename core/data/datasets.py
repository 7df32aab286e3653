"""The data set registry: one frozen record per supported archive.

Every fact about a data set lives in its `Dataset` record: how its files are
found and paired, its default source band names, the elevation kinds it can
have, its classes (`LabelSpec`), its official split and where it comes from.
The `--dataset` flag enums (`DATASET_NAMES`), `core.data.prepare`, the
trainer's report and the demo generator read the records; adding a data set
is one record here (its finder is a generic one of `core.data.dataset_files`
with the data set's file patterns bound) plus one test.

    sources = find_sources("potsdam", "/data/potsdam", eroded="val")
    spec = label_spec("folder", my_classes)     # the LabelSpec to decode with
    bands = get_dataset("vaihingen").bands      # "IRRG"

This module is the one home of the data sets' class sets (ISPRS_CLASSES,
INRIA_CLASSES, ...); `core.data.labels` keeps the LabelSpec type and the
encoders, `core.data.label_decode` the decoder.

Only file names are looked at; no pixel is read. Layout problems raise
`core.data.tiles.TileError`, one line naming the folder and the expected
layout. Where each fact comes from is said above each record: the data
sets' own pages and repositories, and torchgeo's loaders (read, not copied).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path

from core.data import dataset_files as files_lib
from core.data.dataset_files import Source  # noqa: F401  (part of this API)
from core.data.labels import LabelSpec

# Elevation kinds an archive can have -> the channel name each is fed as.
# One home: prepare, the store reader, augmentation, evaluate and predict.
ELEVATION_BANDS = {"dsm": "DSM", "ndsm": "nDSM"}
ELEVATION_KINDS = tuple(ELEVATION_BANDS)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Everything the toolkit knows about one data set.

    Attributes:
      name: registry key and flag value, lower case.
      description: one line: what it is, and the source URL.
      layout: one line: the folders and file names `find` expects under the
        source root (quoted in every layout error).
      bands: band names of the source images, e.g. "RGBIR", "IRRG"; None
        when they follow from the band count (folder).
      elevations: ((kind, where), ...): the elevation kinds the archive can
        have ("dsm", "ndsm") and the files that hold them.
      labels: the classes (`LabelSpec`: names, palette, raw ids, ignore
        values/colours, classes left out of the means); for "folder" the
        default when no class file is given.
      split: one line: what decides the official train/val split.
      find: (root: Path, eroded, layout: str) -> [Source].
      val_tiles: tile names of the official val split when it is a fixed
        list, else () and `split` says what decides it.
      eroded: whether the archive has eroded ("noBoundary") labels.
      label_threshold: colour labels whose channels are not exactly 0/255
        (lossy saving): each channel is to be binarised (>= threshold -> 255,
        else 0) before the palette lookup; None = exact colours.
    """
    name: str
    description: str
    layout: str
    bands: str | None
    elevations: tuple[tuple[str, str], ...]
    labels: LabelSpec
    split: str
    find: files_lib.Finder
    val_tiles: tuple[str, ...] = ()
    eroded: bool = False
    label_threshold: int | None = None

    def __post_init__(self):
        if (self.name != self.name.lower()
                or any(k not in ELEVATION_KINDS for k, _ in self.elevations)):
            raise ValueError(f"Dataset {self.name!r}: expected a lower-case name "
                             f"and elevation kinds in {ELEVATION_KINDS}.")

    @property
    def elevation_kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.elevations)


# --- ISPRS 2D semantic labelling. Class order and colours: the benchmark
# pages (https://www.isprs.org/education/benchmarks/UrbanSemLab/) and
# torchgeo's Potsdam2D/Vaihingen2D colormaps (which list clutter first).
# Black is the boundary of the eroded ("noBoundary") ground truth.
ISPRS_CLASSES = LabelSpec(
    name="potsdam",
    class_names=("impervious_surfaces", "building", "low_vegetation", "tree",
                 "car", "clutter"),
    palette=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0),
             (255, 255, 0), (255, 0, 0)),
    ignore_colors=((0, 0, 0),),
    excluded_from_mean=("clutter",),
)


# Potsdam: file names of the archive folders 4_Ortho_RGBIR, 5_Labels_all(_
# noBoundary), 1_DSM, 1_DSM_normalisation; val = the 14 tiles released without
# labels during the benchmark (torchgeo's Potsdam2D "test" list).
POTSDAM_VAL_IDS = ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15",
                   "5_13", "5_14", "5_15", "6_13", "6_14", "6_15", "7_13")


def _potsdam_expected(kind: str, key: str) -> str:
    a, b = (int(v) for v in key.split("_"))
    return {"label": f"5_Labels_all/top_potsdam_{a}_{b}_label.tif",
            "eroded": f"5_Labels_all_noBoundary/top_potsdam_{a}_{b}_label_noBoundary.tif",
            "dsm": f"dsm_potsdam_{a:02d}_{b:02d}.tif",
            "ndsm": f"dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.*"}[kind]


POTSDAM = Dataset(
    name="potsdam",
    description="ISPRS 2D Semantic Labeling Potsdam: 38 true-orthophoto tiles "
                "6000x6000 at 5 cm, RGBIR + DSM/nDSM, 6 classes; https://www.isprs.org"
                "/education/benchmarks/UrbanSemLab/2d-sem-label-potsdam.aspx",
    layout="4_Ortho_RGBIR/top_potsdam_<A>_<B>_RGBIR.tif, 5_Labels_all/top_potsdam_"
           "<A>_<B>_label.tif or 5_Labels_all_noBoundary/..._label_noBoundary.tif, "
           "optional 1_DSM/dsm_potsdam_<AA>_<BB>.tif and 1_DSM_normalisation/"
           "dsm_potsdam_<AA>_<BB>_normalized_lastools.<jpg|tif>, anywhere under the root",
    bands="RGBIR",
    elevations=(("dsm", "1_DSM/dsm_potsdam_<AA>_<BB>.tif"),
                ("ndsm", "1_DSM_normalisation/dsm_potsdam_<AA>_<BB>_normalized_lastools.jpg")),
    labels=ISPRS_CLASSES,
    split="the 14 tiles the benchmark held out (2_13 ... 7_13) are val",
    find=functools.partial(
        files_lib.find_keyed,
        image=r"top_potsdam_(\d+)_(\d+)_RGBIR\.tif",
        label=r"top_potsdam_(\d+)_(\d+)_label\.tif",
        eroded_label=r"top_potsdam_(\d+)_(\d+)_label_noBoundary\.tif",
        elevations={"dsm": r"dsm_potsdam_(\d\d)_(\d\d)\.tif",
                    "ndsm": r"dsm_potsdam_(\d\d)_(\d\d)_normalized_lastools\.\w+"},
        val=POTSDAM_VAL_IDS, name=lambda key: f"top_potsdam_{key}",
        expected=_potsdam_expected, shown="Potsdam image 'top_potsdam_*_RGBIR.tif'"),
    val_tiles=tuple(f"top_potsdam_{t}" for t in POTSDAM_VAL_IDS),
    eroded=True,
)

# Vaihingen: ISPRS_semantic_labeling_Vaihingen.zip holds top/ (IRRG),
# dsm/ and gts_for_participants/ (the 16 training areas); the other 17
# areas' labels are in ..._ground_truth_COMPLETE.zip, the eroded ones in
# ..._ground_truth_eroded_COMPLETE.zip (torchgeo's Vaihingen2D file lists
# and train/test split; mmsegmentation's Vaihingen preparation).
VAIHINGEN_TRAIN_AREAS = (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)
VAIHINGEN_VAL_AREAS = (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38)


def _vaihingen_expected(kind: str, key: str) -> str:
    return {"label": f"top_mosaic_09cm_{key}.tif (gts_for_participants/ has the "
                     "training areas, ..._ground_truth_COMPLETE.zip all)",
            "eroded": f"top_mosaic_09cm_{key}_noBoundary.tif (from "
                      "..._ground_truth_eroded_COMPLETE.zip)",
            "dsm": f"dsm/dsm_09cm_matching_{key}.tif"}[kind]


VAIHINGEN = Dataset(
    name="vaihingen",
    description="ISPRS 2D Semantic Labeling Vaihingen: 33 true-orthophoto areas "
                "about 2000x2500 at 9 cm, IRRG + DSM, 6 classes; https://www.isprs.org"
                "/education/benchmarks/UrbanSemLab/2d-sem-label-vaihingen.aspx",
    layout="top/top_mosaic_09cm_area<N>.tif, labels top_mosaic_09cm_area<N>.tif in "
           "another folder (gts_for_participants/ or the ground_truth_COMPLETE "
           "archive) or top_mosaic_09cm_area<N>_noBoundary.tif (eroded), optional "
           "dsm/dsm_09cm_matching_area<N>.tif, anywhere under the root",
    bands="IRRG",
    elevations=(("dsm", "dsm/dsm_09cm_matching_area<N>.tif"),),
    labels=dataclasses.replace(ISPRS_CLASSES, name="vaihingen"),
    split="the 17 areas without participant labels (2, 4, ..., 38) are val",
    find=functools.partial(
        files_lib.find_keyed,
        image=r"top_mosaic_09cm_(area\d+)\.tif",
        label=r"top_mosaic_09cm_(area\d+)\.tif",
        eroded_label=r"top_mosaic_09cm_(area\d+)_noBoundary\.tif",
        elevations={"dsm": r"dsm_09cm_matching_(area\d+)\.tif"},
        val=[f"area{n}" for n in VAIHINGEN_VAL_AREAS],
        name=lambda key: f"top_mosaic_09cm_{key}", expected=_vaihingen_expected,
        # Images and labels share file names: images are the ones in top/.
        image_where=lambda p: p.parent.name == "top",
        label_where=lambda p: p.parent.name != "top",
        shown="Vaihingen image 'top/top_mosaic_09cm_area*.tif'"),
    val_tiles=tuple(f"top_mosaic_09cm_area{n}" for n in VAIHINGEN_VAL_AREAS),
    eroded=True,
)

# INRIA Aerial Image Labeling: 0/255 building masks; its page suggests the
# first five tiles of each city for validation (torchgeo's InriaAerialImage
# Labeling does the same).
INRIA_CLASSES = LabelSpec(
    name="inria",
    class_names=("background", "building"),
    palette=((0, 0, 0), (255, 255, 255)),   # display only
    ids=(0, 255),
)
INRIA_VAL_NUMBERS = range(1, 6)


def _inria_split(base: Path, stem: str) -> str:
    match = re.fullmatch(r"(.*?)(\d+)", stem)
    return "val" if match and int(match.group(2)) in INRIA_VAL_NUMBERS else "train"


INRIA = Dataset(
    name="inria",
    description="Inria Aerial Image Labeling: 5000x5000 RGB tiles at 30 cm, 36 per "
                "city, building/background; https://project.inria.fr/aerialimagelabeling/",
    layout="AerialImageDataset/train/images/<city><k>.tif and .../gt/<city><k>.tif "
           "(or train/images and train/gt, or images/ and gt/ in the root)",
    bands="RGB",
    elevations=(),
    labels=INRIA_CLASSES,
    split="tiles 1-5 of each city are val (the benchmark's suggestion)",
    find=functools.partial(
        files_lib.find_paired, roots=(("AerialImageDataset/train",), ("train",), ("",)),
        images="images", masks="gt", split=_inria_split),
)

# LoveDA: masks 0 = no-data (ignore), 1..7 classes; colours from COLOR_MAP of
# github.com/Junjue-Wang/LoveDA Semantic_Segmentation/data/loveda.py (which
# subtracts 1 from the masks); Train/Val/Test x Urban/Rural with images_png/
# and masks_png/ as in torchgeo's LoveDA. Test/ has no masks.
LOVEDA_CLASSES = LabelSpec(
    name="loveda",
    class_names=("background", "building", "road", "water", "barren", "forest",
                 "agriculture"),
    palette=((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255),
             (159, 129, 183), (0, 255, 0), (255, 195, 128)),
    ids=(1, 2, 3, 4, 5, 6, 7),
    ignore_values=(0,),
)

LOVEDA = Dataset(
    name="loveda",
    description="LoveDA: 1024x1024 RGB tiles at 0.3 m, urban and rural scenes of "
                "Nanjing, Changzhou and Wuhan, 7 classes; https://github.com/"
                "Junjue-Wang/LoveDA (https://zenodo.org/records/5706578)",
    layout="Train/{Urban,Rural}/images_png/<n>.png with masks_png/<n>.png, Val/ "
           "likewise (Test/ has no masks and is skipped), in the root or LoveDA/",
    bands="RGB",
    elevations=(),
    labels=LOVEDA_CLASSES,
    split="the official Train/ folders are train, Val/ are val",
    find=functools.partial(
        files_lib.find_paired,
        roots=(("Train/*", "Val/*"), ("LoveDA/Train/*", "LoveDA/Val/*")),
        images="images_png", masks="masks_png", extensions=(".png",),
        split=lambda base, stem: base.parent.name.lower(),
        # Tile names carry split and scene so they are unique in the store.
        name=lambda base, stem: f"{base.parent.name}_{base.name}_{stem}".lower()),
)

# DeepGlobe Land Cover (CVPR 2018): RGB masks, unknown = black (ignore); names,
# colours, <id>_sat.jpg / <id>_mask.png and "mask values may not be pure 0
# and 255: binarise at 128" from the challenge description (names, colours
# and files also in torchgeo's DeepGlobeLandCover). Only the 803 training
# images have masks, so val is our rule: ids with crc32 % 100 below
# DEEPGLOBE_VAL_PERCENT (about 20 %; a tile keeps its split whatever other
# tiles exist).
DEEPGLOBE_CLASSES = LabelSpec(
    name="deepglobe",
    class_names=("urban_land", "agriculture_land", "rangeland", "forest_land",
                 "water", "barren_land"),
    palette=((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0),
             (0, 0, 255), (255, 255, 255)),
    ignore_colors=((0, 0, 0),),
)
DEEPGLOBE_VAL_PERCENT = 20

DEEPGLOBE = Dataset(
    name="deepglobe",
    description="DeepGlobe 2018 Land Cover: 2448x2448 RGB satellite tiles at 50 cm, "
                "6 classes + unknown; https://competitions.codalab.org/competitions/18468",
    layout="<id>_sat.jpg next to <id>_mask.png (the train/ folder; folders without "
           "any mask, valid/ and test/, are skipped)",
    bands="RGB",
    elevations=(),
    labels=DEEPGLOBE_CLASSES,
    split=f"no official val masks: ids with crc32(id) % 100 < "
          f"{DEEPGLOBE_VAL_PERCENT} are val (about {DEEPGLOBE_VAL_PERCENT} %)",
    label_threshold=128,
    find=functools.partial(
        files_lib.find_sidecar, image=r"(\d+)_sat\.jpg", mask=r"(\d+)_mask\.png",
        split=lambda key: ("val" if files_lib.stable_fraction(key, DEEPGLOBE_VAL_PERCENT)
                           else "train")),
)

# OpenEarthMap: masks 0 = unknown (ignore), 1..8 classes; class names of the
# paper (Xia et al., WACV 2023), colours of class_rgb_oem in
# github.com/bao18/open_earth_map oem/utils.py; layout and train.txt /
# val.txt / test.txt from the readme of the zenodo release.
OPENEARTHMAP_CLASSES = LabelSpec(
    name="openearthmap",
    class_names=("bareland", "rangeland", "developed_space", "road", "tree",
                 "water", "agriculture_land", "building"),
    palette=((128, 0, 0), (0, 255, 36), (148, 148, 148), (255, 255, 255),
             (34, 97, 38), (0, 69, 255), (75, 181, 73), (222, 31, 7)),
    ids=(1, 2, 3, 4, 5, 6, 7, 8),
    ignore_values=(0,),
)

OPENEARTHMAP = Dataset(
    name="openearthmap",
    description="OpenEarthMap: 5000 aerial and satellite RGB tiles at 0.25-0.5 m from "
                "97 regions, 8 classes; https://open-earth-map.org "
                "(https://zenodo.org/record/7223446)",
    layout="<region>/images/<region>_<n>.tif and <region>/labels/<region>_<n>.tif, "
           "train.txt, val.txt (and test.txt) in the root or its one sub-folder",
    bands="RGB",
    elevations=(),
    labels=OPENEARTHMAP_CLASSES,
    split="the files listed in val.txt are val, train.txt train (test.txt skipped)",
    find=functools.partial(
        files_lib.find_listed, images="images", labels="labels",
        lists={"train.txt": "train", "val.txt": "val", "test.txt": None},
        missing_hint=" (xBD tiles: run data/compile_xbd.py of "
                     "github.com/bao18/open_earth_map)"),
)

# Any folder (core.data.prepare's folder layout). No official split: the
# caller moves tiles to val (--val_tiles, --val_fraction).
FOLDER = Dataset(
    name="folder",
    description="Any folder of tiles: images/ and masks/ paired by file stem, "
                "optional elevation/ (DSM) and ndsm/ folders",
    layout="images/<stem>.<tif|png|jpg> and masks/<stem>[_label|_mask|...].<ext>, "
           "optional elevation/<stem>.tif (dsm) and ndsm/<stem>.tif",
    bands=None,
    elevations=(("dsm", "elevation/<stem>.tif"), ("ndsm", "ndsm/<stem>.tif")),
    labels=ISPRS_CLASSES,
    split="none: every tile is train (the caller moves tiles to val)",
    find=functools.partial(files_lib.find_folder,
                           elevation_folders={"dsm": "elevation", "ndsm": "ndsm"}),
)

# --- The registry: a record defined above and listed here is everywhere.
REGISTRY = {d.name: d for d in (POTSDAM, VAIHINGEN, INRIA, LOVEDA, DEEPGLOBE,
                                OPENEARTHMAP, FOLDER)}
DATASET_NAMES = tuple(REGISTRY)


def get_dataset(name: str) -> Dataset:
    """The record called `name` (any case); ValueError naming the choices."""
    record = REGISTRY.get(str(name).lower())
    if record is None:
        raise ValueError(f"Unknown data set {name!r}; expected one of "
                         f"{', '.join(REGISTRY)}.")
    return record


def label_spec(dataset: str | Dataset, classes: LabelSpec | None = None) -> LabelSpec:
    """The classes a data set's labels are decoded with: `classes` (e.g. a
    user's class file) when given, else the record's (folder: ISPRS)."""
    if classes is not None and not isinstance(classes, LabelSpec):
        raise TypeError(f"classes must be a LabelSpec or None, got "
                        f"{type(classes).__name__}.")
    record = dataset if isinstance(dataset, Dataset) else get_dataset(dataset)
    return record.labels if classes is None else classes


def find_sources(dataset: str | Dataset, src: str | os.PathLike, *,
                 eroded: bool | str = False,
                 classes: LabelSpec | None = None) -> list[Source]:
    """The labelled tiles of one archive, sorted by name.

    Args:
      dataset: a name in DATASET_NAMES, or a record.
      src: the archive root (only listed, never modified).
      eroded: data sets with eroded labels (potsdam, vaihingen): True for
        every tile, "val" for the val split only, False never.
      classes: the classes the caller decodes with (`label_spec`); checked
        here; no built-in layout depends on it.

    Returns:
      [Source]: every elevation kind the archive has for each tile, and the
      official split ("train" for every folder tile).

    Raises:
      TileError: a layout problem (one line: the folder, the expected layout).
      ValueError: unknown data set, bad `eroded`, or `eroded` asked of a data
        set without eroded labels.
    """
    record = dataset if isinstance(dataset, Dataset) else get_dataset(dataset)
    label_spec(record, classes)
    if eroded not in (True, False, "val"):
        raise ValueError(f"eroded must be True, False or 'val', got {eroded!r}.")
    if eroded and not record.eroded:
        raise ValueError(f"eroded={eroded!r}: data set {record.name!r} has no "
                         "eroded labels.")
    src = Path(src)
    if not src.is_dir():
        raise files_lib.fail(src, "source folder not found", record.layout)
    return record.find(src, eroded, record.layout)
