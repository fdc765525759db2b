"""What executors and their callers exchange: requests, jobs, reports, and the job labels.

A job is a detached, never auto-removed container named `radops-<job id>` on the executor's
Docker engine, carrying the labels below. The engine is the only record of jobs: `jobs`, `logs`
and `stop` find containers by these labels, so any machine with the same executor sees the same
jobs and nothing local can drift. A kind with a scheduler keeps its record there instead (Slurm:
the batch job and its folder on the cluster's shared storage, holding the same labels).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from radops.errors import UsageError
from radops.executors.run_options import RunOptions
from radops.images.context import BuildOptions

LABEL_PREFIX = "dev.radops."
LABEL_JOB_ID = LABEL_PREFIX + "job-id"
LABEL_EXECUTOR = LABEL_PREFIX + "executor"
LABEL_COMMAND = LABEL_PREFIX + "command"
LABEL_IMAGE = LABEL_PREFIX + "image"
LABEL_CREATED_AT = LABEL_PREFIX + "created-at"
LABEL_NAME = LABEL_PREFIX + "name"
LABEL_USER = LABEL_PREFIX + "user"  # who started the job: user@host of the radops that ran it
LABEL_OPTIONS = LABEL_PREFIX + "options"  # the run options given (JSON), absent without any
LABEL_GPUS = LABEL_PREFIX + "gpus"  # the GPU indexes placement gave the job: `2,3`
LABEL_GPU_UUIDS = LABEL_PREFIX + "gpu-uuids"  # the same GPUs' UUIDs, in the same order
CONTAINER_PREFIX = "radops-"
# Docker's `local` log driver keeps output byte for byte (json-file turns bytes that are not
# UTF-8 into U+FFFD) and compresses it; the options cap a job's log at 1 GiB on disk.
LOG_DRIVER = "local"
LOG_OPTIONS = {"max-size": "64m", "max-file": "16"}

Stream = Literal["stdout", "stderr"]
# How an SSH executor gets an image to its engine: `auto` is the registry if one is configured,
# else a `docker save` stream over the SSH connection.
TRANSFERS = ("auto", "registry", "tunnel", "ssh")
BUILD_PLACES = ("local", "remote")
# A job id's shape: what new_job_id makes. A --name of this shape is refused (it would read
# as an id), so a whole id can be looked up without listing jobs.
JOB_ID = re.compile(r"[0-9a-f]{12}")
NAME_MAX = 200  # characters of a job's --name (a label value; tables show at most 40)


def new_job_id() -> str:
    """12 lowercase hex digits: short to type, 48 random bits so collisions do not happen."""
    import secrets  # only `run` makes ids: hmac and hashlib stay off `jobs`, `logs`, `stop`

    return secrets.token_hex(6)


def container_name(job_id: str) -> str:
    return CONTAINER_PREFIX + job_id


def this_user() -> str:
    """`user@host` of whoever runs radops here: what a job records as who started it."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{os.uname().nodename}"


@dataclass(frozen=True)
class Gpu:
    """One GPU of a machine, as nvidia-smi numbers it."""

    index: int
    uuid: str


@dataclass(frozen=True)
class QueueOptions:
    """What a job asks of a scheduler (Slurm's `sbatch`), beyond its container: executors
    without a queue refuse a request that sets any of these."""

    nodes: int | None = None  # one container per node
    time: str | None = None  # Slurm's time limit, e.g. 4:00:00
    partition: str | None = None
    extra_args: tuple[str, ...] = ()  # more sbatch options, each one argument (--qos=high)

    def given(self) -> list[str]:
        """The flags set, for an executor that has no queue to say what it cannot honour."""
        flags = [("--nodes", self.nodes), ("--time", self.time), ("--partition", self.partition)]
        found = [flag for flag, value in flags if value is not None]
        return found + (["--slurm-arg"] if self.extra_args else [])


