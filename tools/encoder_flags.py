"""`--encoder`, declared once for the binaries that name an encoder:
tools.train (and tools.lr_find) build the U-Net on it, tools.import_encoder
writes a pretrained one's weights for them. One declaration, so the two can
share a process (tests) and the name means one thing."""
from absl import flags

from train_loop.config import ModelConfig

PRETRAINED = ["resnet50", "convnext_tiny"]  # layers.pretrained.ENCODERS

flags.DEFINE_enum("encoder", ModelConfig.encoder, ["unet"] + PRETRAINED,
                  "U-Net encoder: unet (hand-built, --filters/--residual) or a pretrained "
                  "network (layers.pretrained), whose weights tools.import_encoder writes.")
