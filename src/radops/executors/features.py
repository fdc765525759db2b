"""What an executor kind can do, asked before connecting: the CLI and the API ask about a
feature, never about a kind's name (SkyPilot's per-cloud feature check is the model)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radops.executors.model import JobRequest


class Feature(enum.Enum):
    """One thing a user can ask of an executor that not every kind does. The value is how the
    user asks for it, for messages."""

    TRANSFER = "--transfer"  # choose how the image reaches the engine
    REMOTE_BUILD = "--build remote"  # build on the executor's own engine
    QUEUE = "queue options"  # --nodes, --time, --partition, --slurm-arg: a scheduler's request
    PUBLISH = "-p/--publish"  # publish a job's port on the executor's machine
    GPUS_ALL = "--gpus all"  # every GPU of the machine
    LOG_TIMESTAMPS = "logs --timestamps"
    CP = "cp"  # files to and from a job
    EXEC = "exec"  # a command in a running job
    FORWARD = "forward"  # a job's port, reached from here
    TOP = "top"  # GPU and job use
    CONNECT = "connect"  # an interactive shell on the executor's machine
    IMAGES = "prune --images"  # the executor's engine keeps the job images (prune removes them)
    OWN_VM = "--delete-vm"  # the machine is a VM radops made for this executor (and may delete)


# What a machine reached over SSH offers (every kind adds or takes away from it).
ALL_FEATURES = frozenset(Feature) - {Feature.OWN_VM}


def request_features(request: JobRequest) -> dict[Feature, str]:
    """The features a `run` request uses, each with the flags that asked for it."""
    used: dict[Feature, str] = {}
    if request.transfer != "auto":
        used[Feature.TRANSFER] = f"--transfer {request.transfer}"
    if request.build_on == "remote":
        used[Feature.REMOTE_BUILD] = "--build remote"
    if request.queue.given():
        used[Feature.QUEUE] = ", ".join(request.queue.given())
    if request.options.publish:
        used[Feature.PUBLISH] = "-p/--publish"
    if request.gpus == "all":
        used[Feature.GPUS_ALL] = "--gpus all"
    return used
