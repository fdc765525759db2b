"""The `local` executor: the Docker engine that DOCKER_HOST (or the default socket) names."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from radops.errors import NotFoundError, RadopsError
from radops.executors._docker_options import NO_GPU_DRIVER, no_gpu_runtime, parse_gpus
from radops.executors._frames import demux_frames
from radops.executors._labels import (
    job_from_inspect,
    job_from_labels,
    job_from_summary,
    job_labels,
    match_job_id,
    newest_first,
)
from radops.executors.base import (
    LABEL_JOB_ID,
    LOG_DRIVER,
    LOG_OPTIONS,
    ConnectOptions,
    EngineReport,
    Executor,
    Job,
    JobRequest,
    ProgressCallback,
    StopResult,
    Stream,
    container_name,
    new_job_id,
)
from radops.images.engine import LocalEngine, docker_errors, engine_unreachable
from radops.images.service import LocalImages

if TYPE_CHECKING:
    from radops.config import LocalExecutorSpec


class LocalExecutor(Executor):
    """Jobs on the local engine, through docker-py's low-level API (one HTTP call per step)."""

    kind = "local"

    def __init__(self, spec: LocalExecutorSpec, options: ConnectOptions | None = None) -> None:
        super().__init__(spec.name)  # `options` are for executors that log in somewhere
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

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        host_config: dict[str, Any] = {"log_config": {"Type": LOG_DRIVER, "Config": LOG_OPTIONS}}
        if request.gpus:  # parsed before building, so a bad value costs no build
            host_config["device_requests"] = [_device_request(parse_gpus(request.gpus))]
        plan = self.images.plan(request.context, request.dockerfile, build=request.build)
        image = self.images.ensure(plan, progress)
        job_id = new_job_id()
        labels = job_labels(job_id, self.name, image, request)
        with docker_errors("starting the job"):
            container = self.api.create_container(
                image,
                command=request.command or None,
                name=container_name(job_id),
                labels=labels,
                environment=request.env or None,
                host_config=self.api.create_host_config(**host_config),
                detach=True,
            )
            try:
                self.api.start(container["Id"])
            except Exception as e:
                # A job that never started is not a job: leave nothing behind in `jobs`.
                self.api.remove_container(container["Id"], force=True)
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

    def _container(self, job_id: str) -> dict[str, Any]:
        import docker.errors

        with docker_errors(f"looking up job {job_id}"):
            try:
                data: dict[str, Any] = self.api.inspect_container(container_name(job_id))
                if LABEL_JOB_ID in (data["Config"]["Labels"] or {}):
                    return data
            except docker.errors.NotFound:
                pass
            ids = [j.id for j in self.jobs()]
            data = self.api.inspect_container(container_name(match_job_id(job_id, ids, self.name)))
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
            socket_path = _engine_socket_path()
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


def _engine_socket_path() -> str | None:
    """The engine's unix socket, as docker-py resolves DOCKER_HOST; None for tcp:// and ssh://."""
    from docker.utils import parse_host

    url = str(parse_host(os.environ.get("DOCKER_HOST"), sys.platform == "win32"))
    return url.removeprefix("http+unix://") if url.startswith("http+unix://") else None


def _get_unchunked(socket_path: str, path: str, params: dict[str, Any], what: str) -> Any:
    """GET `path` from the engine over HTTP/1.0: the body comes as one raw stream.

    Over HTTP/1.1 the engine sends every log line as its own chunk, and decoding 300,000
    chunks in Python (http.client, under requests) took most of a large `logs`: about a
    second of CPU, more than the engine's own work. An HTTP/1.0 reply has no chunks; the
    stream ends when the engine closes the connection. The reply is parsed by http.client.
    """
    import http.client
    import json
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
        body = response.read().decode("utf-8", "replace")
        response.close()
        try:
            message = str(json.loads(body)["message"])
        except (ValueError, KeyError, TypeError):
            message = body.strip() or response.reason
        error = NotFoundError if response.status == 404 else RadopsError
        raise error(f"{what}: {message}")
    return response


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


def _device_request(fields: dict[str, Any]) -> Any:
    from docker.types import DeviceRequest

    return DeviceRequest(
        driver=fields["Driver"],
        count=fields["Count"],
        device_ids=fields["DeviceIDs"],
        capabilities=fields["Capabilities"],
    )
