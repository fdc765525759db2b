"""Job labels: what radops writes on a job's container, and how a Job is read back from them."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from radops.errors import NotFoundError, UsageError
from radops.executors.docker.gpus import Placement, gpu_labels, job_gpus
from radops.executors.model import (
    LABEL_COMMAND,
    LABEL_CREATED_AT,
    LABEL_EXECUTOR,
    LABEL_IMAGE,
    LABEL_JOB_ID,
    LABEL_NAME,
    LABEL_OPTIONS,
    LABEL_USER,
    Job,
    JobRequest,
    this_user,
)

_EXITED = re.compile(r"^Exited \((-?\d+)\)")

# Characters of a recorded value per label. Over SSH each label is one argument of the docker
# CLI (`--label KEY=VALUE`), and Linux refuses to start a program with an argument over 128 KiB
# (MAX_ARG_STRLEN): a longer value (ten 20,000-character arguments, in the command's JSON) goes
# in pieces, KEY then KEY.1, KEY.2, ... The values are JSON with non-ASCII escaped: a character
# is a byte.
LABEL_PIECE = 64 * 1024
LABEL_PIECES = 32  # at most, so a listing (`docker ps --format`) can name each: 2 MiB of JSON


def label_pieces(key: str) -> list[str]:
    """The labels a long value recorded under `key` may take: KEY, KEY.1, ..."""
    return [key, *(f"{key}.{n}" for n in range(1, LABEL_PIECES))]


def _record(labels: dict[str, str], key: str, value: str) -> None:
    """`value` under `key`, in pieces of LABEL_PIECE characters if it is longer."""
    pieces = [value[start : start + LABEL_PIECE] for start in range(0, len(value), LABEL_PIECE)]
    if len(pieces) > LABEL_PIECES:
        raise UsageError(
            f"the job's command and options are too long to record ({len(value):,} characters "
            f"of JSON; at most {LABEL_PIECE * LABEL_PIECES:,})",
            "Pass long data in a file: put it in the build folder, or `executors cp` it.",
        )
    for key_n, piece in zip(label_pieces(key), pieces or [""], strict=False):
        labels[key_n] = piece


def _recorded(labels: dict[str, str], key: str, default: str) -> str:
    """What `_record` wrote under `key`, its pieces joined."""
    if key not in labels:
        return default
    pieces = [labels[key]]
    while (piece := labels.get(f"{key}.{len(pieces)}")) is not None:
        pieces.append(piece)
    return "".join(pieces)


def job_labels(
    job_id: str, executor: str, image: str, request: JobRequest, placement: Placement | None = None
) -> dict[str, str]:
    labels = {
        LABEL_JOB_ID: job_id,
        LABEL_EXECUTOR: executor,
        LABEL_IMAGE: image,
        LABEL_CREATED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        LABEL_USER: this_user(),
    }
    _record(labels, LABEL_COMMAND, json.dumps(request.command))
    if request.name:
        labels[LABEL_NAME] = request.name
    options = request.options.to_json()
    if options:
        _record(labels, LABEL_OPTIONS, json.dumps(options, separators=(",", ":")))
    return {**labels, **gpu_labels(placement)}


def _options(labels: dict[str, str]) -> dict[str, Any]:
    try:
        value = json.loads(_recorded(labels, LABEL_OPTIONS, "{}"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _command(labels: dict[str, str]) -> list[str]:
    try:
        value = json.loads(_recorded(labels, LABEL_COMMAND, "[]"))
    except ValueError:
        return []
    return [str(a) for a in value] if isinstance(value, list) else []


def _created(labels: dict[str, str]) -> datetime | None:
    try:
        return datetime.fromisoformat(labels[LABEL_CREATED_AT])
    except (KeyError, ValueError):
        return None


def job_from_labels(
    labels: dict[str, str], executor: str, status: str, exit_code: int | None = None
) -> Job:
    """A Job from its container's labels and state."""
    return Job(
        id=labels[LABEL_JOB_ID],
        executor=labels.get(LABEL_EXECUTOR, executor),
        status=status,
        exit_code=exit_code,
        created_at=_created(labels),
        command=_command(labels),
        image=labels.get(LABEL_IMAGE, ""),
        name=labels.get(LABEL_NAME),
        options=_options(labels),
        user=labels.get(LABEL_USER),
        gpus=job_gpus(labels),
    )


def job_from_inspect(data: dict[str, Any], executor: str) -> Job:
    """A Job from `docker inspect` output (Engine API ContainerInspect)."""
    labels = data["Config"]["Labels"] or {}
    state = data["State"]
    status = state["Status"]
    exit_code = state["ExitCode"] if status in ("exited", "dead") else None
    job = job_from_labels(labels, executor, status, exit_code)
    return with_restarts(job, data.get("RestartCount"))


def with_restarts(job: Job, count: object) -> Job:
    """`job` with the engine's restart count, for a job that has a restart policy."""
    if job.restart_policy is None or not str(count).isdigit():
        return job
    return replace(job, restarts=int(str(count)))


# `docker inspect --format` of jobs' restart counts: `JOB_ID COUNT` lines.
RESTARTS_FORMAT = '{{index .Config.Labels "' + LABEL_JOB_ID + '"}} {{.RestartCount}}'


def add_restarts(jobs: list[Job], counts: str) -> list[Job]:
    """`jobs` with the restart counts of RESTARTS_FORMAT's lines."""
    found = dict(line.split(" ", 1) for line in counts.splitlines() if " " in line)
    return [with_restarts(job, found.get(job.id, "").strip()) for job in jobs]


def job_from_summary(data: dict[str, Any], executor: str) -> Job:
    """A Job from a container list entry (Engine API ContainerSummary): no inspect needed."""
    match = _EXITED.match(data.get("Status", ""))
    return job_from_labels(
        data["Labels"] or {}, executor, data["State"], int(match[1]) if match else None
    )


def newest_first(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda j: j.created_at.timestamp() if j.created_at else 0, reverse=True)


def match_job_id(job_id: str, candidates: list[str], executor: str) -> str:
    """The candidate equal to `job_id`, else the only one starting with it."""
    if job_id in candidates:
        return job_id
    found = [c for c in candidates if job_id and c.startswith(job_id)]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(
            f"job id {job_id!r} matches {len(found)} jobs on {executor!r}",
            f"Give more of the id (see `radops executors jobs {executor}`).",
        )
    raise job_not_found(job_id, executor)


def match_job(ref: str, jobs: list[Job], executor: str) -> str:
    """The id of the job `ref` names, in docker's order for containers: the job whose id is
    `ref`, else the one job named `ref` (--name), else the one job whose id starts with it.
    So `rm e85` removes the job named e85, never another job whose id starts with e85."""
    ids = [job.id for job in jobs]
    if ref in ids:
        return ref
    named = [job.id for job in jobs if job.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise UsageError(
            f"{len(named)} jobs on {executor!r} are named {ref!r}",
            f"Give the job id (see `radops executors jobs {executor}`).",
        )
    return match_job_id(ref, ids, executor)


def job_not_found(job_id: str, executor: str) -> NotFoundError:
    return NotFoundError(
        f"no job {job_id!r} on executor {executor!r}",
        f"List its jobs with `radops executors jobs {executor}`.",
    )
