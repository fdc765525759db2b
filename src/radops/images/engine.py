"""The local Docker engine (DOCKER_HOST, or the default socket): one client, one transport
per kind of socket, one place where failures become radops errors.

Every Engine API call goes through `LocalEngine.call` (a JSON reply) or `LocalEngine.open` (a
streamed one: logs, archives). On a unix socket that is the standard library's http.client, so
a command does not load docker-py, requests and urllib3 (about 0.13 s); on tcp:// or ssh://
it is docker-py's session (TLS, ssh), loaded on first use. A reply of 400 or more is
`engine_error` (404: NotFoundError); no engine is `engine_unreachable`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import urlencode

from radops.errors import EngineUnreachableError, NotFoundError, RadopsError

# `uname -m` -> Docker's architecture names.
_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le"}

CALL_TIMEOUT_S = 60  # docker-py's default: a call that hangs longer is a stuck engine

ENGINE_HINT = (
    "Start Docker (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at it."
)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def engine_unreachable(e: BaseException) -> EngineUnreachableError:
    return EngineUnreachableError(
        f"cannot reach the local Docker engine ({first_line(e)})", ENGINE_HINT
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
        raise engine_unreachable(e) from e


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Reading a streamed reply (`LocalEngine.open`): the connection failing half way is
    `engine_unreachable`, whichever transport carried it."""
    try:
        yield
    except RadopsError:
        raise
    except (OSError, http.client.HTTPException) as e:
        raise engine_unreachable(e) from e
    except Exception as e:  # requests' and urllib3's own, on tcp:// and ssh:// engines
        if type(e).__module__.split(".")[0] in ("requests", "urllib3", "docker"):
            raise engine_unreachable(e) from e
        raise


