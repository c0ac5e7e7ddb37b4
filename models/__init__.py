"""The Keras UNet family, its losses and metrics (no file I/O, no params.yaml)."""
