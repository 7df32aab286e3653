r"""Writes synthetic demo tiles laid out like the official archives.

  python -m tools.make_demo_data --output_dir=data/demo_potsdam --dataset=potsdam \
      --tiles=8 --size=1024 --seed=0
  python -m tools.make_demo_data --output_dir=data/demo_inria --dataset=inria --tiles=10

Potsdam-like output: 4_Ortho_RGBIR/ (R,G,B,IR uint8), 1_DSM_normalisation/
(float32 nDSM), 1_DSM/ (float32 DSM), 5_Labels_all/ and
5_Labels_all_noBoundary/ (ISPRS colours; black eroded boundaries), tile ids
from the official train and test lists. INRIA-like output:
AerialImageDataset/train/{images,gt}/{city}{k}.tif, k <= 5 validation tiles.
Every file is a GeoTIFF (EPSG:25833 at 5 cm, or the city's UTM zone at 30 cm).

Safe to rerun: files already there with the same content are skipped,
missing ones are written, and a different file at a target path stops the
run with an error before anything is written. Nothing is ever deleted.
Prints each written file and the class proportions.
"""
from absl import app, flags, logging

from core.data import synthetic
from tools import outputs, renamed_flags

flags.DEFINE_string("output_dir", None, "Output folder (created if missing).")
flags.DEFINE_enum("dataset", "potsdam", ["potsdam", "inria"], "Archive layout to imitate.")
flags.DEFINE_integer("tiles", 8, "Number of tiles: about 3/4 training tiles, the rest "
                     "held out (Potsdam test list / INRIA tiles 1-5).")
flags.DEFINE_integer("size", 1024, f"Tile side in pixels (>= {synthetic.MIN_SIZE}).")
flags.DEFINE_integer("seed", 0, "Random seed; the same seed writes the same bytes.")
flags.mark_flag_as_required("output_dir")
flags.register_validator("tiles", lambda v: v is not None and v >= 1,
                         "--tiles must be an integer >= 1")
flags.register_validator("size", lambda v: v is not None and v >= synthetic.MIN_SIZE,
                         f"--size must be an integer >= {synthetic.MIN_SIZE} "
                         "(pixels per tile side; objects need room)")

flags.register_validator("seed", lambda v: v is not None and v >= 0,
                         "--seed must be an integer >= 0")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        outputs.check_output_dir(FLAGS.output_dir, "--output_dir")
        written = synthetic.make_demo_dataset(
            FLAGS.output_dir, dataset=FLAGS.dataset, tiles=FLAGS.tiles, size=FLAGS.size,
            seed=FLAGS.seed, log=print)
    except ValueError as err:
        logging.error("%s", err)
        raise SystemExit(1) from None
    print(f"{len(written)} file(s) written to {FLAGS.output_dir}"
          + ("" if written else " (all already present)"))


if __name__ == "__main__":
    app.run(main, flags_parser=renamed_flags.parser("make_demo_data"))