def engine_socket_path() -> str | None:
    """The engine's unix socket as docker-py reads DOCKER_HOST (unset: the default socket);
    None for tcp://, ssh:// and npipe://, which go through docker-py."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if not host:
        return None if sys.platform == "win32" else "/var/run/docker.sock"
    if host.startswith("unix://"):
        return host.removeprefix("unix://") or "/var/run/docker.sock"
    return None


def engine_error(what: str, status: int, reason: str, body: bytes) -> RadopsError:
    """A failed Engine API reply as a radops error (404: NotFoundError) saying `what` was
    being done, in the engine's own words: its JSON `message`, else the body or reason."""
    text = body.decode("utf-8", "replace")
    try:
        message = str(json.loads(text)["message"])
    except (ValueError, KeyError, TypeError):
        message = text.strip() or reason or f"HTTP {status}"
    error = NotFoundError if status == 404 else RadopsError
    return error(f"{what}: {message}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = CALL_TIMEOUT_S) -> None:
        super().__init__("docker")  # the Host header; the engine ignores it
        self._path = path
        self._timeout = timeout

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EngineStream(Protocol):
    """A streamed Engine API reply: its body as it arrives."""

    def read(self, size: int = -1, /) -> bytes: ...  # up to `size` bytes; fewer only at the end
    def read1(self, size: int = -1, /) -> bytes: ...  # what has arrived, up to `size`
    def close(self) -> None: ...


class _RequestsStream:
    """docker-py's (requests') streamed response as an EngineStream."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self.response.raw.read(None if size < 0 else size)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        data: bytes = self.response.raw.read1(size)
        return data

    def close(self) -> None:
        self.response.close()


class LocalEngine:
    """One client of the local engine, made on first use and shared by whoever needs it."""

    def __init__(self) -> None:
        self._api: Any = None

    @property
    def api(self) -> Any:
        """docker-py's APIClient."""
        if self._api is None:
            import docker

            with docker_errors("connecting to Docker"):
                self._api = docker.from_env().api
        return self._api

    def call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = CALL_TIMEOUT_S,
    ) -> Any:
        """One Engine API call (`path` without a version: the engine's own) and its JSON reply,
        None if it has none. A 404 is NotFoundError, other failures RadopsError, both saying
        `what` was being done and the engine's message; no engine is engine_unreachable.
        `timeout`: seconds without an answer before the engine counts as stuck (None: a
        call that waits for a job, as `wait` and `stop` do)."""
        url = path + (f"?{_query(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        socket_path = engine_socket_path()
        if socket_path is None:
            status, reason, reply = self._call_docker_py(method, url, data, what, timeout)
        else:
            connection = _UnixConnection(socket_path, timeout)
            try:
                headers = {"Content-Type": "application/json"} if data is not None else {}
                connection.request(method, url, body=data, headers=headers)
                response = connection.getresponse()
                status, reason, reply = response.status, response.reason, response.read()
            except (OSError, http.client.HTTPException) as e:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
                raise engine_unreachable(RuntimeError(f"{socket_path}: {reason}")) from e
            finally:
                connection.close()
        if status >= 400:
            raise engine_error(what, status, reason, reply)
        try:
            return json.loads(reply) if reply.strip() else None
        except ValueError as e:
            raise RadopsError(f"{what}: the engine's reply is not JSON ({reply[:80]!r})") from e

    def _call_docker_py(
        self, method: str, url: str, data: bytes | None, what: str, timeout: float | None
    ) -> tuple[int, str, bytes]:
        api = self.api
        with docker_errors(what):
            headers = {"Content-Type": "application/json"} if data is not None else {}
            response = api.request(
                method, api.base_url + url, data=data, headers=headers, timeout=timeout
            )
        return response.status_code, str(response.reason or ""), response.content

    def open(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: dict[str, str] | None = None,
        upload: Iterable[bytes] | None = None,
    ) -> EngineStream:
        """One Engine API call whose reply is read as it arrives (no timeout: a followed log
        may be silent for hours); `upload` is a request body sent as it is made (a tar). Its
        failures are `call`'s."""
        url = path + (f"?{_query(query)}" if query else "")
        socket_path = engine_socket_path()
        if socket_path is None:
            return self._open_docker_py(method, url, upload, what)
        if upload is not None:  # chunked HTTP/1.1: the body's size is not known in advance
            connection = _UnixConnection(socket_path)
            try:
                connection.request(
                    method, url, body=iter(upload), encode_chunked=True,
                    headers={"Content-Type": "application/x-tar"},
                )  # fmt: skip
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                raise engine_unreachable(RuntimeError(f"{socket_path}: {first_line(e)}")) from e
        else:
            response = _unchunked(socket_path, method, url)
        if response.status >= 400:
            body = response.read()
            response.close()
            raise engine_error(what, response.status, response.reason, body)
        return response

    def _open_docker_py(
        self, method: str, url: str, upload: Iterable[bytes] | None, what: str
    ) -> EngineStream:
        api = self.api
        with docker_errors(what):
            response = api.request(
                method, api.base_url + url, data=upload, stream=True, timeout=None
            )
        if response.status_code >= 400:
            body = response.content
            response.close()
            raise engine_error(what, response.status_code, str(response.reason or ""), body)
        return _RequestsStream(response)

    def version(self) -> dict[str, Any]:
        version: dict[str, Any] = self.call("GET", "/version", "asking the engine for its version")
        return version

    def platform(self) -> str:
        """The engine's own platform, e.g. linux/amd64."""
        # The engine on this machine (no DOCKER_HOST) runs on this machine's platform:
        # no need to load docker-py and ask it, which is most of an SSH re-submit's cost.
        arch = _DOCKER_ARCH.get(os.uname().machine)
        if arch is not None and not os.environ.get("DOCKER_HOST") and sys.platform == "linux":
            return f"linux/{arch}"
        version = self.version()
        return f"{version.get('Os', 'linux')}/{version.get('Arch', 'amd64')}"

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


def _unchunked(socket_path: str, method: str, url: str) -> http.client.HTTPResponse:
    """`method url` over HTTP/1.0: the body comes as one raw stream.

    Over HTTP/1.1 the engine sends every log line as its own chunk, and decoding 300,000
    chunks in Python took most of a large `logs`: about a second of CPU, more than the
    engine's own work. An HTTP/1.0 reply has no chunks; it ends when the engine closes the
    connection. The reply is parsed by http.client.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        sock.sendall(f"{method} {url} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
        response = http.client.HTTPResponse(sock)
        response.begin()
    except OSError as e:
        sock.close()
        raise engine_unreachable(RuntimeError(f"{socket_path}: {first_line(e)}")) from e
    finally:
        sock.close()  # the response holds its own file object on the socket
    return response


def _query(query: dict[str, str]) -> str:
    """A URL query; a path's bytes that are not UTF-8 (kept as surrogates) go as they are
    (%FE), as the docker CLI sends them, not as an encoding error."""
    return urlencode(query, encoding="utf-8", errors="surrogateescape")
