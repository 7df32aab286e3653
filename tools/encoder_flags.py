"""`--encoder`, declared once: the U-Net encoder tools.train builds and the
one tools.import_encoder converts weights for (a flag name means one thing in
every binary, and both binaries' flags load into one process in the tests)."""
from absl import flags

from train_loop.config import ModelConfig

# "unet" is the hand-built encoder; the others are layers.pretrained.ENCODERS
# (named here without importing TensorFlow at flag-parse time).
ENCODER_NAMES = ("unet", "resnet50", "convnext_tiny")

flags.DEFINE_enum("encoder", ModelConfig.encoder, list(ENCODER_NAMES),
                  "U-Net encoder: unet (hand-built, --filters/--residual) or a pretrained "
                  "network (layers.pretrained; weights from tools.import_encoder, whose "
                  "--encoder names the network to convert).")
