"""SSH as OpenSSH users expect it: key types, ssh-agent, ProxyJump, refusals that say why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.ssh.conftest import CLI


def _write_config(cli: CLI, body: str) -> None:
    (cli.home / ".ssh" / "config").write_text(body)


@pytest.mark.parametrize("key_type", rig.CLIENT_KEY_TYPES)
def test_each_key_type_logs_in(
    cli: CLI, trusted: None, remote: rig.RemoteHost, key_type: str
) -> None:
    key = remote.client_key if key_type == "ed25519" else Path(f"{remote.client_key}_{key_type}")
    _write_config(
        cli, f"Host rigbox\n  HostName 127.0.0.1\n  Port {remote.ssh_port}\n  User root\n"
    )
    result = cli(
        "executors", "add", "--name", f"k-{key_type}", "--hostname", "rigbox",
        "--identity-file", str(key), "--docker-path", "/usr/bin/docker", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["identity_file"] == str(key)


@pytest.fixture
def agent(tmp_path: Path, remote: rig.RemoteHost) -> Iterator[str]:
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        rig.wait_for(sock.exists, "ssh-agent", timeout=10)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(remote.client_key)], env=env, check=True)
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_ssh_agent_key_is_used(cli: CLI, trusted: None, remote: rig.RemoteHost, agent: str) -> None:
    _write_config(
        cli, f"Host rigbox\n  HostName 127.0.0.1\n  Port {remote.ssh_port}\n  User root\n"
    )
    cli.env["SSH_AUTH_SOCK"] = agent
    result = cli("executors", "add", "--name", "viaagent", "--hostname", "rigbox",
                 "--docker-path", "/usr/bin/docker")  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


def test_proxy_jump_through_a_bastion(cli: CLI, trusted: None, remote: rig.RemoteHost) -> None:
    # The rig's sshd is its own bastion: jump to it, then open a tunnel back to it.
    _write_config(
        cli,
        f"Host bastion\n  HostName 127.0.0.1\n  Port {remote.ssh_port}\n  User root\n"
        f"  IdentityFile {remote.client_key}\n"
        f"Host inner\n  HostName 127.0.0.1\n  Port {remote.ssh_port}\n  User root\n"
        f"  IdentityFile {remote.client_key}\n  ProxyJump bastion\n",
    )
    added = cli("executors", "add", "--name", "inner", "--hostname", "inner",
                "--docker-path", "/usr/bin/docker")  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    printed = cli("executors", "connect", "inner", "--print").stdout.decode().split()
    assert printed[-3:] == ["-J", "bastion", "root@127.0.0.1"]


def test_permission_denied_on_the_docker_socket(
    cli: CLI, trusted: None, remote: rig.RemoteHost
) -> None:
    result = cli(
        "executors", "add", "--name", "nope", "--hostname", "rigbox",
        "--username", rig.NO_DOCKER_USER, "--docker-path", "/usr/bin/docker",
    )  # fmt: skip
    assert result.returncode == 1
    err = result.stderr.decode()
    assert f"permission denied on the Docker socket on {rig.NO_DOCKER_USER}@127.0.0.1" in err
    assert "docker` group" in err


def test_unreachable_registry_is_a_clear_push_error(cli: CLI, box: str, job_context: Path) -> None:
    cli.env["RADOPS_REGISTRY"] = f"127.0.0.1:{rig.free_port()}"
    result = cli("executors", "run", box, str(job_context), "true")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert f"push to {cli.env['RADOPS_REGISTRY']} failed" in err and "Traceback" not in err
