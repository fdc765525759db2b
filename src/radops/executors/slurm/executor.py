"""The Slurm executor: batch jobs on a Slurm cluster, submitted over SSH on its login node.

The image is built here and pushed to the registry (every node pulls it); `sbatch --parsable`
queues a batch script that runs the container on each node Slurm allots (docker, podman, or
pyxis). A job's folder on storage the login and compute nodes share holds its output and a
record of its end, so `jobs`, `logs` and `wait` need no Slurm accounting.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from radops.errors import RadopsError, UsageError
from radops.executors.base import Ask, SpecType
from radops.executors.context import ExecutorContext
from radops.executors.docker.argv import env_file
from radops.executors.docker.labels import job_from_labels, job_labels, job_not_found, match_job
from radops.executors.docker.labels import newest_first as _newest_first
from radops.executors.docker.prune import running_refused
from radops.executors.features import Feature
from radops.executors.header import Header, HeaderReader
from radops.executors.login import LoginExecutor
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
from radops.executors.slurm import batch as batch_sh
from radops.executors.slurm import folders, login, scripts
from radops.executors.slurm.login import SlurmReport
from radops.progress import ProgressCallback
from radops.rules import DEFAULT_RUNTIME_PATHS, SLURM_RUNTIMES

if TYPE_CHECKING:
    from radops.specs import SlurmExecutorSpec

STOP_WAIT_S = 90  # how long `stop` waits for a cancelled job's container to end
ACTIVE = ("pending", "running")


# sbatch options that would move the job's output or change how radops finds it.
_SBATCH_RESERVED = frozenset({"--output", "-o", "--error", "-e", "--job-name", "-J", "--chdir",
                              "-D", "--parsable", "--wrap", "--array", "-a"})  # fmt: skip


class SlurmExecutor(LoginExecutor):
    """Jobs queued by Slurm: built here, pushed to the registry, `sbatch` on the login node."""

    kind = "slurm"
    title = "Slurm executors"
    spec_type = SpecType("SlurmExecutorSpec")
    features = frozenset({Feature.QUEUE, Feature.CONNECT})
    missing_hint = (
        "A job's container runs on a compute node and is removed when it ends; read its output "
        "with `logs`, and write results to storage the nodes share (-v)."
    )

    spec: SlurmExecutorSpec

    def __init__(self, spec: SlurmExecutorSpec, context: ExecutorContext | None = None) -> None:
        super().__init__(spec, context)
        self._warned: set[str] = set()  # job folders already said to be skipped

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
        if request.gpu_wait is not None:
            raise UsageError(
                f"--wait does not apply to {executor!r}: Slurm queues the job until its GPUs "
                "are free"
            )
        if request.options.restart not in (None, "no", "unless-stopped"):
            raise UsageError(
                f"--restart {request.options.restart} does not apply to {executor!r}: Slurm "
                "requeues a job when its node fails or it is preempted, never when it fails",
                "--restart unless-stopped is Slurm's requeue (sbatch --requeue).",
            )
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
            spec, _ = login.detected_runtime(spec, report)
        return spec

    def _script(self, argv: list[str], what: str, stdin: bytes | None = None) -> bytes:
        """Run a script on the login node; what followed its `radops:ok` header, or the error
        its `radops:error` header (or the shell) gave."""
        status, out, err = self.conn.run(argv, stdin=stdin)
        header = Header.find(out)
        if header is None:
            raise self._error(status, err or out, what)
        if not header.ok:
            raise self._error(1, header.rest, what)
        return header.rest

    def _error(self, status: int, text: bytes, what: str) -> RadopsError:
        """What a failed script or Slurm command on the login node means, in one line."""
        where = (self.conn.target.display, self.name, self.spec.job_dir)
        return login.login_error(status, text.decode(errors="replace").strip(), what, *where)

    # check ------------------------------------------------------------------------------------

    def check(self) -> SlurmReport:
        self.conn.login()
        runtimes = [self.spec.docker_path, "docker", "podman"]
        status, out, err = self.conn.run(scripts.check_argv(runtimes))
        text = out.decode(errors="replace")
        version, sinfo_status, sinfo, uname, found = login.parse_check(text)
        if status != 0 or sinfo_status is None:
            raise self._error(status, err or out, "checking Slurm")
        if sinfo_status != 0:
            raise self._error(sinfo_status, sinfo.encode(), "checking Slurm (sinfo)")
        partitions = login.partitions(sinfo)
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
        self.check_new_name(request.name)  # a round trip, with --name only
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
        # The container runs once per allocation; Slurm requeues the job (--restart).
        run_args += replace(options, restart=None).docker_argv()
        requeue = {"unless-stopped": ("--requeue",), "no": ("--no-requeue",)}
        batch = batch_sh.BatchJob(
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
        sbatch = batch_sh.sbatch_args(
            job_id,
            folder,
            nodes=request.queue.nodes,
            gres=gres,
            time=request.queue.time,
            cpus=math.ceil(float(options.cpus)) if options.cpus else None,
            memory=_slurm_memory(options.memory) if options.memory else None,
            partition=request.queue.partition or self.spec.partition,
            account=self.spec.account,
            extra=(*requeue.get(options.restart or "", ()), *request.queue.extra_args),
        )
        meta = {"labels": labels, "sbatch": sbatch, "runtime": self.spec.runtime, "nodes": nodes}
        stdin = scripts.submit_stdin(env_file(request.env), meta, batch_sh.batch_script(batch))
        progress(f"Submitting job {job_id} to Slurm on {self.name}")
        argv = scripts.submit_argv(self.spec.job_dir, job_id, sbatch)
        out = self._script(argv, "submitting the job", stdin)
        slurm_id = out.decode().strip().split(";")[0]
        progress(f"Started job {job_id} on {self.name} (Slurm job {slurm_id})")
        job = job_from_labels(labels, self.name, "pending")
        return replace(job, queue=QueueInfo("slurm", slurm_id, "PENDING"))

    def _gres(self, gpus: str | None) -> str | None:
        if gpus is None:
            return None
        try:
            return batch_sh.gres_for(gpus)
        except ValueError:
            raise UsageError(
                f"invalid --gpus {gpus!r} for a Slurm executor: use N or TYPE:N (per node)"
            ) from None

    # jobs -----------------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        status, out, err = self.conn.run(scripts.jobs_argv(self.spec.job_dir))
        # A refusal comes before any folder's lines, which could hold a fake one.
        header = Header.find((b"\n" + out).split(b"\nradops:job ", 1)[0])
        if header is not None and not header.ok:
            raise self._error(1, header.rest, "listing jobs")
        if status != 0 or b"radops:squeue " not in out:
            raise self._error(status, err or out, "listing jobs")
        entries, squeue_status, squeue_text, rows = folders.parse_jobs(out)
        if squeue_status != 0:
            raise self._error(squeue_status, squeue_text.encode(), "listing jobs (squeue)")
        found, skipped = folders.read_folders(entries, rows, self.name)
        for name, reason in skipped:
            self._warn(name, reason)
        return _newest_first(found)

    def _warn(self, name: str, reason: str) -> None:
        """Say once per command that a job folder is skipped: the listing goes on without it."""
        if name in self._warned:
            return
        self._warned.add(name)
        if self.notices is not None:
            self.notices(
                f"radops: warning: skipped {self.spec.job_dir}/{name} on {self.name}: {reason} "
                "(not touched; look at it, and remove it yourself if it is not yours)"
            )

    def _find(self, ref: str) -> Job:
        jobs = self.jobs()
        job_id = match_job(ref, jobs, self.name)  # listed anyway: the whole rule, no shortcut
        for job in jobs:
            if job.id == job_id:
                return job
        raise job_not_found(ref, self.name)

    def get(self, job_id: str) -> Job:
        return self._find(job_id)

    def _where(self, job: Job) -> tuple[str, str, str]:
        """The job dir, job id and Slurm id a login-node script is given for `job`, each
        checked (the scripts check them again)."""
        slurm_id = (job.queue.job_id if job.queue else "") or "0"
        if not folders.JOB_ID.fullmatch(job.id) or not folders.SLURM_ID.fullmatch(slurm_id):
            raise RadopsError(f"refused: {job.id!r} is no radops job id on {self.name}")
        return self.spec.job_dir, job.id, slurm_id

    def wait(self, job_id: str) -> int:
        job = self._find(job_id)
        out = self._script(scripts.wait_argv(*self._where(job)), "waiting for the job")
        code, _ = folders.parse_record(out.decode(errors="replace"))
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
            self.require(Feature.LOG_TIMESTAMPS, self.name)
        job = self._find(job_id)
        argv = scripts.logs_argv(*self._where(job), follow, tail)
        # The script's own stderr before its header is never the job's: dropped.
        reader = HeaderReader(early_stderr=False)
        for stream, data in self.conn.stream(argv):
            if stream == "exit":
                if reader.header is None:
                    found = Header.find(reader.received)
                    error = found.rest if found is not None else b""
                    raise self._error(int(data or b"1"), error, "reading the logs")
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
        argv = scripts.stop_argv(*self._where(job), timeout, STOP_WAIT_S)
        out = self._script(argv, "stopping the job")
        was = out.strip() == b"true"
        return StopResult(self._find(job.id), was_running=was)

    def remove(self, job_id: str, force: bool = False) -> Job:
        job = self._find(job_id)
        if job.status in ACTIVE and not force:
            raise running_refused(job, self.name)
        argv = scripts.remove_argv(*self._where(job), force, STOP_WAIT_S)
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
                self._script(scripts.remove_argv(*self._where(job), False, 0), "pruning")
                removed.append(job.id)
        return PruneResult(removed, [], None)


def _slurm_memory(memory: str) -> str:
    """docker's `16g` as Slurm's `--mem=16G` (Slurm wants K, M, G or T; bytes become K)."""
    from radops.executors.run_options import size_bytes

    size = size_bytes(memory)
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{math.ceil(size / 1024)}K"
