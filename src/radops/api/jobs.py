"""One call, one job operation: for scripts that do not keep a `Session` open. Each call opens
executor `executor` by name, does one thing, and closes it (with a shared SSH connection, the
next call starts at once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.api.requests import job_request
from radops.api.session import open_session

if TYPE_CHECKING:
    from radops.executors.model import Job, JobRequest, StopResult, Stream
    from radops.progress import ProgressCallback


def run(
    executor: str,
    path: Path | str | JobRequest,
    command: str | list[str] | None = None,
    *,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> Job:
    """Start a job: `path`'s image (built if it changed) running `command` (a string is split
    as a shell would; a list is the container's arguments as they are). `options` are
    `job_request`'s (gpus="1", env=["KEY=V"], volumes=["/data:/data"], name="x", ...); or give
    a `JobRequest` as `path`."""
    from radops.executors.model import JobRequest

    request = path if isinstance(path, JobRequest) else job_request(path, command, **options)
    with open_session(executor) as session:
        return session.run(request, progress)


def jobs(executor: str, mine: bool = False) -> list[Job]:
    """The executor's radops jobs, newest first."""
    with open_session(executor) as session:
        return session.jobs(mine)


def get(executor: str, job: str) -> Job:
    """One job, by id, --name or unique id prefix."""
    with open_session(executor) as session:
        return session.get(job)


def logs(
    executor: str, job: str, *, follow: bool = False, tail: int | None = None
) -> Iterator[tuple[Stream, bytes]]:
    """The job's output as (stream, bytes) chunks; with `follow`, until the job ends."""
    with open_session(executor) as session:
        yield from session.logs(job, follow=follow, tail=tail)


def wait(executor: str, job: str) -> int:
    """Block until the job ends; its exit code."""
    with open_session(executor) as session:
        return session.wait(job)


def stop(executor: str, job: str, timeout: int = 10) -> StopResult:
    """SIGTERM, then SIGKILL after `timeout` seconds; logs and exit code stay."""
    with open_session(executor) as session:
        return session.stop(job, timeout)


def remove(executor: str, job: str, force: bool = False) -> Job:
    """Remove an ended job (a running one with `force`), its logs and exit code with it."""
    with open_session(executor) as session:
        return session.remove(job, force)
