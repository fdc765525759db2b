"""The Slurm executor: batch jobs on a Slurm cluster, submitted over SSH on its login node.

The image is built here and pushed to the registry (every node pulls it); `sbatch --parsable`
queues a batch script that runs the container on each node Slurm allots (docker, podman, or
pyxis). A job's folder on storage the login and compute nodes share holds its output and a
record of its end, so `jobs`, `logs` and `wait` need no Slurm accounting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from radops.config import resolve_setting
from radops.errors import RadopsError, UsageError
from radops.executors import _slurm_batch as batch_sh
from radops.executors import _slurm_folders as folders
from radops.executors import _slurm_login as login
from radops.executors import _slurm_scripts as scripts
from radops.executors._docker_argv import env_file
from radops.executors._labels import job_from_labels, job_labels, job_not_found, match_job
from radops.executors._labels import newest_first as _newest_first
from radops.executors._login import LoginExecutor
from radops.executors._prune import running_refused
from radops.executors._slurm_login import SlurmReport
from radops.executors.base import (
    ConnectOptions,
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

STOP_WAIT_S = 90  # how long `stop` waits for a cancelled job's container to end
ACTIVE = ("pending", "running")


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

    def __init__(self, spec: SlurmExecutorSpec, options: ConnectOptions | None = None) -> None:
        super().__init__(spec, options)
        self._warned: set[str] = set()  # job folders already said to be skipped

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
        run_args += options.docker_argv()
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
            extra=request.queue.extra_args,
        )
        meta = {"labels": labels, "sbatch": sbatch, "runtime": self.spec.runtime, "nodes": nodes}
        stdin = scripts.submit_stdin(env_file(request.env), meta, batch_sh.batch_script(batch))
        progress(f"Submitting job {job_id} to Slurm on {self.name}")
        argv = scripts.submit_argv(self.spec.job_dir, job_id, sbatch)
        out = self._script(argv, "submitting the job", stdin)
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
            return batch_sh.gres_for(gpus)
        except ValueError:
            raise UsageError(
                f"invalid --gpus {gpus!r} for a Slurm executor: use N or TYPE:N (per node)"
            ) from None

    # jobs -----------------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        status, out, err = self.conn.run(scripts.jobs_argv(self.spec.job_dir))
        # A refusal comes before any folder's lines, which could hold a fake one.
        header = scripts.find_header((b"\n" + out).split(b"\nradops:job ", 1)[0])
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
        slurm_id = (job.queue or {}).get("slurm_job_id", "") or "0"
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
            raise not_on_slurm("logs --timestamps")
        job = self._find(job_id)
        argv = scripts.logs_argv(*self._where(job), follow, tail)
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


def _slurm_memory(memory: str) -> str:
    """docker's `16g` as Slurm's `--mem=16G` (Slurm wants K, M, G or T; bytes become K)."""
    from radops.executors.run_options import size_bytes

    size = size_bytes(memory)
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{math.ceil(size / 1024)}K"
