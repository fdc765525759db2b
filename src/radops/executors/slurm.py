"""The Slurm executor: batch jobs on a Slurm cluster, submitted over SSH on its login node.

The image is built here and pushed to the registry (every node pulls it); `sbatch --parsable`
queues a batch script that runs the container on each node Slurm allots (docker, podman, or
pyxis). A job's folder on storage the login and compute nodes share holds its output and a
record of its end, so `jobs`, `logs` and `wait` need no Slurm accounting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.config import resolve_setting
from radops.errors import EngineUnreachableError, RadopsError, UsageError
from radops.executors import _slurm_scripts as scripts
from radops.executors._docker_argv import env_file, error_line
from radops.executors._labels import job_from_labels, job_labels, job_not_found, match_job
from radops.executors._labels import newest_first as _newest_first
from radops.executors._login import LoginExecutor
from radops.executors._prune import running_refused
from radops.executors.base import (
    EngineReport,
    Job,
    JobRequest,
    PortStream,
    ProgressCallback,
    PrunePlan,
    PruneResult,
    StopResult,
    Stream,
    new_job_id,
)

if TYPE_CHECKING:
    from radops.config import SlurmExecutorSpec
    from radops.executors._top import TopReport

_JOB_ID = re.compile(r"^[0-9a-f]{12}$")
STOP_WAIT_S = 90  # how long `stop` waits for a cancelled job's container to end
ACTIVE = ("pending", "running")


@dataclass(frozen=True)
class SlurmReport(EngineReport):
    """What `check` found on a Slurm cluster: its version, partitions and GPUs (GRES)."""

    partitions: list[dict[str, str]] = field(default_factory=list)
    runtime: str = ""
    runtimes_found: list[tuple[str, str]] = field(default_factory=list)  # (name, its path)

    def summary(self) -> str:
        parts = ", ".join(
            f"{p['name']} ({p['nodes']} node(s){', ' + p['gres'] if p['gres'] else ''})"
            for p in self.partitions
        )
        return (
            f"{self.executor}: Slurm {self.server_version}, partitions {parts or 'none'}; "
            f"runtime {self.runtime}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "scheduler": "slurm", "partitions": self.partitions,
                "runtime": self.runtime}  # fmt: skip


def not_on_slurm(what: str) -> UsageError:
    return UsageError(
        f"{what} is not available on Slurm executors",
        "A job's container runs on a compute node and is removed when it ends; read its output "
        "with `logs`, and write results to storage the nodes share (-v).",
    )


class SlurmExecutor(LoginExecutor):
    """Jobs queued by Slurm: built here, pushed to the registry, `sbatch` on the login node."""

    kind = "slurm"

    spec: SlurmExecutorSpec

    def _script(self, argv: list[str], what: str, stdin: bytes | None = None) -> bytes:
        """Run a script on the login node; what followed its `radops:ok` header, or the error
        its `radops:error` header (or the shell) gave."""
        status, out, err = self.conn.run(argv, stdin=stdin)
        header = scripts.find_header(out)
        if header is None:
            raise self._error(status, err or out, what)
        if not header.ok:
            raise self._error(1, header.rest, what)
        return header.rest

    def _error(self, status: int, text_bytes: bytes, what: str) -> RadopsError:
        """What a failed Slurm command on the login node means, in one line."""
        text = text_bytes.decode(errors="replace").strip()
        host = self.conn.target.display
        line = _slurm_line(text) or f"exit status {status}"
        lowered = text.lower()
        if "munge" in lowered or "authentication credential" in lowered:
            return EngineUnreachableError(
                f"Slurm's authentication (munge) failed on {host}: {line}",
                "munged must run on the login node and on every node, with the cluster's key "
                "(ask the cluster's admins).",
            )
        if "unable to contact slurm controller" in lowered or "connection refused" in lowered:
            return EngineUnreachableError(
                f"the Slurm controller does not answer {host}: {line}",
                "Check `sinfo` on the login node; the cluster may be down for maintenance.",
            )
        if status == 127 or "command not found" in lowered or ": not found" in lowered:
            return RadopsError(
                f"Slurm's commands (sbatch, squeue) are not on {host}'s PATH",
                "Log in and check `command -v sbatch`; radops runs them with the login shell's "
                "PATH.",
            )
        return RadopsError(f"{what} on {self.name}: {line}")

    # check ------------------------------------------------------------------------------------

    def check(self) -> SlurmReport:
        self.conn.login()
        runtimes = [self.spec.docker_path, "docker", "podman"]
        status, out, err = self.conn.run(scripts.check_argv(runtimes))
        text = out.decode(errors="replace")
        version, sinfo_status, sinfo, uname, found = _parse_check(text)
        if status != 0 or sinfo_status is None:
            raise self._error(status, err or out, "checking Slurm")
        if sinfo_status != 0:
            raise self._error(sinfo_status, sinfo.encode(), "checking Slurm (sinfo)")
        partitions = _partitions(sinfo)
        names = [p["name"] for p in partitions]
        if self.spec.partition and self.spec.partition not in names:
            raise UsageError(
                f"no partition {self.spec.partition!r} on {self.name} "
                f"(partitions: {', '.join(names) or 'none'})"
            )
        system, _, machine = uname.partition(" ")
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine.strip(), machine.strip())
        gres = sorted({p["gres"] for p in partitions if p["gres"]})
        return SlurmReport(
            executor=self.name,
            server_version=(version.split() or ["?"])[-1],
            os=system.lower() or "?",
            architecture=arch or "?",
            gpus=gres,
            partitions=partitions,
            runtime=self.spec.runtime,
            runtimes_found=found,
        )

    # run ----------------------------------------------------------------------------------------

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        if request.build_on == "remote":
            raise UsageError(
                f"--build remote does not apply to {self.name!r}: a Slurm executor's image is "
                "built here and pulled by its nodes from the registry"
            )
        registry = self.spec.registry or resolve_setting(self.settings, "registry")
        if not registry:
            raise UsageError(
                f"executor {self.name!r} needs a registry: Slurm's nodes pull the job's image",
                "Set one: `radops config set registry HOST/OWNER` (or `executors set "
                f"{self.name} --registry ...`).",
            )
        if any("\n" in v for v in request.env.values()):
            raise UsageError("--env values sent to a Slurm executor cannot contain newlines")
        gres = self._gres(request.gpus)
        options = request.options
        if options.publish:
            raise not_on_slurm("-p/--publish")
        nodes = request.queue.nodes or 1
        if nodes < 1:
            raise UsageError("--nodes must be 1 or more")
        plan = self.images.plan(
            request.context, request.dockerfile, self.spec.platform, request.build
        )
        self.images.ensure(plan, progress)
        image = f"{registry.rstrip('/')}/{plan.tag}"
        self.images.push(plan.tag, image, progress)
        job_id = new_job_id()
        labels = job_labels(job_id, self.name, image, request)
        folder = f"{self.spec.job_dir}/{job_id}"
        run_args = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
        run_args += options.docker_argv()
        batch = scripts.BatchJob(
            job_id=job_id,
            folder=folder,
            runtime=self.spec.runtime,
            runtime_path=self.spec.docker_path,
            image=image,
            run_args=run_args,
            command=request.command,
            nodes=nodes,
            has_env=bool(request.env),
            host_network=nodes > 1 and options.network is None,
        )
        sbatch = scripts.sbatch_args(
            job_id,
            folder,
            nodes=request.queue.nodes,
            gres=gres,
            time=request.queue.time,
            cpus=math.ceil(float(options.cpus)) if options.cpus else None,
            memory=_slurm_memory(options.memory) if options.memory else None,
            partition=request.queue.partition or self.spec.partition,
            account=self.spec.account,
            extra=request.queue.extra_args,
        )
        meta = {"labels": labels, "sbatch": sbatch, "runtime": self.spec.runtime, "nodes": nodes}
        stdin = scripts.submit_stdin(env_file(request.env), meta, scripts.batch_script(batch))
        progress(f"Submitting job {job_id} to Slurm on {self.name}")
        out = self._script(scripts.submit_argv(folder, sbatch), "submitting the job", stdin)
        slurm_id = out.decode().strip().split(";")[0]
        progress(f"Started job {job_id} on {self.name} (Slurm job {slurm_id})")
        job = job_from_labels(labels, self.name, "pending")
        return replace(job, queue={"slurm_job_id": slurm_id, "state": "PENDING", "reason": "",
                                   "nodes": ""})  # fmt: skip

    def _gres(self, gpus: str | None) -> str | None:
        if gpus is None:
            return None
        if gpus == "all":
            raise UsageError(
                "--gpus all is not available on Slurm executors: Slurm allots GPUs",
                "Ask for a number per node (--gpus 2) or a type and number (--gpus a100:2).",
            )
        try:
            return scripts.gres_for(gpus)
        except ValueError:
            raise UsageError(
                f"invalid --gpus {gpus!r} for a Slurm executor: use N or TYPE:N (per node)"
            ) from None

    # jobs -----------------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        status, out, err = self.conn.run(scripts.jobs_argv(self.spec.job_dir))
        if status != 0 or b"radops:squeue " not in out:
            raise self._error(status, err or out, "listing jobs")
        entries, squeue_status, squeue_text, rows = scripts.parse_jobs(out)
        if squeue_status != 0:
            raise self._error(squeue_status, squeue_text.encode(), "listing jobs (squeue)")
        found = [self._job(entry, rows) for entry in entries if entry.meta.get("labels")]
        return _newest_first(found)

    def _job(self, entry: scripts.FolderEntry, rows: dict[str, scripts.QueueRow]) -> Job:
        slurm_id = entry.files.get("slurm-id", "").split(";")[0]
        row = rows.get(slurm_id)
        record = entry.files.get("record")
        exit_code: int | None = None
        node = row.nodes if row else ""
        if record is not None:
            exit_code, ended_on = scripts.parse_record(record)
            status = "exited"
            state = row.state if row else ("COMPLETED" if exit_code == 0 else "FAILED")
            node = node or (ended_on or "")
        elif row is not None:
            state = row.state
            status = {"PENDING": "pending", "SUSPENDED": "suspended"}.get(state, "running")
            if state not in scripts.ACTIVE_STATES:
                status = state.lower()
        else:
            state = "UNKNOWN"
            status = "unknown" if slurm_id else "created"
        reason = row.reason if row and row.reason not in ("None", "") else ""
        labels = {str(k): str(v) for k, v in entry.meta["labels"].items()}
        job = job_from_labels(labels, self.name, status, exit_code)
        queue = {"slurm_job_id": slurm_id, "state": state, "reason": reason, "nodes": node}
        return replace(job, queue=queue)

    def _find(self, ref: str) -> Job:
        jobs = self.jobs()
        job_id = ref if _JOB_ID.fullmatch(ref) else match_job(ref, jobs, self.name)
        for job in jobs:
            if job.id == job_id:
                return job
        raise job_not_found(ref, self.name)

    def get(self, job_id: str) -> Job:
        return self._find(job_id)

    def _folder(self, job: Job) -> str:
        return f"{self.spec.job_dir}/{job.id}"

    @staticmethod
    def _slurm_id(job: Job) -> str:
        return (job.queue or {}).get("slurm_job_id", "") or "0"

    def wait(self, job_id: str) -> int:
        job = self._find(job_id)
        out = self._script(
            scripts.wait_argv(self._folder(job), self._slurm_id(job)), "waiting for the job"
        )
        code, _ = scripts.parse_record(out.decode(errors="replace"))
        return code if code is not None else 1  # ended without running to its end

    # logs -------------------------------------------------------------------------------------

    def logs(
        self,
        job_id: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[tuple[Stream, bytes]]:
        if timestamps:
            raise not_on_slurm("logs --timestamps")
        job = self._find(job_id)
        argv = scripts.logs_argv(self._folder(job), self._slurm_id(job), follow, tail)
        reader = scripts.LogsReader()
        for stream, data in self.conn.stream(argv):
            if stream == "exit":
                if not reader.started:
                    raise self._error(int(data or b"1"), reader.error or b"", "reading the logs")
                return
            yield from reader.feed(stream, data)
            while reader.notices:
                notice = reader.notices.pop(0)
                if self.notices is not None:
                    state, _, reason = notice.partition(" ")
                    self.notices(f"Job {job.id} is {state}" + (f" ({reason})" if reason else ""))

    # stop / remove / prune ---------------------------------------------------------------------

    def stop(self, job_id: str, timeout: int = 10) -> StopResult:
        job = self._find(job_id)
        argv = scripts.stop_argv(self._folder(job), self._slurm_id(job), timeout, STOP_WAIT_S)
        out = self._script(argv, "stopping the job")
        was = out.strip() == b"true"
        return StopResult(self._find(job.id), was_running=was)

    def remove(self, job_id: str, force: bool = False) -> Job:
        job = self._find(job_id)
        if job.status in ACTIVE and not force:
            raise running_refused(job, self.name)
        argv = scripts.remove_argv(self._folder(job), self._slurm_id(job), force, STOP_WAIT_S)
        self._script(argv, "removing the job")
        return job

    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        jobs = [
            job
            for job in self.jobs()
            if job.status not in ACTIVE
            and (older_than is None or (job.created_at is not None and job.created_at < older_than))
        ]
        return PrunePlan(jobs, [])  # images live on the nodes: their admins prune them

    def prune(self, plan: PrunePlan) -> PruneResult:
        removed = []
        present = {job.id for job in self.jobs()}
        for job in plan.jobs:
            if job.id in present:
                self._script(
                    scripts.remove_argv(self._folder(job), self._slurm_id(job), False, 0),
                    "pruning",
                )
                removed.append(job.id)
        return PruneResult(removed, [], None)

    # not on Slurm -----------------------------------------------------------------------------

    def copy_from(self, job_id: str, path: str) -> Iterator[bytes]:
        raise not_on_slurm("cp")

    def copy_to(self, job_id: str, source: str | Path, dest: str) -> None:
        raise not_on_slurm("cp")

    def copy_archive_to(self, job_id: str, archive: Iterable[bytes], dest: str) -> None:
        raise not_on_slurm("cp")

    def exec(
        self, job_id: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        raise not_on_slurm("exec")

    def port_opener(self, job_id: str, port: int) -> Callable[[], PortStream]:
        raise not_on_slurm("forward")

    def top(self) -> TopReport:
        raise not_on_slurm("top")


def detected_runtime(
    spec: SlurmExecutorSpec, report: EngineReport
) -> tuple[SlurmExecutorSpec, EngineReport]:
    """The spec with the runtime the check found on the login node: pyxis, else docker at
    the given path, else podman. None found: docker (login nodes often lack it)."""
    if not isinstance(report, SlurmReport):
        return spec, report
    found = dict(report.runtimes_found)
    if "pyxis" in found:
        runtime, path = "pyxis", "srun"
    elif spec.docker_path in found or "docker" in found:
        runtime, path = "docker", spec.docker_path if spec.docker_path in found else found["docker"]
    elif "podman" in found:
        runtime, path = "podman", found["podman"]
    else:
        runtime, path = "docker", spec.docker_path
    spec = spec.model_copy(update={"runtime": runtime, "docker_path": path})
    return spec, replace(report, runtime=runtime)


def _slurm_line(text: str) -> str:
    """The line of a Slurm client's error that says what went wrong, without its prefixes."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line] or lines
    if not errors:
        return ""
    line = errors[-1]
    for prefix in ("sbatch: error: ", "squeue: error: ", "sinfo: error: ", "scancel: error: "):
        line = line.removeprefix(prefix)
    return error_line(line).removeprefix("Batch job submission failed: ")