@dataclass(frozen=True)
class JobRequest:
    """What `run` was asked to do. `command` is already split into the container's arguments."""

    context: Path
    command: list[str]
    dockerfile: str = "Dockerfile"
    env: dict[str, str] = field(default_factory=dict)
    gpus: str | None = None
    # --wait: seconds to wait for free GPUs (inf: no limit); None: refuse when too few are free
    gpu_wait: float | None = None
    name: str | None = None
    transfer: str = "auto"  # one of TRANSFERS; executors whose engine is here ignore it
    build: BuildOptions = field(default_factory=BuildOptions)  # --build-arg, --target, ...
    options: RunOptions = field(default_factory=RunOptions)  # -v, --shm-size, -p, ...
    # --build: "local" (here, then shipped) or "remote" (on the executor's engine); None: the
    # executor's own setting.
    build_on: str | None = None
    queue: QueueOptions = field(default_factory=QueueOptions)  # --nodes, --time, ... (Slurm)

    def __post_init__(self) -> None:
        if self.name is not None and (
            not self.name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in self.name)
        ):
            raise UsageError(f"invalid --name {self.name!r}: use printable text on one line")
        if self.name is not None and JOB_ID.fullmatch(self.name):
            raise UsageError(
                f"invalid --name {self.name!r}: it has the shape of a job id (12 hex digits)",
                "A name that reads as an id could name another job; choose another.",
            )
        if self.name is not None and len(self.name) > NAME_MAX:
            raise UsageError(f"--name is {len(self.name)} characters long; at most {NAME_MAX}")
        if self.transfer not in TRANSFERS:
            valid = ", ".join(TRANSFERS[:-1]) + " or " + TRANSFERS[-1]
            raise UsageError(f"invalid --transfer {self.transfer!r}: use {valid}")
        if self.build_on is not None and self.build_on not in BUILD_PLACES:
            raise UsageError(f"invalid --build {self.build_on!r}: use local or remote")


def check_new_name(name: str | None, jobs: Callable[[], list[Job]], executor: str) -> None:
    """Refuse a --name that an existing job's id starts with: a later `NAME` would pick the
    new job (a name beats an id prefix), where it meant that job until now. `jobs` is called
    only when there is a name: a run without one lists nothing."""
    if name is None:
        return
    for job in jobs():
        if job.id.startswith(name):
            raise name_taken(name, job.id, executor)


def name_taken(name: str, job_id: str | None, executor: str) -> UsageError:
    """--name NAME refused: job `job_id`'s id starts with it (None: an id the remote sent
    that is not one of radops' own)."""
    job = f"job {job_id}" if job_id and JOB_ID.fullmatch(job_id) else "another job"
    return UsageError(
        f"--name {name!r} is the start of the id of {job} on {executor!r}, which {name!r} "
        "names today",
        "Choose another name: one with a letter after f, a dash or a dot cannot be an id.",
    )


@dataclass(frozen=True)
class ConnectOptions:
    """How an executor that logs in to another machine (SSH, Slurm's login node) may come to
    trust that machine's host key when it is not known yet; others ignore these."""

    trust_new_host_key: bool = False  # trust it without asking (--accept-host-key)
    # The same for the machine itself only, not ProxyJump hosts on the way (a new VM whose
    # image publishes no host keys: trust on first use, which nobody consented to for hops).
    trust_new_target_key: bool = False
    # (host, key type, SHA256 fingerprint) -> trust it? Asked on a terminal; None: refuse.
    confirm_host_key: Callable[[str, str, str], bool] | None = None
    # SHA256 fingerprints the machine itself must show (a VM's published keys): any other key
    # is refused, whatever the two settings above say. ProxyJump hosts are not pinned.
    pinned_host_keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QueueInfo:
    """What a job's scheduler says of it (any kind with a queue: Slurm, a later Kubernetes)."""

    scheduler: str  # "slurm"
    job_id: str  # the scheduler's own id for the job ("" before it has one)
    state: str  # the scheduler's state: PENDING, RUNNING, COMPLETED, ...
    reason: str = ""  # why it waits, if it does
    nodes: str = ""  # where it runs or ran

    def to_json(self) -> dict[str, str]:
        return {f"{self.scheduler}_job_id": self.job_id, "state": self.state,
                "reason": self.reason, "nodes": self.nodes}  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One job as the executor's engine reports it."""

    id: str
    executor: str
    status: str  # created, running, exited, ...
    exit_code: int | None
    created_at: datetime | None
    command: list[str]
    image: str
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # RunOptions.to_json() of the run
    user: str | None = None  # user@host that started it (None: a job from before radops kept it)
    queue: QueueInfo | None = None  # a queued job's scheduler view; None without a scheduler
    gpus: list[Gpu] = field(default_factory=list)  # the GPUs placement gave it
    restarts: int | None = None  # times the engine restarted it (--restart); None: no policy

    @property
    def restart_policy(self) -> str | None:
        policy = self.options.get("restart")
        return policy if isinstance(policy, str) and policy != "no" else None

    def to_json(self) -> dict[str, Any]:
        extra = {} if self.queue is None else {"queue": self.queue.to_json()}
        return {
            "job_id": self.id,
            "executor": self.executor,
            "name": self.name,
            "status": self.status,
            "exit_code": self.exit_code,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "command": self.command,
            "image": self.image,
            "options": self.options,
            "user": self.user,
            "gpus": [asdict(g) for g in self.gpus],
            "restarts": self.restarts,
            **extra,
        }


