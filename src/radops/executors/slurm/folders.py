"""The login node's listing of job folders, read back as jobs; the folder's name is the job id.

Nothing in a folder is trusted to say where the folder is: a `job.json` can be planted (by a
job that writes to the shared storage, or by anyone who can write to the job dir), so a folder
is a job only when its name has radops' id shape (12 lowercase hex digits, `new_job_id`), it is
no symbolic link, and its labels name that same id. Any other folder is skipped, with a reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from radops.executors.docker.labels import job_from_labels
from radops.executors.model import LABEL_JOB_ID, Job, QueueInfo

JOB_ID = re.compile(r"[0-9a-f]{12}")  # what new_job_id makes
SLURM_ID = re.compile(r"[0-9]{1,12}")  # what `sbatch --parsable` prints before any `;cluster`

# Slurm states in which a job has not ended (squeue %T).
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED",
})  # fmt: skip


@dataclass
class FolderEntry:
    """One job folder as the list script printed it."""

    name: str  # the folder's own name (newlines shown as `?`)
    meta: dict[str, Any]  # its job.json ({} when it is not a JSON object)
    files: dict[str, str] = field(default_factory=dict)  # slurm-id, started, record, symlink


@dataclass(frozen=True)
class QueueRow:
    slurm_id: str
    state: str
    reason: str
    nodes: str


def parse_jobs(out: bytes) -> tuple[list[FolderEntry], int, str, dict[str, QueueRow]]:
    """The list script's output: job folders, squeue's exit status and text, its rows by id.
    Lines are split at `\\n` only (a `\\r` in a planted file starts no line of its own), and
    squeue's part is after the last marker the script printed."""
    head, _, squeue = (b"\n" + out).rpartition(b"\nradops:squeue ")
    entries: list[FolderEntry] = []
    lines = head.decode(errors="replace").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("radops:job "):
            meta = _json_object(lines[i]) if i < len(lines) else {}
            i += 1
            entries.append(FolderEntry(line.removeprefix("radops:job "), meta))
        elif entries and line.startswith("radops:"):
            key, _, value = line.removeprefix("radops:").partition(" ")
            entries[-1].files[key] = value.strip()
    status_text, _, body = squeue.decode(errors="replace").partition("\n")
    status = int(status_text) if status_text.strip().isdigit() else 1
    rows: dict[str, QueueRow] = {}
    if status == 0:
        for row in body.splitlines():
            parts = row.split("|")
            if len(parts) == 4:
                rows[parts[0]] = QueueRow(*parts)
    return entries, status, body.strip(), rows


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def parse_record(text: str) -> tuple[int | None, str | None]:
    """A record's exit code and the node it ended on."""
    parts = text.split()
    code = int(parts[0]) if parts and parts[0].lstrip("-").isdigit() else None
    return code, parts[2] if len(parts) > 2 else None


def skip_reason(entry: FolderEntry) -> str | None:
    """Why this folder is no job of radops' (None: it is one). Folders without radops labels
    are nobody's business (no reason given, skipped quietly): a job.json half written by a
    submit in progress looks like that too."""
    labels = entry.meta.get("labels")
    if entry.files.get("symlink"):
        return "it is a symbolic link"
    if not isinstance(labels, dict) or not labels:
        return None
    if not JOB_ID.fullmatch(entry.name):
        return "its name is not a radops job id"
    if labels.get(LABEL_JOB_ID) != entry.name:
        return f"its job.json says it is job {str(labels.get(LABEL_JOB_ID))[:40]!r}"
    return None


def read_folders(
    entries: list[FolderEntry], rows: dict[str, QueueRow], executor: str
) -> tuple[list[Job], list[tuple[str, str]]]:
    """The jobs among the folders, and the folders skipped as no job (name, why)."""
    jobs, skipped = [], []
    for entry in entries:
        reason = skip_reason(entry)
        if reason is not None:
            skipped.append((entry.name, reason))
        elif entry.meta.get("labels"):
            jobs.append(folder_job(entry, rows, executor))
    return jobs, skipped


def folder_job(entry: FolderEntry, rows: dict[str, QueueRow], executor: str) -> Job:
    """The job a checked folder holds, its state from squeue's row or its own record."""
    slurm_id = entry.files.get("slurm-id", "").split(";")[0]
    if not SLURM_ID.fullmatch(slurm_id):
        slurm_id = ""  # never handed to scancel or squeue
    row = rows.get(slurm_id)
    record = entry.files.get("record")
    exit_code: int | None = None
    node = row.nodes if row else ""
    if record is not None:
        exit_code, ended_on = parse_record(record)
        status = "exited"
        state = row.state if row else ("COMPLETED" if exit_code == 0 else "FAILED")
        node = node or (ended_on or "")
    elif row is not None:
        state = row.state
        status = {"PENDING": "pending", "SUSPENDED": "suspended"}.get(state, "running")
        if state not in ACTIVE_STATES:
            status = state.lower()
    else:
        state = "UNKNOWN"
        status = "unknown" if slurm_id else "created"
    reason = row.reason if row and row.reason not in ("None", "") else ""
    labels = {str(k): str(v) for k, v in entry.meta["labels"].items()}
    job = job_from_labels({**labels, LABEL_JOB_ID: entry.name}, executor, status, exit_code)
    return replace(job, queue=QueueInfo("slurm", slurm_id, state, reason, node))
