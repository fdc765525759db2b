"""Shared SSH connections (radops.ssh.mux) against the rig's real sshd and remote engine.

A command that connects itself starts a background connection for later commands; those run
without paramiko or a handshake; a dead or idle shared connection never breaks a command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.api import open_spec as open_executor
from radops.executors.base import Executor
from radops.executors.model import ConnectOptions
from radops.ssh.mux import client as mux_client
from radops.ssh.mux import sockets as mux_sockets
from radops.ssh.mux.sockets import socket_dir
from radops.store import ExecutorStore
from tests import rig
from tests.ssh import test_ssh_contract
from tests.ssh.conftest import CLI

WAIT_S = 30


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short private XDG_RUNTIME_DIR (socket paths must stay under ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="rx", dir="/tmp"))
    yield path
    for pid in _servers(path):  # whatever a failed test left running
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def _servers(runtime: Path) -> list[int]:
    """Pids of `python -m radops.ssh.mux.server` processes serving sockets under `runtime`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"radops.ssh.mux.server" in cmdline and f"XDG_RUNTIME_DIR={runtime}".encode() in environ:
            found.append(int(entry.name))
    return found


def _sockets(runtime: Path) -> list[Path]:
    return sorted((runtime / "radops").glob("*.sock"))


def _answering(runtime: Path) -> bool:
    """One shared connection's socket under `runtime`, and a server answering on it."""
    sockets = _sockets(runtime)
    return len(sockets) == 1 and mux_client.probe(sockets[0])


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {WAIT_S} s waiting for {what}")


@pytest.fixture
def shared_cli(cli: CLI, runtime_dir: Path) -> CLI:
    cli.env.update(XDG_RUNTIME_DIR=str(runtime_dir), RADOPS_SSH_PERSIST="3")
    return cli


PARAMIKO_LOADED = """
import sys
from radops.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print("PARAMIKO=" + str("paramiko" in sys.modules), "CODE=" + str(code), file=sys.stderr)
"""


