r"""Exports a trained model as a SavedModel that serves without this project.

  python -m tools.export --model=runs/unet-20260101-10h00mn [--checkpoint=best] \
      [--export_dir=runs/unet-20260101-10h00mn/export] [--window=512 --tta=d4]

--model is the experiment folder (tools.train's --workdir). Signatures (see
core/export.py): `serving_default` (images [N,H,W,C] float32, any H, W ->
probabilities [N,H,W,K] float32, classes [N,H,W] uint8) and `predict_tile`
(one whole tile [H,W,C] -> the same, by sliding windows with the
--window/--overlap/--tta/--windows_per_call fixed here, recorded in
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

from tools import inference_flags, outputs, renamed_flags

flags.adopt_module_key_flags(inference_flags)  # --helpshort lists the shared flags too
flags.DEFINE_string("export_dir", None, "Destination; default MODEL/export.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    inference_flags.require("model")
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.model, "export")
    try:  # before the restore: the temporary folder goes next to export_dir
        outputs.check_output_dir(export_dir, "--export_dir")
        outputs.check_output_dir(os.path.dirname(os.path.abspath(export_dir)),
                                 "--export_dir's parent")
    except outputs.OutputError as err:
        raise SystemExit(f"tools.export: {err}") from None
    from core import export

    try:
        # --- restore ---
        if export.is_export(FLAGS.model):
            raise ValueError(f"--model={FLAGS.model} is already a SavedModel; give "
                             f"the experiment folder (with config.json)")
        model, info = inference_flags.load_model()
        logging.info("restored the %s checkpoint of %s", FLAGS.checkpoint, FLAGS.model)

        # --- model info ---
        model_info = export.make_model_info(
            model, class_names=info["class_names"], palette=info["palette"],
            bands=info["bands"], mean=info["mean"], std=info["std"],
            window=inference_flags.window(info), overlap=FLAGS.overlap, tta=FLAGS.tta,
            batch_size=FLAGS.windows_per_call,
            input_dtype=info.get("input_dtype"), band_ranges=info.get("band_ranges"),
            encoder_weights=info.get("encoder_weights"),
            extra={"dataset": info.get("dataset"), "checkpoint": FLAGS.checkpoint,
                   "workdir": os.path.abspath(FLAGS.model)})

        # --- export (SIGTERM unwinds: the temporary folder is removed) ---
        with outputs.sigterm_unwinds():
            path = export.export_saved_model(model, export_dir, model_info, log=logging.info)
    except ValueError as err:  # WorkdirError, ExportError: one clear message
        raise SystemExit(f"tools.export: {err}") from None
    logging.info("exported to %s (signatures serving_default, predict_tile; "
                 "assets/model_info.json)", path)
    print(path)


if __name__ == "__main__":
    app.run(main, flags_parser=renamed_flags.parser("export"))
