"""The `ssh` kind: the docker CLI of a machine reached over SSH (the `gcp` kind builds on it):
the remote docker, its one-round-trip scripts, and how an image gets there (shipping)."""
