"""What `rm` and `prune` decide, the same for every executor kind (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from radops.errors import UsageError
from radops.executors.docker.labels import job_from_inspect
from radops.executors.model import RADOPS_HELD_IMAGE, RADOPS_IMAGE, STOPPED_STATES, Image, Job

# docker's human sizes (`docker system df`): decimal units, as go-units' HumanSize writes them.
_HUMAN = re.compile(r"^([\d.]+)\s*([kMGTP]?B)$")
_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}


def running_refused(job: Job, executor: str) -> UsageError:
    return UsageError(
        f"job {job.id} on {executor!r} is running",
        f"Stop it first (`radops executors stop {executor} {job.id}`), or remove it with --force.",
    )


def not_running(job: Job, executor: str) -> UsageError:
    return UsageError(
        f"job {job.id} on {executor!r} is not running ({job.status})",
        f"Its files can still be copied: radops executors cp {executor} {job.id}:PATH .",
    )


def running_job(data: dict[str, Any], executor: str) -> Job:
    """The job a container's `docker inspect` describes, if it runs; else a UsageError."""
    job = job_from_inspect(data, executor)
    if not data["State"]["Running"]:
        raise not_running(job, executor)
    return job


def exec_flags(interactive: bool, tty: bool) -> list[str]:
    """`docker exec`'s flags for `exec -i/-t`."""
    return [*(["--interactive"] if interactive else []), *(["--tty"] if tty else [])]


def job_address(data: dict[str, Any], executor: str) -> str:
    """The IP address of a running job's container, as its machine reaches it."""
    job = running_job(data, executor)
    if data["HostConfig"].get("NetworkMode") == "host":
        return "127.0.0.1"
    settings = data.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    for address in (settings.get("IPAddress"), *(n.get("IPAddress") for n in networks.values())):
        if address:
            return str(address)
    raise UsageError(f"job {job.id} on {executor!r} has no network address (--network none?)")


def stopped_jobs(jobs: Iterable[Job], older_than: datetime | None) -> list[Job]:
    """Jobs that ended (or never started), created before `older_than` if given."""
    return [
        job
        for job in jobs
        if job.status in STOPPED_STATES
        and (older_than is None or (job.created_at is not None and job.created_at < older_than))
    ]


def unused_radops_images(images: Iterable[Image], used_ids: set[str]) -> list[Image]:
    """The images with a radops tag (or a name radops holds one by) that no container in
    `used_ids`' owners uses, with only radops' names: removing those leaves an image that
    another name (the user's own tag) holds."""
    found = []
    for image in images:
        ours = [ref for ref in image.refs if _radops_name(ref)]
        if ours and image.id not in used_ids:
            found.append(Image(image.id, ours, image.size))
    return found


def _radops_name(ref: str) -> bool:
    return bool(re.search(RADOPS_IMAGE, ref) or re.search(RADOPS_HELD_IMAGE, ref))


def human_bytes(text: str) -> int | None:
    """`1.33GB` -> 1330000000; None if it is not one of docker's sizes."""
    match = _HUMAN.match(text.strip())
    if not match:
        return None
    return int(float(match[1]) * _UNITS[match[2]])
