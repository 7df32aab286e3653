"""absl binaries: `python -m tools.<name> --helpfull`."""
