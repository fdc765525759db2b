"""How the local executor reaches the engine, against the real local engine.

On a unix socket, `logs` asks for HTTP/1.0 so the engine sends one raw stream instead of one
HTTP chunk per line; on any other DOCKER_HOST (here tcp:// through a forwarder to the same
engine) it goes through docker-py. Both must give the same bytes. And docker-py's ssh://
transport (paramiko) is loaded only when DOCKER_HOST is ssh://.
"""

from __future__ import annotations

import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.api import open_spec as open_executor
from radops.errors import NotFoundError
from radops.images.engine import LocalEngine, engine_socket_path
from radops.specs import LocalExecutorSpec
from tests.cli_process import describe, modules_after, radops

StartJob = Callable[..., str]
WaitJob = Callable[[str], int]

LINES = 3000
JOB_SCRIPT = (
    f'i=0; while [ $i -lt {LINES} ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; '
    "printf 'no newline'"
)


class _Forwarder(socketserver.ThreadingTCPServer):
    """127.0.0.1:PORT -> the engine's unix socket, byte for byte, both ways."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, unix_path: str) -> None:
        self.unix_path = unix_path
        super().__init__(("127.0.0.1", 0), _Pump)


class _Pump(socketserver.BaseRequestHandler):
    server: _Forwarder

    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.server.unix_path)
        back = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
        back.start()
        _copy(self.request, upstream)
        back.join(timeout=60)
        upstream.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def tcp_engine(docker_client: Any) -> Iterator[str]:
    """A tcp:// DOCKER_HOST for the local engine."""
    unix_path = engine_socket_path()
    assert unix_path is not None, "the tests' local engine must be on a unix socket"
    server = _Forwarder(unix_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _lines(chunks: Iterator[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """(stream, line) pairs: the same whatever sizes the reads happened to have."""
    return [(stream, line) for stream, data in chunks for line in data.splitlines(keepends=True)]


def test_logs_are_identical_over_the_unix_socket_and_over_tcp(
    tools_context: Path,
    start_job: StartJob,
    wait_job: WaitJob,
    tcp_engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = start_job(tools_context, "sh", "-c", JOB_SCRIPT)
    assert wait_job(job_id) == 0
    with open_executor(LocalExecutorSpec()) as executor:
        over_unix = _lines(executor.logs(job_id))
        tail_over_unix = _lines(executor.logs(job_id, tail=2))

    monkeypatch.setenv("DOCKER_HOST", tcp_engine)
    assert engine_socket_path() is None
    with open_executor(LocalExecutorSpec()) as executor:
        over_tcp = _lines(executor.logs(job_id))
        tail_over_tcp = _lines(executor.logs(job_id, tail=2))

    out = [line for stream, line in over_unix if stream == "stdout"]
    err = [line for stream, line in over_unix if stream == "stderr"]
    assert out == [f"out {i}\n".encode() for i in range(LINES)] + [b"no newline"]
    assert err == [f"err {i}\n".encode() for i in range(LINES)]
    assert over_tcp == over_unix
    assert tail_over_tcp == tail_over_unix
    assert tail_over_unix[-1] == ("stdout", b"no newline") and len(tail_over_unix) <= 4


def test_an_engine_error_on_the_raw_stream_is_radops_not_found(docker_client: Any) -> None:
    assert engine_socket_path() is not None
    path = "/containers/radops-doesnotexist0/logs"
    with pytest.raises(NotFoundError, match="reading the logs: No such container"):
        LocalEngine().open("GET", path, "reading the logs", query={"stdout": "1"})


def _modules_after(args: list[str], env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    code, modules, _ = modules_after(args, env)
    return code, modules


def test_local_commands_load_neither_docker_py_nor_paramiko(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    """On the engine's unix socket every local command speaks the Engine API itself."""
    job_id = start_job(tools_context, "sh", "-c", "echo hi")
    wait_job(job_id)
    for args in (
        ["executors", "jobs", "local"],
        ["executors", "logs", "local", job_id],
        ["executors", "inspect", "local", job_id],
        ["executors", "stop", "local", job_id],
    ):
        code, modules = _modules_after(args)
        assert code == 0, args
        assert not {"docker", "requests", "urllib3", "paramiko"} & modules, args


def test_docker_host_over_ssh_keeps_docker_pys_ssh_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = (
        "import radops, sys, docker; from docker.transport import SSHHTTPAdapter; "
        "print('paramiko' in sys.modules)"
    )
    env = {"DOCKER_HOST": "ssh://nobody@127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr


def test_the_console_script_flushes_output_and_keeps_exit_codes() -> None:
    # `radops` (the installed command) leaves through os._exit: output and codes must survive.
    beside = Path(sys.executable).with_name("radops")
    command = str(beside) if beside.exists() else shutil.which("radops")
    assert command, "the `radops` command is not installed"
    listed = subprocess.run(
        [command, "executors", "list", "--json"], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert [e["name"] for e in json.loads(listed.stdout)] == ["local"]
    missing = subprocess.run(
        [command, "executors", "jobs", "nope"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 3
    assert missing.stderr.startswith("radops: error: unknown executor 'nope'")


def test_an_unchanged_local_submit_loads_no_docker_py(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    # The image exists after the first run; a re-submit asks the engine through the standard
    # library: docker-py, requests and urllib3 are most of a re-submit's fixed cost.
    wait_job(start_job(tools_context, "true"))
    code, modules = _modules_after(["executors", "run", "local", str(tools_context), "-q", "true"])
    assert code == 0
    assert not modules & {"docker", "requests", "urllib3"}, sorted(modules & {"docker"})


def test_a_changed_local_submit_built_with_buildkit_loads_no_docker_py(
    make_context: Callable[..., Path], start_job: StartJob, wait_job: WaitJob
) -> None:
    # BuildKit builds go through the docker CLI (bootstrap makes sure one has BuildKit), and
    # the new image is tagged through LocalEngine.call: docker-py is for the legacy builder.
    dockerfile = "FROM busybox:1.36\nCOPY step.txt /step.txt\n"
    folder = make_context("changing", {"Dockerfile": dockerfile, "step.txt": "one\n"})
    wait_job(start_job(folder, "true"))
    (folder / "step.txt").write_text("two\n")
    code, modules = _modules_after(["executors", "run", "local", str(folder), "-q", "true"])
    assert code == 0
    assert not modules & {"docker", "requests", "urllib3"}
    assert "radops.images.build" in modules  # it did build


def test_a_job_starts_the_same_over_the_unix_socket_and_over_tcp(
    tools_context: Path, tcp_engine: str, wait_job: WaitJob, docker_client: Any, tmp_path: Path
) -> None:
    # `run` speaks the Engine API itself on a unix socket and through docker-py elsewhere:
    # the same flags must make the same container either way.
    (tmp_path / "data.txt").write_text("from the host\n")
    options = [
        "--mount", f"type=bind,source={tmp_path},target=/data,readonly",
        "--shm-size", "256m", "-e", "GREETING=hello there", "-w", "/data",
        "-p", "127.0.0.1::8080", "--label", "team=ml",
    ]  # fmt: skip
    script = 'cat data.txt; echo "$GREETING"; df -k /dev/shm | tail -1'
    seen = []
    for docker_host in (None, tcp_engine):
        env = {"DOCKER_HOST": docker_host}
        result = radops(
            "executors", "run", "local", str(tools_context), *options, "-q", "--", "sh", "-c",
            script, env=env,
        )  # fmt: skip
        assert result.returncode == 0, describe(result)
        job_id = result.stdout.strip()
        assert wait_job(job_id) == 0
        container = docker_client.api.inspect_container(f"radops-{job_id}")
        out = docker_client.api.logs(container["Id"]).decode()
        host = container["HostConfig"]
        seen.append(
            (
                out.splitlines()[:2],
                out.splitlines()[2].split()[1],  # /dev/shm's size in KiB
                [(m["Type"], m["Source"], m["Destination"], m["RW"]) for m in container["Mounts"]],
                host["ShmSize"], host["PortBindings"], host["LogConfig"]["Type"],
                container["Config"]["ExposedPorts"], container["Config"]["Labels"]["team"],
                container["Config"]["WorkingDir"],
            )
        )  # fmt: skip
    assert seen[0] == seen[1]
    lines, shm_kib, mounts, shm, ports, log_type, exposed, team, workdir = seen[0]
    assert lines == ["from the host", "hello there"]
    assert (shm_kib, shm) == ("262144", 256 * 1024 * 1024)
    assert mounts == [("bind", str(tmp_path), "/data", False)]
    assert ports == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert (exposed, team, workdir, log_type) == ({"8080/tcp": {}}, "ml", "/data", "local")
