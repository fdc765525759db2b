"""radops: run a folder's Docker image as a job on a local, SSH or GCP executor."""

__version__ = "0.1.0"
