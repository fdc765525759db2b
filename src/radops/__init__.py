"""radops: run a folder's Docker image as a job on a local, SSH, GCP or Slurm executor."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# docker-py imports its ssh:// transport, and with it paramiko (~0.2 s, a third of a local
# `run`), as soon as `docker` is imported, although it treats that transport as optional.
# Only DOCKER_HOST=ssh://... needs it (radops' own SSH executors use paramiko directly), so
# the import is refused here, before anything can import docker.
if not _os.environ.get("DOCKER_HOST", "").strip().lower().startswith("ssh://"):
    _sys.modules.setdefault("docker.transport.sshconn", None)  # type: ignore[arg-type]
