"""An in-memory executor for CLI tests: no engine, no build, no SSH.

The CLI opens a new executor object for every command, so what the jobs are lives in a
`FakeEngine` shared by name: a test registers one in `ENGINES` (under the executor's name),
tells it what the next job will write and exit with, and afterwards reads back what the CLI
asked of it. Point an executor kind at this class with
`radops.api.kinds.KINDS["ssh"] = "tests.cli.fake_executor:FakeExecutor"`.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from radops.errors import NotFoundError, RadopsError
from radops.executors.base import Executor
from radops.executors.context import ExecutorContext
from radops.executors.docker.labels import match_job
from radops.executors.docker.prune import running_refused, stopped_jobs
from radops.executors.features import ALL_FEATURES, Feature
from radops.executors.model import (
    EngineReport,
    Image,
    Job,
    JobRequest,
    PortStream,
    PrunePlan,
    PruneResult,
    StopResult,
    Stream,
    TopReport,
    new_job_id,
)
from radops.progress import ProgressCallback, no_progress
from radops.specs import AnyExecutorSpec, SSHExecutorSpec

STOPPED_EXIT_CODE = 137  # SIGKILL, as docker reports a stopped container


@dataclass
class FakeEngine:
    """The jobs of one fake executor, and a record of every call the CLI made."""

    # What the next `run` starts: its output chunks and its exit code.
    next_output: list[tuple[Stream, bytes]] = field(default_factory=list)
    next_exit_code: int = 0
    # Raised by the next job's log stream after its output (a connection lost half way).
    next_log_error: RadopsError | None = None
    # Raised by the next call (any method but close), to test error handling.
    fail_with: BaseException | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    output: dict[str, list[tuple[Stream, bytes]]] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    log_errors: dict[str, RadopsError] = field(default_factory=dict)
    requests: list[JobRequest] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # refs of the images on the engine
    files: dict[str, bytes] = field(default_factory=dict)  # path in every job -> content
    opened: int = 0
    closed: int = 0

    def add_job(
        self,
        command: list[str],
        status: str = "running",
        exit_code: int | None = None,
        age: timedelta = timedelta(0),
        name: str | None = None,
        user: str | None = None,
    ) -> Job:
        """A job as if an earlier `run` had started it."""
        job = Job(
            id=new_job_id(),
            executor="",
            status=status,
            exit_code=exit_code,
            created_at=datetime.now(timezone.utc) - age,
            command=command,
            image="radops/fake:0123456789ab",
            name=name,
            user=user,
        )
        self.jobs[job.id] = job
        return job


ENGINES: dict[str, FakeEngine] = {}


class FakeExecutor(Executor):
    kind: ClassVar[str] = "ssh"
    title: ClassVar[str] = "fake executors"
    spec_type = SSHExecutorSpec
    features = ALL_FEATURES - {Feature.QUEUE}

    def __init__(self, spec: AnyExecutorSpec, context: ExecutorContext | None = None) -> None:
        super().__init__(spec, context)
        self.options = self.context.connect
        self.engine = ENGINES[spec.name]
        self.engine.opened += 1

    def _call(self, method: str, *args: Any) -> None:
        self.engine.calls.append((method, args))
        failure, self.engine.fail_with = self.engine.fail_with, None
        if failure is not None:
            raise failure

    def _job(self, job_id: str) -> Job:
        found = match_job(job_id, list(self.engine.jobs.values()), self.name)
        return replace(self.engine.jobs[found], executor=self.name)

    def connect(self) -> None:
        self._call("connect")

    def check(self) -> EngineReport:
        self._call("check")
        return EngineReport(self.name, "27.0.0-fake", "linux", "amd64")

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        self._call("run", request)
        self.engine.requests.append(request)
        progress(f"Building {request.context.name} (fake)")
        job = Job(
            id=new_job_id(),
            executor=self.name,
            status="running",
            exit_code=None,
            created_at=datetime.now(timezone.utc),
            command=list(request.command),
            image=f"radops/{request.context.name}:fake",
            name=request.name,
        )
        self.engine.jobs[job.id] = job
        self.engine.output[job.id] = list(self.engine.next_output)
        self.engine.exit_codes[job.id] = self.engine.next_exit_code
        if self.engine.next_log_error is not None:
            self.engine.log_errors[job.id] = self.engine.next_log_error
        progress(f"Started job {job.id}")
        return job

    def jobs(self) -> list[Job]:
        self._call("jobs")
        found = [self._job(job_id) for job_id in self.engine.jobs]
        return sorted(found, key=lambda j: j.created_at or datetime.min, reverse=True)

    def get(self, job_id: str) -> Job:
        self._call("get", job_id)
        return self._job(job_id)

    def logs(
        self,
        job_id: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[tuple[Stream, bytes]]:
        self._call("logs", job_id, follow, tail, timestamps)
        found = self._job(job_id).id  # an unknown job fails before any output
        return self._stream(found)

    def _stream(self, job_id: str) -> Iterator[tuple[Stream, bytes]]:
        yield from self.engine.output.get(job_id, [])
        error = self.engine.log_errors.get(job_id)
        if error is not None:
            raise error

    def wait(self, job_id: str) -> int:
        self._call("wait", job_id)
        job = self._job(job_id)
        code = self.engine.exit_codes.get(job.id, 0)
        self.engine.jobs[job.id] = replace(job, status="exited", exit_code=code)
        return code

    def stop(self, job_id: str, timeout: int = 10) -> StopResult:
        self._call("stop", job_id, timeout)
        job = self._job(job_id)
        if job.status != "running":
            return StopResult(job, was_running=False)
        stopped = replace(job, status="exited", exit_code=STOPPED_EXIT_CODE)
        self.engine.jobs[job.id] = stopped
        return StopResult(stopped, was_running=True)

    def copy_from(self, job_id: str, path: str) -> Iterator[bytes]:
        self._call("copy_from", job_id, path)
        self._job(job_id)
        content = self.engine.files.get(path)
        if content is None:
            raise NotFoundError(f"no {path!r} in job {job_id}")
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(path.rstrip("/").rsplit("/", 1)[-1])
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        yield archive.getvalue()

    def copy_to(
        self, job_id: str, source: str | Path, dest: str, progress: ProgressCallback = no_progress
    ) -> None:
        self._call("copy_to", job_id, source, dest)
        self._job(job_id)

    def copy_archive_to(self, job_id: str, archive: Iterable[bytes], dest: str) -> None:
        self._call("copy_archive_to", job_id, b"".join(archive), dest)
        self._job(job_id)

    def exec(
        self, job_id: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        self._call("exec", job_id, command, interactive, tty)
        self._job(job_id)
        return self.engine.next_exit_code

    def port_opener(self, job_id: str, port: int) -> Callable[[], PortStream]:
        self._call("port_opener", job_id, port)
        self._job(job_id)
        raise RadopsError("the fake executor has no ports")

    def top(self) -> TopReport:
        self._call("top")
        return TopReport(self.name, None, [])

    def remove(self, job_id: str, force: bool = False) -> Job:
        self._call("remove", job_id, force)
        job = self._job(job_id)
        if job.status == "running" and not force:
            raise running_refused(job, self.name)
        del self.engine.jobs[job.id]
        return job

    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        self._call("prune_plan", older_than, images)
        jobs = stopped_jobs(self.jobs(), older_than)
        left = {j.image for j in self.engine.jobs.values() if j not in jobs}
        found = [Image(ref, [ref], 1_000_000) for ref in self.engine.images if ref not in left]
        return PrunePlan(jobs, found if images else [])

    def prune(self, plan: PrunePlan) -> PruneResult:
        self._call("prune", plan)
        for job in plan.jobs:
            self.engine.jobs.pop(job.id, None)
        for image in plan.images:
            self.engine.images.remove(image.id)
        return PruneResult([j.id for j in plan.jobs], list(plan.images),
                           sum(i.size for i in plan.images))  # fmt: skip

    def close(self) -> None:
        self.engine.closed += 1
