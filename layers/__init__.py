"""tf.Module building blocks and the U-Net family (no Keras)."""
