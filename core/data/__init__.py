"""Tile I/O, label codecs, patches, augmentation and tf.data pipelines."""
