"""`--data_dir`, the prepared store, declared once for every binary that
reads or writes one (tools.prepare, train, lr_find, time_pipeline through
tools.data_flags; tools.evaluate directly)."""
from absl import flags

flags.DEFINE_string("data_dir", None, "Prepared store: the folder with info.json, written "
                    "by tools.prepare.")