def _in_process(cli: CLI, *args: str) -> tuple[str, str]:
    """Run the CLI; return (stdout, the marker line saying whether paramiko was loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", PARAMIKO_LOADED, *args],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout, result.stderr.strip().splitlines()[-1]


def test_later_commands_go_through_the_shared_connection(
    shared_cli: CLI, box: str, job_context: Path, runtime_dir: Path
) -> None:
    first = shared_cli("executors", "run", box, str(job_context), "-q", "--", "true")
    assert first.returncode == 0, first.stderr.decode()
    _wait_for(lambda: _answering(runtime_dir), "the shared connection")
    sock = _sockets(runtime_dir)[0]
    assert sock.stat().st_mode & 0o777 == 0o600
    assert (runtime_dir / "radops").stat().st_mode & 0o777 == 0o700

    # A job with an env value (sent on stdin), stdout, stderr and an exit status.
    out, marker = _in_process(
        shared_cli,
        *("executors", "run", box, str(job_context), "-q", "--env", "SECRET=s3 cr'et"),
        *("--", "sh", "-c", 'echo "out $SECRET"; echo err >&2; exit 3'),
    )
    assert marker == "PARAMIKO=False CODE=0"
    job_id = out.strip()
    _wait_for(
        lambda: (
            json.loads(shared_cli("executors", "jobs", box, "--json").stdout)[0]["status"]
            == "exited"
        ),
        "the job to end",
    )
    logs = shared_cli("executors", "logs", box, job_id)
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, b"out s3 cr'et\n", b"err\n")
    listed = json.loads(shared_cli("executors", "jobs", box, "--json").stdout)
    assert next(j for j in listed if j["job_id"] == job_id)["exit_code"] == 3

    # Remote errors still come back as errors (their messages may resolve the host's name).
    _, marker = _in_process(shared_cli, "executors", "logs", box, "0123456789ab")
    assert marker.endswith("CODE=3")
    assert _sockets(runtime_dir) == [sock]  # one connection served all of them


def _start_server(cli: CLI, box: str, runtime: Path) -> int:
    """One command to `box` (it connects itself), then the pid of the shared connection it
    leaves behind, once that answers; it lives 60 s idle."""
    cli.env["RADOPS_SSH_PERSIST"] = "60"
    assert cli("executors", "jobs", box).returncode == 0
    _wait_for(lambda: len(_servers(runtime)) == 1, "the shared connection")
    _wait_for(lambda: _answering(runtime), "its socket")
    (pid,) = _servers(runtime)
    return pid


def test_a_dead_shared_connection_is_replaced_and_no_command_fails(
    shared_cli: CLI, box: str, job_context: Path, runtime_dir: Path
) -> None:
    dead = _start_server(shared_cli, box, runtime_dir)
    os.kill(dead, signal.SIGKILL)
    _wait_for(lambda: dead not in _servers(runtime_dir), "the server to die")
    assert len(_sockets(runtime_dir)) == 1  # left behind: a stale socket

    result = shared_cli("executors", "run", box, str(job_context), "-q", "--", "true")
    assert result.returncode == 0, result.stderr.decode()
    _wait_for(lambda: len(_servers(runtime_dir)) == 1, "a new shared connection")
    (new,) = _servers(runtime_dir)
    assert new != dead
    _wait_for(lambda: _answering(runtime_dir), "it to answer")
    _, marker = _in_process(shared_cli, "executors", "jobs", box)
    assert marker == "PARAMIKO=False CODE=0"
    os.kill(new, signal.SIGTERM)


def test_a_stopped_server_that_never_took_the_command_is_passed_by(
    shared_cli: CLI, box: str, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = _start_server(shared_cli, box, runtime_dir)
    for key in ("HOME", "RADOPS_CONFIG_DIR", "XDG_RUNTIME_DIR", "RADOPS_SSH_PERSIST"):
        monkeypatch.setenv(key, shared_cli.env[key])
    monkeypatch.setattr(mux_sockets, "SOCKET_TIMEOUT_S", 1.0)
    os.kill(stopped, signal.SIGSTOP)
    try:
        spec = ExecutorStore().load().executors[box]
        with open_executor(spec) as executor:
            # It never said it took the request, so nothing ran: radops connects itself.
            assert isinstance(executor.jobs(), list)
            assert executor.conn.direct.connected  # type: ignore[attr-defined]
    finally:
        os.kill(stopped, signal.SIGCONT)
        os.kill(stopped, signal.SIGTERM)


def test_ctrl_c_on_logs_follow_frees_the_shared_connection(
    shared_cli: CLI, box: str, job_context: Path, runtime_dir: Path
) -> None:
    server = _start_server(shared_cli, box, runtime_dir)
    shared_cli.env["RADOPS_SSH_PERSIST"] = "60"
    started = shared_cli(
        "executors", "run", box, str(job_context), "-q", "--", "sh", "-c", "echo ready; sleep 300"
    )
    assert started.returncode == 0, started.stderr.decode()
    job_id = started.stdout.decode().strip()
    follow = shared_cli.popen("executors", "logs", box, job_id, "--follow")
    assert follow.stdout is not None
    assert follow.stdout.readline() == b"ready\n"
    follow.send_signal(signal.SIGINT)
    assert follow.wait(timeout=60) == 130
    # The relay ended with its client (the job prints nothing more, so nothing else would
    # end it): asked to retire, the server ends at once, where a relay would keep it alive.
    mux_client.retire(_sockets(runtime_dir)[0])
    _wait_for(lambda: server not in _servers(runtime_dir), "the server to end")
    assert shared_cli("executors", "stop", box, job_id, "--timeout", "0").returncode == 0


def test_check_replaces_the_shared_connection_with_a_fresh_login(
    shared_cli: CLI, box: str, runtime_dir: Path
) -> None:
    old = _start_server(shared_cli, box, runtime_dir)
    checked = shared_cli("executors", "check", box)
    assert checked.returncode == 0, checked.stderr.decode()
    _wait_for(lambda: old not in _servers(runtime_dir), "the old shared connection to end")
    _wait_for(lambda: _answering(runtime_dir), "a new one")
    assert len(_servers(runtime_dir)) == 1


def test_a_host_key_removed_since_is_not_used_through_the_shared_connection(
    shared_cli: CLI, box: str, runtime_dir: Path
) -> None:
    server = _start_server(shared_cli, box, runtime_dir)
    (shared_cli.home / ".ssh" / "known_hosts").write_text("")  # as after `ssh-keygen -R`
    result = shared_cli("executors", "jobs", box)
    assert result.returncode == 7, result.stderr.decode()  # the key is unknown again
    assert "unknown host key" in result.stderr.decode()
    _wait_for(lambda: server not in _servers(runtime_dir), "the shared connection to retire")


def test_an_idle_shared_connection_ends_itself(
    shared_cli: CLI, box: str, runtime_dir: Path
) -> None:
    shared_cli.env["RADOPS_SSH_PERSIST"] = "1"
    assert shared_cli("executors", "jobs", box).returncode == 0
    _wait_for(lambda: len(_sockets(runtime_dir)) == 1, "the shared connection's socket")
    _wait_for(lambda: not _servers(runtime_dir) and not _sockets(runtime_dir), "it to end")


def test_an_empty_persist_variable_means_the_default(
    shared_cli: CLI, box: str, runtime_dir: Path
) -> None:
    shared_cli.env["RADOPS_SSH_PERSIST"] = ""  # empty: not set, like every radops variable
    assert shared_cli("executors", "jobs", box).returncode == 0
    _wait_for(lambda: _answering(runtime_dir), "the shared connection")
    for pid in _servers(runtime_dir):
        os.kill(pid, signal.SIGTERM)


def test_persist_zero_shares_nothing(cli: CLI, box: str, runtime_dir: Path) -> None:
    cli.env.update(XDG_RUNTIME_DIR=str(runtime_dir), RADOPS_SSH_PERSIST="0")
    assert cli("executors", "jobs", box).returncode == 0
    time.sleep(2)
    assert not _servers(runtime_dir) and not _sockets(runtime_dir)


def test_ssh_persist_setting_is_checked(cli: CLI) -> None:
    del cli.env["RADOPS_SSH_PERSIST"]  # the environment would win over the file
    for value in ("soon", "1.5", "²", "604801"):
        bad = cli("config", "set", "ssh_persist", value)
        assert bad.returncode == 2, value
        assert bad.stderr.decode().startswith(f"radops: error: invalid ssh_persist {value!r}")
    assert cli("config", "set", "ssh_persist", "60").returncode == 0
    shown = json.loads(cli("config", "show", "--json").stdout)
    assert shown["ssh_persist"] == "60"


def test_a_socket_directory_others_can_enter_is_not_used(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    (runtime_dir / "radops").mkdir(mode=0o755)
    (runtime_dir / "radops").chmod(0o755)
    assert socket_dir() is None
    (runtime_dir / "radops").chmod(0o700)
    assert socket_dir() == runtime_dir / "radops"


@pytest.fixture(scope="class")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    runtime = Path(tempfile.mkdtemp(prefix="rx", dir="/tmp"))
    env = {
        "XDG_RUNTIME_DIR": str(runtime),
        "RADOPS_SSH_PERSIST": "120",
        # One config (known_hosts) and HOME for the class, so every test shares a socket.
        "RADOPS_CONFIG_DIR": str(tmp_path_factory.mktemp("shared-config")),
        "HOME": str(tmp_path_factory.mktemp("shared-home")),
    }
    yield env
    for pid in _servers(runtime):
        os.kill(pid, signal.SIGTERM)
    shutil.rmtree(runtime, ignore_errors=True)


class TestSSHExecutorThroughASharedConnection(test_ssh_contract.TestSSHExecutor):
    """The whole executor contract again, each command through the shared connection."""

    @pytest.fixture
    def executor(
        self,
        remote: rig.RemoteHost,
        docker_client: Any,
        shared_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[Executor]:
        for key, value in shared_env.items():
            monkeypatch.setenv(key, value)
        spec = test_ssh_contract.contract_spec(remote)
        runtime = Path(shared_env["XDG_RUNTIME_DIR"])
        if not _sockets(runtime):  # the first test: connect directly, start the shared one
            with open_executor(spec, ConnectOptions(trust_new_host_key=True)) as executor:
                executor.connect()
            _wait_for(lambda: _answering(runtime), "the shared connection")
        with open_executor(spec) as executor:  # no registry: images go over SSH
            executor.connect()
            assert executor.conn._shared_live is True  # type: ignore[attr-defined]
            yield executor
