"""The `local` executor: the Docker engine that DOCKER_HOST (or the default socket) names."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import NotFoundError, RadopsError, UsageError
from radops.executors.base import Executor
from radops.executors.docker.argv import error_line
from radops.executors.docker.frames import demux_frames
from radops.executors.docker.labels import (
    job_from_inspect,
    job_from_labels,
    job_from_summary,
    job_labels,
    match_job,
    newest_first,
)
from radops.executors.docker.options import NO_GPU_DRIVER, no_gpu_runtime, parse_gpus
from radops.executors.docker.prune import (
    exec_flags,
    job_address,
    running_job,
    running_refused,
    stopped_jobs,
    unused_radops_images,
)
from radops.executors.features import ALL_FEATURES, Feature
from radops.executors.model import (
    CONTAINER_PREFIX,
    JOB_ID,
    LABEL_JOB_ID,
    LOG_DRIVER,
    LOG_OPTIONS,
    EngineReport,
    ExecutorContext,
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
from radops.executors.run_options import RunOptions, mount_fields, size_bytes
from radops.images.engine import (
    LocalEngine,
    docker_errors,
    engine_error,
    engine_socket_path,
    engine_unreachable,
)
from radops.images.service import LocalImages
from radops.progress import ProgressCallback
from radops.specs import LocalExecutorSpec

if TYPE_CHECKING:
    from radops.executors.model import TopReport
    from radops.specs import LocalExecutorSpec


class LocalExecutor(Executor):
    """Jobs on the local engine, one Engine API call per step: `run` through
    `LocalEngine.call` (no docker-py on a unix socket), the rest through docker-py's API."""

    kind = "local"
    title = "the local executor"
    spec_type = LocalExecutorSpec
    features = ALL_FEATURES - {
        Feature.TRANSFER, Feature.REMOTE_BUILD, Feature.QUEUE, Feature.CONNECT
    }  # fmt: skip

    def __init__(self, spec: LocalExecutorSpec, context: ExecutorContext | None = None) -> None:
        super().__init__(spec, context)
        self.engine = LocalEngine()
        self.images = LocalImages(self.engine)

    @property
    def api(self) -> Any:
        """docker-py's APIClient for the local engine."""
        return self.engine.api

    def close(self) -> None:
        self.engine.close()

    def check(self) -> EngineReport:
        version = self.engine.version()
        gpus = _local_gpus()
        return EngineReport(
            executor=self.name,
            server_version=str(version.get("Version", "?")),
            os=str(version.get("Os", "?")),
            architecture=str(version.get("Arch", "?")),
            gpus=gpus,
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
        config, host_config = _engine_fields(request.options)
        host_config["LogConfig"] = {"Type": LOG_DRIVER, "Config": LOG_OPTIONS}
        if request.gpus:  # parsed before building, so a bad value costs no build
            host_config["DeviceRequests"] = [{**parse_gpus(request.gpus), "Options": {}}]
        plan = self.images.plan(request.context, request.dockerfile, build=request.build)
        image = self.images.ensure(plan, progress)
        job_id = new_job_id()
        labels = job_labels(job_id, self.name, image, request)
        body = {
            "Image": image,
            "Cmd": request.command or None,
            "Labels": {**dict(request.options.labels), **labels},
            "Env": [f"{key}={value}" for key, value in request.env.items()] or None,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            **config,
            "HostConfig": host_config,
        }
        what = "starting the job"
        name = container_name(job_id)
        cid = self.engine.call("POST", "/containers/create", what, query={"name": name}, body=body)
        cid = cid["Id"]
        try:
            self.engine.call("POST", f"/containers/{cid}/start", what)
        except BaseException as e:  # Ctrl-C too
            # A job that never started is not a job: leave nothing behind in `jobs`.
            with contextlib.suppress(RadopsError):
                self.engine.call("DELETE", f"/containers/{cid}", what, query={"force": "1"})
            if NO_GPU_DRIVER in str(e):
                raise no_gpu_runtime("this machine") from e
            raise
        progress(f"Started job {job_id}")
        return job_from_labels(labels, self.name, "running")

    def jobs(self) -> list[Job]:
        with docker_errors("listing jobs"):
            rows = self.api.containers(all=True, filters={"label": LABEL_JOB_ID})
        jobs = [job_from_summary(row, self.name) for row in rows]
        return newest_first(jobs)

    def _container(self, ref: str) -> dict[str, Any]:
        """The container of the job `ref` names (see `match_job`). A whole id is looked up
        first, alone: the rule's first step, which needs no listing."""
        import docker.errors

        with docker_errors(f"looking up job {ref}"):
            if JOB_ID.fullmatch(ref):
                try:
                    data: dict[str, Any] = self.api.inspect_container(container_name(ref))
                    if (data["Config"]["Labels"] or {}).get(LABEL_JOB_ID) == ref:
                        return data
                except docker.errors.NotFound:
                    pass
            found = match_job(ref, self.jobs(), self.name)
            data = self.api.inspect_container(container_name(found))
            return data

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
            "stdout": 1,
            "stderr": 1,
            "follow": int(follow),
            "timestamps": int(timestamps),
            "tail": "all" if tail is None else str(tail),
        }
        with docker_errors(f"reading the logs of job {job_id}"):
            socket_path = engine_socket_path()
            if socket_path is not None:
                response: Any = _get_unchunked(
                    socket_path,
                    f"/v{self.api.api_version}/containers/{cid}/logs",
                    params,
                    f"reading the logs of job {job_id}",
                )
                read = response.read1 if follow else response.read
            else:
                api = self.api
                # timeout=None: a followed job may print nothing for hours.
                response = api._get(
                    api._url("/containers/{0}/logs", cid), params=params, stream=True, timeout=None
                )
                api._raise_for_status(response)
                read = response.raw.read1 if follow else response.raw.read
        try:
            with docker_errors(f"reading the logs of job {job_id}"):
                # Following: hand over whatever has arrived. Otherwise fill whole 64 KiB blocks.
                yield from demux_frames(read)
        finally:
            response.close()

    def wait(self, job_id: str) -> int:
        cid = self._container(job_id)["Id"]
        with docker_errors(f"waiting for job {job_id}"):
            result = self.api.wait(cid, timeout=None)
        return int(result["StatusCode"])

    def stop(self, job_id: str, timeout: int = 10) -> StopResult:
        data = self._container(job_id)
        if not data["State"]["Running"]:
            return StopResult(job_from_inspect(data, self.name), was_running=False)
        with docker_errors(f"stopping job {job_id}"):
            self.api.stop(data["Id"], timeout=timeout)
            after = self.api.inspect_container(data["Id"])
        return StopResult(job_from_inspect(after, self.name), was_running=True)

    def copy_from(self, job_id: str, path: str) -> Iterator[bytes]:
        import docker.errors

        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        with docker_errors(f"copying {path} from job {job.id}"):
            try:
                chunks, _ = self.api.get_archive(data["Id"], path, chunk_size=1 << 20)
            except docker.errors.NotFound as e:
                raise NotFoundError(f"no {path!r} in job {job.id} on {self.name!r}") from e
            yield from chunks

    def copy_to(self, job_id: str, source: str | Path, dest: str) -> None:
        """Through the docker CLI, whose `docker cp` rules this promises; local files only."""
        import subprocess

        from radops.executors.docker.archive import local_source

        local = local_source(source)  # as typed: `dir/.` is the folder's contents
        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        docker = _docker_cli("copying to a job")
        # "./" before a relative path: docker reads `a:b` (and `x/a:b`) as CONTAINER:PATH.
        path = local.path if os.path.isabs(local.path) else os.path.join(".", local.path)
        result = subprocess.run(
            [docker, "cp", "--", path, f"{data['Id']}:{dest}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            line = error_line(result.stderr.decode(errors="replace"))
            raise RadopsError(f"copying to {dest!r} in job {job.id}: {line}")

    def copy_archive_to(self, job_id: str, archive: Iterable[bytes], dest: str) -> None:
        import docker.errors

        data = self._container(job_id)
        job = job_from_inspect(data, self.name)
        with docker_errors(f"copying into {dest} in job {job.id}"):
            try:
                self.api.put_archive(data["Id"], dest, iter(archive))
            except docker.errors.NotFound as e:
                raise NotFoundError(f"no folder {dest!r} in job {job.id}") from e

    def exec(
        self, job_id: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        """Through the docker CLI, attached to this process's terminal or pipes."""
        import subprocess

        data = self._container(job_id)
        running_job(data, self.name)
        docker = _docker_cli("exec")
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
        import shutil
        import subprocess

        from radops.executors.docker.top import GPU_QUERY, STATS_FORMAT, parse_gpus, parse_stats
        from radops.executors.model import TopReport

        gpus = None
        if shutil.which(GPU_QUERY[0]):
            smi = subprocess.run(GPU_QUERY, capture_output=True, text=True, check=False)
            gpus = parse_gpus(smi.stdout) if smi.returncode == 0 else None
        running = [container_name(j.id) for j in self.jobs() if j.status == "running"]
        if not running:
            return TopReport(self.name, gpus, [])
        docker = _docker_cli("top")
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
        with docker_errors(f"removing job {job.id}"):
            self.api.remove_container(data["Id"], force=force)
        return job

    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        jobs = stopped_jobs(self.jobs(), older_than)
        if not images:
            return PrunePlan(jobs, [])
        going = {"/" + container_name(job.id) for job in jobs}
        with docker_errors("listing containers and images"):
            containers = self.api.containers(all=True)
            found = [
                Image(str(i["Id"]), list(i.get("RepoTags") or []), int(i.get("Size") or 0))
                for i in self.api.images()
            ]
        used = {str(c["ImageID"]) for c in containers if not going & set(c.get("Names") or [])}
        return PrunePlan(jobs, unused_radops_images(found, used))

    def prune(self, plan: PrunePlan) -> PruneResult:
        import docker.errors

        before = self._layers_size()
        jobs: list[str] = []
        for job in plan.jobs:  # not --force: a job started again meanwhile stays
            with docker_errors("removing a job"), contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(container_name(job.id))
                jobs.append(job.id)
        images: list[str] = []
        for image in plan.images:
            removed = 0
            for ref in image.refs:
                with (
                    docker_errors("removing an image"),
                    contextlib.suppress(docker.errors.APIError),
                ):
                    self.api.remove_image(ref)
                    removed += 1
            if removed == len(image.refs):
                images.append(image.id)
        after = self._layers_size()
        freed = before - after if before is not None and after is not None else None
        return PruneResult(jobs, images, max(freed, 0) if freed is not None else None)

    def _layers_size(self) -> int | None:
        """The bytes the engine's image layers take on disk (`docker system df`)."""
        with docker_errors("measuring the engine's disk use"):
            size = self.api.df().get("LayersSize")
        return int(size) if size is not None else None


def _get_unchunked(socket_path: str, path: str, params: dict[str, Any], what: str) -> Any:
    """GET `path` from the engine over HTTP/1.0: the body comes as one raw stream.

    Over HTTP/1.1 the engine sends every log line as its own chunk, and decoding 300,000
    chunks in Python (http.client, under requests) took most of a large `logs`: about a
    second of CPU, more than the engine's own work. An HTTP/1.0 reply has no chunks; the
    stream ends when the engine closes the connection. The reply is parsed by http.client.
    """
    import http.client
    import socket
    from urllib.parse import urlencode

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        request = f"GET {path}?{urlencode(params)} HTTP/1.0\r\nHost: docker\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(sock)
        response.begin()
    except OSError as e:
        sock.close()
        raise engine_unreachable(e) from e
    finally:
        sock.close()  # the response holds its own file object on the socket
    if response.status >= 400:
        body = response.read()
        response.close()
        raise engine_error(what, response.status, response.reason, body)
    return response


def _docker_cli(what: str) -> str:
    """The docker CLI on PATH, for what goes through it rather than the Engine API."""
    import shutil

    docker = shutil.which("docker")
    if docker is None:
        raise RadopsError(f"{what} needs the docker CLI on PATH")
    return docker


def _engine_fields(options: RunOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """`options` as Engine API container config and host config fields: what the docker CLI
    sends for the same `docker run` flags."""
    config: dict[str, Any] = {}
    host: dict[str, Any] = {"NetworkMode": options.network or "default"}
    if options.volumes:
        host["Binds"] = list(options.volumes)
    if options.mounts:
        host["Mounts"] = [engine_mount(spec) for spec in options.mounts]
    if options.shm_size:
        host["ShmSize"] = size_bytes(options.shm_size)
    if options.ipc:
        host["IpcMode"] = options.ipc
    if options.memory:
        host["Memory"] = size_bytes(options.memory)
    if options.cpus:
        host["NanoCpus"] = int(float(options.cpus) * 1e9)
    if options.publish:
        from docker.utils.ports import build_port_bindings
        from docker.utils.utils import convert_port_bindings

        bindings = convert_port_bindings(build_port_bindings(list(options.publish)))
        host["PortBindings"] = bindings
        config["ExposedPorts"] = {port: {} for port in bindings}
    if options.workdir:
        config["WorkingDir"] = options.workdir
    if options.user:
        config["User"] = options.user
    if options.entrypoint is not None:  # one word, as `docker run --entrypoint`; "" resets it
        config["Entrypoint"] = [options.entrypoint]
    return config, host


def engine_mount(spec: str) -> dict[str, Any]:
    """A `--mount` value (checked by run_options) as an Engine API Mount."""
    fields = mount_fields(spec)
    kind = fields.get("type", "volume")
    mount: dict[str, Any] = {
        "Target": fields.get("target") or fields.get("destination") or fields.get("dst") or "",
        "Source": fields.get("source") or fields.get("src"),
        "Type": kind,
        "ReadOnly": fields.get("readonly", fields.get("ro", "false")).lower() in ("true", "1"),
    }
    if kind == "bind" and "bind-propagation" in fields:
        mount["BindOptions"] = {"Propagation": fields["bind-propagation"]}
    if kind == "volume" and fields.get("volume-nocopy", "false").lower() in ("true", "1"):
        mount["VolumeOptions"] = {"NoCopy": True}
    if kind == "tmpfs":
        tmpfs: dict[str, int] = {}
        if "tmpfs-mode" in fields:
            tmpfs["Mode"] = int(fields["tmpfs-mode"], 8)
        if "tmpfs-size" in fields:
            tmpfs["SizeBytes"] = size_bytes(fields["tmpfs-size"])
        if tmpfs:
            mount["TmpfsOptions"] = tmpfs
    return mount


def _local_gpus() -> list[str]:
    """GPU names from nvidia-smi on this machine; none if it is missing or fails."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]
