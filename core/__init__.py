"""ortholoop core: the maths and the data (no training loop)."""
