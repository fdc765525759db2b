"""The Slurm executor: batch jobs on a Slurm cluster, submitted over SSH on its login node.

The image is built here and pushed to the registry (every node pulls it); `sbatch --parsable`
queues a batch script that runs the container on each node Slurm allots (docker, podman, or
pyxis). A job's folder on storage the login and compute nodes share holds its output and a
record of its end, so `jobs`, `logs` and `wait` need no Slurm accounting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from radops.errors import EngineUnreachableError, RadopsError, UsageError
from radops.executors import _slurm_scripts as scripts
from radops.executors._docker_argv import env_file, error_line
from radops.executors._labels import job_from_labels, job_labels, job_not_found, match_job
from radops.executors._labels import newest_first as _newest_first
from radops.executors._login import LoginExecutor
from radops.executors._prune import running_refused
from radops.executors.base import Ask
from radops.executors.features import Feature
from radops.executors.model import (
    EngineReport,
    Job,
    JobRequest,
    PrunePlan,
    PruneResult,
    QueueInfo,
    StopResult,
    Stream,
    new_job_id,
)
from radops.progress import ProgressCallback
from radops.specs import DEFAULT_RUNTIME_PATHS, SLURM_RUNTIMES, SlurmExecutorSpec

if TYPE_CHECKING:
    from radops.specs import SlurmExecutorSpec

_JOB_ID = re.compile(r"^[0-9a-f]{12}$")
STOP_WAIT_S = 90  # how long `stop` waits for a cancelled job's container to end
ACTIVE = ("pending", "running")
# sbatch options that would move the job's output or change how radops finds it.
_SBATCH_RESERVED = frozenset({"--output", "-o", "--error", "-e", "--job-name", "-J", "--chdir",
                              "-D", "--parsable", "--wrap", "--array", "-a"})  # fmt: skip


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


class SlurmExecutor(LoginExecutor):
    """Jobs queued by Slurm: built here, pushed to the registry, `sbatch` on the login node."""

    kind = "slurm"
    title = "Slurm executors"
    spec_type = SlurmExecutorSpec
    features = frozenset({Feature.QUEUE, Feature.CONNECT})
    missing_hint = (
        "A job's container runs on a compute node and is removed when it ends; read its output "
        "with `logs`, and write results to storage the nodes share (-v)."
    )

    spec: SlurmExecutorSpec

    @classmethod
    def refusal(cls, feature: Feature, asked: str, executor: str) -> UsageError:
        if feature is Feature.GPUS_ALL:
            return UsageError(
                "--gpus all is not available on Slurm executors: Slurm allots GPUs",
                "Ask for a number per node (--gpus 2) or a type and number (--gpus a100:2).",
            )
        if feature in (Feature.REMOTE_BUILD, Feature.TRANSFER):
            return UsageError(
                f"{asked} does not apply to {executor!r}: a Slurm executor's image is built "
                "here and pulled by its nodes from the registry"
            )
        return super().refusal(feature, asked, executor)

    @classmethod
    def check_request(cls, request: JobRequest, executor: str) -> None:
        """Besides the features: each --slurm-arg is one sbatch option, and none of those
        that would move the job's output or change how radops finds the job."""
        super().check_request(request, executor)
        for item in request.queue.extra_args:
            if not item.startswith("-") or "\n" in item:
                raise UsageError(
                    f"invalid --slurm-arg {item!r}: give one sbatch option, e.g. --qos=high"
                )
            if item.split("=")[0] in _SBATCH_RESERVED:
                raise UsageError(
                    f"--slurm-arg {item!r}: radops sets {item.split('=')[0]} itself",
                    "Output goes to the executor's job folder; read it with `logs`.",
                )

    @classmethod
    def ask_fields(cls, fields: dict[str, Any], ask: Ask) -> dict[str, Any]:
        """The login node, the job folder the nodes share, and the runtime's path there."""
        runtime = fields.get("runtime")
        if runtime is not None and runtime not in SLURM_RUNTIMES:
            raise UsageError(f"invalid --runtime {runtime!r}: use {', '.join(SLURM_RUNTIMES)}")
        fields = super().ask_fields(fields, ask)
        job_dir = ask(fields.get("job_dir"), "Job folder shared by the login and compute nodes",
                      "--job-dir", None)  # fmt: skip
        path = fields.get("docker_path") or DEFAULT_RUNTIME_PATHS[runtime or "docker"]
        return {**fields, "job_dir": job_dir, "docker_path": path, "runtime": runtime or "docker"}

    def registered(self, report: EngineReport | None, given: set[str]) -> Any:
        """Saved with the platform found, and the runtime found unless one was given."""
        spec = super().registered(report, given)
        if report is not None and "runtime" not in given:
            spec, _ = detected_runtime(spec, report)
        return spec

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
        registry = self.context.registry
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
        return replace(job, queue=QueueInfo("slurm", slurm_id, "PENDING"))

    def _gres(self, gpus: str | None) -> str | None:
        if gpus is None:
            return None
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
        return replace(job, queue=QueueInfo("slurm", slurm_id, state, reason, node))

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
        return (job.queue.job_id if job.queue else "") or "0"

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
        notices: ProgressCallback | None = None,
    ) -> Iterator[tuple[Stream, bytes]]:
        if timestamps:
            self.require(Feature.LOG_TIMESTAMPS, self.name)
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
                if notices is not None:
                    state, _, reason = notice.partition(" ")
                    notices(f"Job {job.id} is {state}" + (f" ({reason})" if reason else ""))

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
