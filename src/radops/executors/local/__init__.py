"""The `local` kind: this machine's Docker engine, through its Engine API (radops.images.engine)."""
