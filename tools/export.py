r"""Exports a trained model as a SavedModel that serves without this project.

  python -m tools.export --workdir=runs/unet-20260101-10h00mn [--checkpoint=best] \
      [--export_dir=runs/unet-20260101-10h00mn/export] [--window=512 --tta=d4]

Signatures (see core/export.py): `serving_default` (images [N,H,W,C] float32,
any H, W -> probabilities [N,H,W,K] float32, classes [N,H,W] uint8) and
`predict_tile` (one whole tile [H,W,C] -> the same, by sliding windows with
the --window/--overlap/--tta/--batch_size fixed here, recorded in
assets/model_info.json with class names, palette, bands, normalisation, and
the training inputs' "input_dtype" and "band_ranges" {band: [min, max]}, which
tools.predict checks inputs against).
Written to a temporary sibling folder and renamed; the previous export is kept
as <export_dir>.previous. A folder that is not an export is never replaced.
A temporary folder left by a killed export is removed by the next one.

  saved_model_cli show --dir runs/.../export --all
One tools.* binary per process (absl flags are global).
"""
import os

from absl import app, flags, logging

from tools import outputs

flags.DEFINE_string("workdir", None, "Experiment workdir written by tools.train.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to export.")
flags.DEFINE_string("export_dir", None, "Destination; default WORKDIR/export.")
flags.DEFINE_integer("window", 512, "predict_tile window side (multiple of 2**depth).")
flags.DEFINE_float("overlap", 0.25, "predict_tile window overlap, a fraction.")
flags.DEFINE_string("tta", "none", "predict_tile test-time augmentation: none, flips, "
                    "rot90, d4 or dihedral indices like 0,4,6.")
flags.DEFINE_integer("batch_size", 4, "predict_tile windows per model call.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.workdir, "export")
    try:  # before the restore: the temporary folder goes next to export_dir
        outputs.check_output_dir(export_dir, "--export_dir")
        outputs.check_output_dir(os.path.dirname(os.path.abspath(export_dir)),
                                 "--export_dir's parent")
    except outputs.OutputError as err:
        raise SystemExit(f"tools.export: {err}") from None
    from core import export

    try:
        # --- restore ---
        if export.is_export(FLAGS.workdir):
            raise ValueError(f"--workdir={FLAGS.workdir} is already a SavedModel; give "
                             f"the experiment workdir (with config.json)")
        model, info = export.load_model(FLAGS.workdir, FLAGS.checkpoint)
        logging.info("restored the %s checkpoint of %s", FLAGS.checkpoint, FLAGS.workdir)

        # --- model info ---
        model_info = export.make_model_info(
            model, class_names=info["class_names"], palette=info["palette"],
            bands=info["bands"], mean=info["mean"], std=info["std"], window=FLAGS.window,
            overlap=FLAGS.overlap, tta=FLAGS.tta, batch_size=FLAGS.batch_size,
            input_dtype=info.get("input_dtype"), band_ranges=info.get("band_ranges"),
            encoder_weights=info.get("encoder_weights"),
            extra={"dataset": info.get("dataset"), "checkpoint": FLAGS.checkpoint,
                   "workdir": os.path.abspath(FLAGS.workdir)})

        # --- export (SIGTERM unwinds: the temporary folder is removed) ---
        with outputs.sigterm_unwinds():
            path = export.export_saved_model(model, export_dir, model_info, log=logging.info)
    except ValueError as err:  # WorkdirError, ExportError: one clear message
        raise SystemExit(f"tools.export: {err}") from None
    logging.info("exported to %s (signatures serving_default, predict_tile; "
                 "assets/model_info.json)", path)
    print(path)


if __name__ == "__main__":
    app.run(main)
