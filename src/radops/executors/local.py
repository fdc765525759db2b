"""The `local` executor: the Docker engine that DOCKER_HOST (or the default socket) names."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from radops import images
from radops.errors import EngineUnreachableError, NotFoundError, RadopsError
from radops.executors._docker_options import parse_gpus
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
    EngineReport,
    Executor,
    Job,
    JobRequest,
    ProgressCallback,
    Stream,
    container_name,
    new_job_id,
)

if TYPE_CHECKING:
    from radops.config import LocalExecutorSpec

# `uname -m` -> Docker's architecture names.
_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le"}

ENGINE_HINT = (
    "Start Docker (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at it."
)


@contextlib.contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Turn docker-py and connection errors into RadopsErrors that say what was being done."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except RadopsError:
        raise
    except docker.errors.NotFound as e:
        raise NotFoundError(f"{what}: {e.explanation or e}") from e
    except docker.errors.APIError as e:
        raise RadopsError(f"{what}: {e.explanation or e}") from e
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as e:
        raise EngineUnreachableError(
            f"cannot reach the local Docker engine ({_first_line(e)})", ENGINE_HINT
        ) from e


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class ImagePlan(NamedTuple):
    """What to build, and the content-hash tag it gets."""

    context: Path
    dockerfile: str
    platform: str | None  # None: this engine's own
    tag: str


class LocalExecutor(Executor):
    """Jobs on the local engine, through docker-py's low-level API (one HTTP call per step)."""

    kind = "local"

    def __init__(self, spec: LocalExecutorSpec) -> None:
        super().__init__(spec.name)
        self._api: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            import docker

            with docker_errors("connecting to Docker"):
                self._api = docker.from_env().api
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def check(self) -> EngineReport:
        with docker_errors("asking the engine for its version"):
            version = self.api.version()
        gpus = _local_gpus()
        return EngineReport(
            executor=self.name,
            server_version=str(version.get("Version", "?")),
            os=str(version.get("Os", "?")),
            architecture=str(version.get("Arch", "?")),
            gpus=gpus,
        )

    def platform(self) -> str:
        """The engine's own platform, e.g. linux/amd64."""
        # The engine on this machine (no DOCKER_HOST) runs on this machine's platform:
        # no need to load docker-py and ask it, which is most of an SSH re-submit's cost.
        arch = _DOCKER_ARCH.get(os.uname().machine)
        if arch is not None and not os.environ.get("DOCKER_HOST") and sys.platform == "linux":
            return f"linux/{arch}"
        with docker_errors("asking the engine for its version"):
            version = self.api.version()
        return f"{version.get('Os', 'linux')}/{version.get('Arch', 'amd64')}"

    def foreign_platform(self, platform: str | None) -> str | None:
        """`platform` if it is not this engine's own (then images are built for it), else None."""
        return None if platform is None or platform == self.platform() else platform

    def plan_image(self, request: JobRequest, platform: str | None = None) -> ImagePlan:
        """Check the request's context and hash it into its tag; touches no engine.

        `platform` (e.g. linux/arm64 for a remote executor) builds for another architecture
        when it differs from this engine's own.
        """
        context, dockerfile = images.check_context(request.context, request.dockerfile)
        platform = self.foreign_platform(platform)
        tag = images.tag_for_context(context, dockerfile, platform)
        return ImagePlan(context, dockerfile, platform, tag)

    def ensure_image(self, plan: ImagePlan, progress: ProgressCallback) -> str:
        """The planned image's tag, built only if the engine lacks it."""
        import docker.errors

        context, dockerfile, platform, tag = plan
        with docker_errors("checking for the image"):
            try:
                self.api.inspect_image(tag)
                progress(f"Image {tag} is up to date; not rebuilding")
                return tag
            except docker.errors.ImageNotFound:
                pass
        progress(f"Building {tag} from {context}" + (f" for {platform}" if platform else ""))
        images.build_image(self.api, context, dockerfile, tag, progress, platform)
        return tag

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        host_config: dict[str, Any] = {"log_config": {"Type": LOG_DRIVER, "Config": LOG_OPTIONS}}
        if request.gpus:  # parsed before building, so a bad value costs no build
            host_config["device_requests"] = [_device_request(parse_gpus(request.gpus))]
        image = self.ensure_image(self.plan_image(request), progress)
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
            except Exception:
                # A job that never started is not a job: leave nothing behind in `jobs`.
                self.api.remove_container(container["Id"], force=True)
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
                    socket_path, f"/v{self.api.api_version}/containers/{cid}/logs", params
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

    def stop(self, job_id: str, timeout: int = 10) -> Job:
        cid = self._container(job_id)["Id"]
        with docker_errors(f"stopping job {job_id}"):
            self.api.stop(cid, timeout=timeout)
        return self.get(job_id)


def _engine_socket_path() -> str | None:
    """The engine's unix socket, as docker-py resolves DOCKER_HOST; None for tcp:// and ssh://."""
    from docker.utils import parse_host

    url = str(parse_host(os.environ.get("DOCKER_HOST"), sys.platform == "win32"))
    return url.removeprefix("http+unix://") if url.startswith("http+unix://") else None


def _get_unchunked(socket_path: str, path: str, params: dict[str, Any]) -> Any:
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

    import docker.errors

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        request = f"GET {path}?{urlencode(params)} HTTP/1.0\r\nHost: docker\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(sock)
        response.begin()
    except OSError as e:
        sock.close()
        raise EngineUnreachableError(
            f"cannot reach the local Docker engine ({_first_line(e)})", ENGINE_HINT
        ) from e
    finally:
        sock.close()  # the response holds its own file object on the socket
    if response.status >= 400:
        body = response.read().decode("utf-8", "replace")
        response.close()
        try:
            message = str(json.loads(body)["message"])
        except (ValueError, KeyError, TypeError):
            message = body.strip() or response.reason
        error = docker.errors.NotFound if response.status == 404 else docker.errors.APIError
        raise error(message, explanation=message)
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
