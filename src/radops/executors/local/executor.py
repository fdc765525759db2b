"""The `local` executor: the Docker engine that DOCKER_HOST (or the default socket) names."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import EngineUnreachableError, NotFoundError, RadopsError, UsageError
from radops.executors.base import Executor, SpecType
from radops.executors.context import ExecutorContext
from radops.executors.docker.argv import error_line
from radops.executors.docker.frames import demux_frames
from radops.executors.docker.gpus import (
    device_request,
    place,
    sharing_notice,
    until_free,
    with_jobs,
)
from radops.executors.docker.labels import (
    job_from_inspect,
    job_from_labels,
    job_from_summary,
    job_labels,
    match_job,
    newest_first,
)
from radops.executors.docker.options import parse_gpus
from radops.executors.docker.prune import (
    exec_flags,
    job_address,
    running_job,
    running_refused,
    stopped_jobs,
    unused_radops_images,
)
from radops.executors.features import ALL_FEATURES, Feature
from radops.executors.local.builtin import Builtin, LazySpec
from radops.executors.local.create import container_body, create_and_start
from radops.executors.local.gpus import local_gpu_names, local_gpu_state, machine_gpu_lock
from radops.executors.model import (
    CONTAINER_PREFIX,
    JOB_ID,
    LABEL_JOB_ID,
    EngineReport,
    Image,
    Job,
    JobRequest,
    PortStream,
    PrunePlan,
    PruneResult,
    StopResult,
    Stream,
    container_name,
    new_job_id,
)
from radops.images.engine import LocalEngine, reading
from radops.images.service import LocalImages
from radops.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from radops.executors.model import TopReport
    from radops.specs import LocalExecutorSpec


class LocalExecutor(LazySpec, Executor):
    """Jobs on the local engine, one Engine API call per step through `LocalEngine` (its
    own client on a unix socket: no docker-py); `cp` to a job, `exec` and `top`'s stats
    through the docker CLI, whose rules and terminal handling they promise."""

    kind = "local"
    title = "the local executor"
    spec_type = SpecType("LocalExecutorSpec")
    features = ALL_FEATURES - {
        Feature.TRANSFER, Feature.REMOTE_BUILD, Feature.QUEUE, Feature.CONNECT
    }  # fmt: skip

    def __init__(
        self, spec: LocalExecutorSpec | None = None, context: ExecutorContext | None = None
    ) -> None:
        super().__init__(spec if spec is not None else Builtin(), context)
        self.engine = LocalEngine()
        self.images = LocalImages(self.engine)

    def close(self) -> None:
        self.engine.close()

    def check(self) -> EngineReport:
        version = self.engine.version()
        gpus = local_gpu_names()
        state = local_gpu_state(self.jobs) if gpus else None
        return EngineReport(
            executor=self.name,
            server_version=str(version.get("Version", "?")),
            os=str(version.get("Os", "?")),
            architecture=str(version.get("Arch", "?")),
            gpus=gpus,
            gpus_free=None if state is None else state.free(),
        )

    @classmethod
    def refusal(cls, feature: Feature, asked: str, executor: str) -> UsageError:
        if feature is Feature.CONNECT:
            return UsageError(f"executor {executor!r} is this machine; there is nothing to "
                              "connect to")  # fmt: skip
        if feature is Feature.TRANSFER:
            return UsageError(
                f"{asked} does not apply to {executor!r}: its engine is this machine's, where "
                "the image is built",
                "--transfer chooses how an SSH executor gets the image; drop it here.",
            )
        if feature is Feature.REMOTE_BUILD:
            return UsageError(
                f"--build remote does not apply to {executor!r}: its engine is this machine's",
                "--build remote builds on an SSH executor's engine; drop it here.",
            )
        return super().refusal(feature, asked, executor)

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        self.check_new_name(request.name)  # before any build
        # Parsed before building, so a bad value costs no build.
        gpus = parse_gpus(request.gpus) if request.gpus else None
        plan = self.images.plan(request.context, request.dockerfile, build=request.build)
        image = self.images.ensure(plan, progress)
        job_id = new_job_id()
        if gpus is None:
            return self._start(job_id, image, request, None, progress)
        return until_free(
            lambda: self._start(job_id, image, request, gpus, progress), request.gpu_wait, progress
        )

    def _start(
        self,
        job_id: str,
        image: str,
        request: JobRequest,
        gpus: dict[str, Any] | None,
        progress: ProgressCallback,
    ) -> Job:
        """Create and start the job; with GPUs, chosen and started under the machine's lock."""
        with machine_gpu_lock() if gpus is not None else contextlib.nullcontext():
            placement = None
            if gpus is not None and (state := local_gpu_state(self.jobs)) is not None:
                placement = place(request.gpus or "", gpus, state, "this machine")
                if notice := sharing_notice(placement):
                    (self.notices or progress)(notice)
            labels = job_labels(job_id, self.name, image, request, placement)
            devices = device_request(gpus, placement) if gpus is not None else None
            create_and_start(self.engine, job_id, container_body(request, image, labels, devices))
        progress(f"Started job {job_id}")
        return job_from_labels(labels, self.name, "running")

    def jobs(self) -> list[Job]:
        rows = self._containers({"label": [LABEL_JOB_ID]}, "listing jobs")
        jobs = [job_from_summary(row, self.name) for row in rows]
        # The list has no restart counts: asked of each job that may restart.
        jobs = [self.get(job.id) if job.restart_policy else job for job in jobs]
        return newest_first(jobs)

    def _containers(self, filters: dict[str, list[str]], what: str) -> list[dict[str, Any]]:
        query = {"all": "1", "filters": json.dumps(filters)} if filters else {"all": "1"}
        rows: list[dict[str, Any]] = self.engine.call("GET", "/containers/json", what, query=query)
        return rows

    def _inspect(self, name: str, what: str) -> dict[str, Any]:
        data: dict[str, Any] = self.engine.call("GET", f"/containers/{name}/json", what)
        return data

    def _container(self, ref: str) -> dict[str, Any]:
        """The container of the job `ref` names (see `match_job`). A whole id is looked up
        first, alone: the rule's first step, which needs no listing."""
        what = f"looking up job {ref}"
        if JOB_ID.fullmatch(ref):
            with contextlib.suppress(NotFoundError):
                data = self._inspect(container_name(ref), what)
                if (data["Config"]["Labels"] or {}).get(LABEL_JOB_ID) == ref:
                    return data
        found = match_job(ref, self.jobs(), self.name)
        return self._inspect(container_name(found), what)

    def get(self, job_id: str) -> Job:
        return job_from_inspect(self._container(job_id), self.name)

    def logs(
        self,
        job_id: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[tuple[Stream, bytes]]:
        cid = self._container(job_id)["Id"]
        params = {
            "stdout": "1",
            "stderr": "1",
            "follow": str(int(follow)),
            "timestamps": str(int(timestamps)),
            "tail": "all" if tail is None else str(tail),
        }
        what = f"reading the logs of job {job_id}"
        reply = self.engine.open("GET", f"/containers/{cid}/logs", what, query=params)
        try:
            with reading(what):
                # Following: hand over whatever has arrived. Otherwise fill whole 64 KiB blocks.
                yield from demux_frames(reply.read1 if follow else reply.read)
        finally:
            reply.close()

    def wait(self, job_id: str) -> int:
        cid = self._container(job_id)["Id"]
        what = f"waiting for job {job_id}"
        result = self.engine.call("POST", f"/containers/{cid}/wait", what, timeout=None)
        return int(result["StatusCode"])

    def stop(self, job_id: str, timeout: int = 10) -> StopResult:
        data = self._container(job_id)
        if not data["State"]["Running"]:
            return StopResult(job_from_inspect(data, self.name), was_running=False)
        what = f"stopping job {job_id}"
        query = {"t": str(timeout)}
        cid = data["Id"]
        # The engine answers once the job has ended: SIGKILL comes `timeout` s after SIGTERM.
        self.engine.call("POST", f"/containers/{cid}/stop", what, query=query, timeout=None)
        after = self._inspect(cid, what)
        return StopResult(job_from_inspect(after, self.name), was_running=True)

    def copy_from(self, job_id: str, path: str) -> Iterator[bytes]:
        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        what = f"copying {path} from job {job.id}"
        try:
            reply = self.engine.open(
                "GET", f"/containers/{data['Id']}/archive", what, query={"path": path}
            )
        except NotFoundError as e:
            raise NotFoundError(f"no {path!r} in job {job.id} on {self.name!r}") from e
        try:
            with reading(what):
                while chunk := reply.read(1 << 20):
                    yield chunk
        finally:
            reply.close()

    def copy_to(
        self, job_id: str, source: str | Path, dest: str, progress: ProgressCallback = no_progress
    ) -> None:
        """Through the docker CLI, whose `docker cp` rules this promises; local files only.
        Progress: the bytes the CLI has read (it sends them as it reads them)."""
        from radops.executors.docker.archive import content_size, copy_in_refused, local_source
        from radops.executors.local.cli import docker_cli, run_metered
        from radops.progress import BRIEF_S, transfer_meter

        local = local_source(source)  # as typed: `dir/.` is the folder's contents
        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        docker = docker_cli("copying to a job")
        # "./" before a relative path: docker reads `a:b` (and `x/a:b`) as CONTAINER:PATH.
        path = local.path if os.path.isabs(local.path) else os.path.join(".", local.path)
        label = f"Copying {local.path} to job {job.id}"
        size = content_size(local)
        meter = transfer_meter(progress, label, size, estimate=True, brief=BRIEF_S)
        result = run_metered(
            [docker, "cp", "--", path, f"{container_name(job.id)}:{dest}"], meter, size
        )
        if result.returncode != 0:
            text = result.stderr.decode(errors="replace")
            refused = copy_in_refused(text, job.id, self.name, dest)
            if refused is not None:
                raise refused
            line = error_line(text).replace(data["Id"], container_name(job.id))
            raise RadopsError(f"copying to {dest!r} in job {job.id} on {self.name!r}: {line}")

    def copy_archive_to(self, job_id: str, archive: Iterable[bytes], dest: str) -> None:
        from radops.executors.docker.archive import copy_in_refused

        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        what = f"copying into {dest} in job {job.id}"
        path, query = f"/containers/{data['Id']}/archive", {"path": dest}
        try:
            reply = self.engine.open("PUT", path, what, query=query, upload=archive)
        except NotFoundError as e:  # the Engine API's 404: DEST missing, or not a folder
            raise copy_in_refused("no such directory", job.id, self.name, dest) or e from e
        except RadopsError as e:  # 400: not a folder (a stopped job's container says so)
            refused = copy_in_refused(e.message, job.id, self.name, dest)
            if refused is None:
                raise
            raise refused from e
        with reading(what):
            reply.read()
        reply.close()

    def exec(
        self, job_id: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        """Through the docker CLI, attached to this process's terminal or pipes."""
        import subprocess

        from radops.executors.local.cli import docker_cli

        data = self._container(job_id)
        running_job(data, self.name)
        docker = docker_cli("exec")
        flags = exec_flags(interactive, tty)
        stdin = None if interactive else subprocess.DEVNULL
        return subprocess.run(
            [docker, "exec", *flags, data["Id"], *command], stdin=stdin, check=False
        ).returncode

    def port_opener(self, job_id: str, port: int) -> Callable[[], PortStream]:
        import socket

        data = self._container(job_id)
        address = job_address(data, self.name)

        def open_stream() -> PortStream:
            return socket.create_connection((address, port), timeout=10)

        return open_stream

    def top(self) -> TopReport:
        import subprocess

        from radops.executors.docker.top import GPU_QUERY, STATS_FORMAT, parse_gpus, parse_stats
        from radops.executors.local.cli import docker_cli
        from radops.executors.local.gpus import nvidia_smi
        from radops.executors.model import TopReport

        gpus = None if (smi := nvidia_smi(GPU_QUERY)) is None else parse_gpus(smi)
        jobs = self.jobs()
        gpus = with_jobs(gpus, jobs)
        running = [container_name(j.id) for j in jobs if j.status == "running"]
        if not running:
            return TopReport(self.name, gpus, [])
        docker = docker_cli("top")
        stats = subprocess.run(
            [docker, "stats", "--no-stream", "--format", STATS_FORMAT, *running],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return TopReport(self.name, gpus, parse_stats(stats.stdout, CONTAINER_PREFIX))

    def remove(self, job_id: str, force: bool = False) -> Job:
        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        if data["State"]["Running"] and not force:
            raise running_refused(job, self.name)
        query = {"force": "1"} if force else None
        self.engine.call("DELETE", f"/containers/{data['Id']}", f"removing job {job.id}",
                         query=query)  # fmt: skip
        return job

    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        jobs = stopped_jobs(self.jobs(), older_than)
        if not images:
            return PrunePlan(jobs, [])
        going = {"/" + container_name(job.id) for job in jobs}
        what = "listing containers and images"
        containers = self._containers({}, what)
        found = [
            Image(str(i["Id"]), list(i.get("RepoTags") or []), int(i.get("Size") or 0))
            for i in self.engine.call("GET", "/images/json", what)
        ]
        used = {str(c["ImageID"]) for c in containers if not going & set(c.get("Names") or [])}
        return PrunePlan(jobs, unused_radops_images(found, used))

    def prune(self, plan: PrunePlan) -> PruneResult:
        before = self._layers_size()
        jobs: list[str] = []
        for job in plan.jobs:  # not --force: a job started again meanwhile stays
            if self._removed(f"/containers/{container_name(job.id)}", "removing a job"):
                jobs.append(job.id)
        images: list[Image] = []
        for image in plan.images:
            removed = [self._removed(f"/images/{ref}", "removing an image") for ref in image.refs]
            if all(removed):
                images.append(image)
        after = self._layers_size()
        freed = before - after if before is not None and after is not None else None
        return PruneResult(jobs, images, max(freed, 0) if freed is not None else None)

    def _removed(self, path: str, what: str) -> bool:
        """DELETE `path`; False if the engine refused (in use, gone meanwhile): no error."""
        try:
            self.engine.call("DELETE", path, what)
        except EngineUnreachableError:
            raise
        except RadopsError:
            return False
        return True

    def _layers_size(self) -> int | None:
        """The bytes the engine's image layers take on disk (`docker system df`)."""
        size = self.engine.call("GET", "/system/df", "measuring the engine's disk use")
        size = size.get("LayersSize")
        return int(size) if size is not None else None