@dataclass(frozen=True)
class EngineReport:
    """What `check` found: the engine answers, and what it runs on."""

    executor: str
    server_version: str
    os: str
    architecture: str
    gpus: list[str] = field(default_factory=list)
    gpus_free: int | None = None  # GPUs no radops job or other process uses; None: unknown

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}"

    def summary(self) -> str:
        gpus = f"{len(self.gpus)} GPU(s): {', '.join(self.gpus)}" if self.gpus else "no GPUs"
        if self.gpus and self.gpus_free is not None:
            gpus += f" ({self.gpus_free} free)"
        return f"{self.executor}: Docker {self.server_version} on {self.platform}, {gpus}"

    def to_json(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "server_version": self.server_version,
            "os": self.os,
            "architecture": self.architecture,
            "gpus": self.gpus,
            "gpus_free": self.gpus_free,
        }


@dataclass(frozen=True)
class GpuUse:
    """One GPU as `nvidia-smi` reports it."""

    index: int
    name: str
    utilization: int | None  # percent; None: the driver does not say
    memory_used_mib: int | None
    memory_total_mib: int | None
    temperature_c: int | None
    jobs: tuple[str, ...] = ()  # the radops jobs placed on it (running or restarting)


@dataclass(frozen=True)
class JobUse:
    """A running job's CPU and memory, as `docker stats` reports them."""

    job_id: str
    cpu_percent: float | None
    memory_used: str  # as docker prints it, e.g. 1.2GiB
    memory_limit: str
    memory_percent: float | None
    pids: int | None


@dataclass(frozen=True)
class TopReport:
    """What `top` shows: the GPUs of the machine and what each running job uses."""

    executor: str
    gpus: list[GpuUse] | None  # None: no nvidia-smi on the machine (no NVIDIA driver)
    jobs: list[JobUse]

    def to_json(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "gpus": None if self.gpus is None else [asdict(g) for g in self.gpus],
            "jobs": [asdict(j) for j in self.jobs],
        }


@dataclass(frozen=True)
class StopResult:
    """What `stop` did: the job as it is now, and whether it was running (and so stopped)."""

    job: Job
    was_running: bool


class PortStream(Protocol):
    """A TCP stream to a job's port: a socket, or an SSH channel."""

    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def close(self) -> None: ...


# Job states that `prune` removes: the job is not running and never will again by itself.
STOPPED_STATES = ("exited", "dead", "created")
# A radops image, built here (`radops/x:hash`) or pulled from a registry (`REG/.../radops/x:hash`).
RADOPS_IMAGE = r"(^|/)radops/[a-z0-9-]+:[0-9a-f]{16}$"
# radops' names for an image it holds for a while, on an SSH executor's engine: a build's own
# name until radops tags it (`build-` and 12 random hex digits), and what --no-cache replaced
# while a job still used it (`old-` and its id). `prune --images` removes them once unused.
RADOPS_HELD_IMAGE = r"(^|/)radops/[a-z0-9-]+:(build|old)-[0-9a-f]{12}$"


@dataclass(frozen=True)
class Image:
    """An image on an executor's engine."""

    id: str
    refs: list[str]  # its repository:tag names
    size: int  # bytes, as the engine reports it (layers shared with other images included)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "refs": self.refs, "size": self.size}


@dataclass(frozen=True)
class PrunePlan:
    """What `prune` would remove: stopped jobs, and radops images no container left uses."""

    jobs: list[Job]
    images: list[Image]

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": [j.id for j in self.jobs],
            "images": [i.to_json() for i in self.images],
        }


@dataclass(frozen=True)
class PruneResult:
    """What `prune` removed (job ids; images with their names), and the disk space the engine
    freed (bytes; None: unknown)."""

    jobs: list[str]
    images: list[Image]
    space_freed: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "images": [i.to_json() for i in self.images],
            "space_freed": self.space_freed,
        }