def _slurm_memory(memory: str) -> str:
    """docker's `16g` as Slurm's `--mem=16G` (Slurm wants K, M, G or T; bytes become K)."""
    from radops.executors.run_options import size_bytes

    size = size_bytes(memory)
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{math.ceil(size / 1024)}K"


def _parse_check(text: str) -> tuple[str, int | None, str, str, list[tuple[str, str]]]:
    version, uname, sinfo_status = "", "", None
    found: list[tuple[str, str]] = []
    head, _, rest = text.partition("radops:sinfo ")
    for line in head.splitlines():
        if line.startswith("radops:version "):
            version = line.removeprefix("radops:version ")
    status_text, _, body = rest.partition("\n")
    if status_text.strip().isdigit():
        sinfo_status = int(status_text)
    sinfo_lines = []
    for line in body.splitlines():
        if line.startswith("radops:uname "):
            uname = line.removeprefix("radops:uname ")
        elif line.startswith("radops:has "):
            runtime, _, path = line.removeprefix("radops:has ").partition(" ")
            found.append((runtime, path))
        else:
            sinfo_lines.append(line)
    return version, sinfo_status, "\n".join(sinfo_lines), uname, found


def _partitions(sinfo: str) -> list[dict[str, str]]:
    """`sinfo -o %R|%a|%D|%G|%c` rows, one per partition (GRES rows of a partition merged)."""
    found: dict[str, dict[str, str]] = {}
    for line in sinfo.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        name, avail, nodes, gres, cpus = parts
        entry = found.setdefault(name, {"name": name, "state": avail, "nodes": "0", "gres": "",
                                        "cpus": cpus})  # fmt: skip
        entry["nodes"] = str(int(entry["nodes"]) + (int(nodes) if nodes.isdigit() else 0))
        if gres and gres != "(null)" and gres not in entry["gres"].split(","):
            entry["gres"] = ",".join(g for g in (entry["gres"], gres) if g)
    return list(found.values())
