"""GPU placement on one machine: which GPUs a `--gpus` request gets, pure and the same for every
container kind (local, SSH, GCP).

The rule: `--gpus N` takes the N lowest-numbered GPUs that no running (or restarting) radops job
holds, of any user, and that no other process uses (nvidia-smi's compute apps); `--gpus all`
needs every GPU free; `--gpus device=2,3` is the user's own choice and runs whatever holds them
(the jobs sharing them are named). The engine is then given explicit devices, never a count
(docker turns a count into devices 0..N-1, every time). The kinds call `place` while they hold
the machine's GPU lock (GPU_LOCK), so two runs never choose the same free GPU.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from radops.errors import RadopsError, UsageError
from radops.executors.model import LABEL_GPU_UUIDS, LABEL_GPUS, Gpu, GpuUse, Job

# One lock file per machine for every user's radops: created world-writable so any user can
# open it; opened read-only (flock needs no write access) so /tmp's sticky-bit rules never
# refuse a file another user created.
GPU_LOCK = "/tmp/radops-gpus.lock"
# The GPUs of the machine, and the GPUs processes are using (nvidia-smi's compute apps).
GPU_LIST_QUERY = ["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"]
APPS_QUERY = ["nvidia-smi", "--query-compute-apps=gpu_uuid,pid", "--format=csv,noheader"]
# A job in one of these states holds its GPUs (restarting: docker brings it back on them).
HOLDING = ("running", "restarting")


class GpusBusy(RadopsError):
    """Not enough free GPUs for a request: who holds them. `--wait` waits on this error."""

    def __init__(self, message: str, hint: str, status: str) -> None:
        super().__init__(message, hint)
        self.status = status  # one line for a live status: which GPUs, held by which jobs


@dataclass(frozen=True)
class GpuState:
    """A machine's GPUs, the radops jobs holding some, and the GPUs others use."""

    gpus: list[Gpu]
    jobs: list[Job]  # radops jobs of the engine (any status, any user)
    busy: frozenset[str]  # UUIDs of GPUs with compute processes

    def holders(self, index: int) -> list[Job]:
        return [
            job for job in self.jobs
            if job.status in HOLDING and any(g.index == index for g in job.gpus)
        ]  # fmt: skip

    def used_by_others(self, gpu: Gpu) -> bool:
        """Busy with processes radops did not start (its own jobs' processes show up too)."""
        return gpu.uuid in self.busy and not self.holders(gpu.index)

    def free(self) -> int:
        """How many GPUs a `--gpus N` could take now (what `check` says)."""
        return sum(1 for g in self.gpus if not self.holders(g.index) and g.uuid not in self.busy)


def with_jobs(gpus: list[GpuUse] | None, jobs: list[Job]) -> list[GpuUse] | None:
    """`top`'s GPUs, each with the radops jobs placed on it."""
    if gpus is None:
        return None
    state = GpuState([], jobs, frozenset())
    return [replace(g, jobs=tuple(j.id for j in state.holders(g.index))) for g in gpus]


@dataclass(frozen=True)
class Placement:
    devices: list[Gpu]
    shared_with: list[Job]  # `device=...` only: jobs already on those devices


def parse_inventory(text: str) -> list[Gpu]:
    """GPU_LIST_QUERY's output: `0, GPU-8f6b...` lines."""
    gpus = []
    for line in text.splitlines():
        index, _, uuid = (f.strip() for f in line.partition(","))
        if index.isdigit() and uuid:
            gpus.append(Gpu(int(index), uuid))
    return sorted(gpus, key=lambda g: g.index)


def parse_apps(text: str) -> frozenset[str]:
    """APPS_QUERY's output: the UUIDs of GPUs some process computes on."""
    return frozenset(
        line.split(",")[0].strip() for line in text.splitlines() if line.startswith("GPU-")
    )


def job_gpus(labels: dict[str, str]) -> list[Gpu]:
    """The GPUs a job's labels say it was placed on."""
    indexes = [i for i in labels.get(LABEL_GPUS, "").split(",") if i.isdigit()]
    uuids = labels.get(LABEL_GPU_UUIDS, "").split(",")
    uuids += [""] * (len(indexes) - len(uuids))
    return [Gpu(int(i), u) for i, u in zip(indexes, uuids, strict=False)]


def gpu_labels(placement: Placement | None) -> dict[str, str]:
    if placement is None:
        return {}
    return {
        LABEL_GPUS: ",".join(str(g.index) for g in placement.devices),
        LABEL_GPU_UUIDS: ",".join(g.uuid for g in placement.devices),
    }


def gpu_text(gpus: Iterable[Gpu]) -> str:
    """`2,3` (the GPUS column)."""
    return ",".join(str(g.index) for g in gpus)


def _who(job: Job) -> str:
    name = f" ({job.name})" if job.name else ""
    return f"job {job.id}{name} of {job.user or 'unknown user'}"


def _held_text(state: GpuState, gpus: Iterable[Gpu]) -> str:
    """`GPU 0: job abc (train) of ann@box; GPU 1: a process radops did not start`."""
    parts = []
    for gpu in gpus:
        holders = state.holders(gpu.index)
        if holders:
            parts.append(f"GPU {gpu.index}: " + ", ".join(_who(j) for j in holders))
        elif gpu.uuid in state.busy:
            parts.append(f"GPU {gpu.index}: a process radops did not start")
    return "; ".join(parts)


def _busy(state: GpuState, asked: str, need: int, where: str) -> GpusBusy:
    taken = [g for g in state.gpus if state.holders(g.index) or g.uuid in state.busy]
    free = len(state.gpus) - len(taken)
    held = _held_text(state, taken)
    return GpusBusy(
        f"--gpus {asked}: {free} of {len(state.gpus)} GPUs free on {where}, {need} needed; "
        f"held by {held}",
        "Add --wait to start the job as soon as its GPUs are free "
        "(`radops executors jobs` shows the GPUS each job holds).",
        f"{free} of {len(state.gpus)} GPUs free, {need} needed: {held}",
    )


def place(asked: str, request: dict[str, Any], state: GpuState, where: str) -> Placement:
    """The devices a request (parse_gpus' DeviceRequest of `asked`) gets on `state`'s machine.
    Raises GpusBusy when too few are free, UsageError for a device the machine lacks."""
    by_key = {str(g.index): g for g in state.gpus} | {g.uuid: g for g in state.gpus}
    if request["DeviceIDs"]:
        devices = []
        for ref in request["DeviceIDs"]:
            if ref not in by_key:
                have = gpu_text(state.gpus) or "none"
                raise UsageError(f"--gpus {asked}: no GPU {ref!r} on {where} (it has {have})")
            if by_key[ref] not in devices:
                devices.append(by_key[ref])
        shared = [j for g in devices for j in state.holders(g.index)]
        return Placement(devices, list({j.id: j for j in shared}.values()))
    free = [g for g in state.gpus if not state.holders(g.index) and g.uuid not in state.busy]
    need = len(state.gpus) if request["Count"] == -1 else request["Count"]
    if need > len(state.gpus):
        raise UsageError(f"--gpus {asked}: {where} has {len(state.gpus)} GPUs")
    if len(free) < need:
        raise _busy(state, asked, need, where)
    return Placement(free[:need], [])


def sharing_notice(placement: Placement) -> str | None:
    """What a `device=...` run is told when jobs already use its devices."""
    if not placement.shared_with:
        return None
    jobs = ", ".join(_who(j) for j in placement.shared_with)
    return f"GPU {gpu_text(placement.devices)} already in use by {jobs}; starting anyway"


def device_request(request: dict[str, Any], placement: Placement | None) -> dict[str, Any]:
    """The Engine API DeviceRequest: explicit devices once placed, else as asked."""
    if placement is None:
        return request
    return {**request, "Count": 0, "DeviceIDs": [str(g.index) for g in placement.devices]}


def docker_gpus_value(request: dict[str, Any], placement: Placement | None, asked: str) -> str:
    """The docker CLI's `--gpus` value for the placed devices (CSV, as docker reads it)."""
    if placement is None:
        return asked
    fields = ["device=" + ",".join(str(g.index) for g in placement.devices)]
    if request.get("Driver"):
        fields.append(f"driver={request['Driver']}")
    capabilities = request.get("Capabilities") or [[]]
    if capabilities != [["gpu"]]:
        fields.append("capabilities=" + ",".join(capabilities[0]))
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


T = TypeVar("T")


def until_free(
    attempt: Callable[[], T],
    wait: float | None,
    status: Callable[[str], None],
    poll_s: float = 2.0,
) -> T:
    """`attempt()` (choose and start under the GPU lock); with `wait` (seconds, inf: no end),
    again every `poll_s` while it raises GpusBusy, `status` told what it waits for."""
    deadline = None if wait is None else time.monotonic() + wait
    said = ""
    while True:
        try:
            return attempt()
        except GpusBusy as busy:
            if deadline is None or time.monotonic() + poll_s > deadline:
                if deadline is not None:
                    raise GpusBusy(
                        f"{busy.message} (waited {wait:.0f}s)", busy.hint or "", busy.status
                    ) from None
                raise
            if busy.status != said:  # a line when what it waits for changes, not every poll
                status(f"waiting for GPUs: {busy.status}")
                said = busy.status
            time.sleep(poll_s)
