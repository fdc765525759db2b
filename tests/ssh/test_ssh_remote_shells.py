"""Every argument reaches the remote program exactly, whatever the user's login shell.

sshd hands the command line to the login shell; with fish (not POSIX), shell quoting alone
let an argument end its quotes and run a command of its own. Real sshd, real fish login.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from radops.ssh.config import SSHTarget
from radops.ssh.remote import SSHConnection
from tests import rig
from tests.cli_process import describe
from tests.ssh.conftest import CLI


def _hostile(marker: Path) -> list[str]:
    """Arguments each of which runs `touch MARKER` if any shell interprets it."""
    m = str(marker)
    return [
        f"\\'A'; touch {m}; #",  # the reviewed fish escape: \' inside single quotes
        f"$(touch {m})",
        f"`touch {m}`",
        f"'; touch {m}; '",
        f'"; touch {m}; "',
        f"a\ntouch {m}",
        f"; touch {m}",
        f"| touch {m}",
        f"(touch {m})",  # fish command substitution
        "\\\\", "'", '"', "", "--", "*", "~", "{a,b}", "$HOME", "%s", "!x", "é ☃",
    ]  # fmt: skip


def _connection(remote: rig.RemoteHost, user: str, tmp_path: Path) -> SSHConnection:
    keys = [str(remote.client_key)]
    target = SSHTarget("rig", "127.0.0.1", remote.ssh_port, user, keys)
    return SSHConnection(target, tmp_path / "known_hosts", trust_new_host_key=True)


@pytest.fixture
def marker() -> Iterator[Path]:
    path = Path("/tmp") / f"radops-injected-{secrets.token_hex(4)}"  # writable by every user
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(params=["root", rig.FISH_USER])
def conn(
    request: pytest.FixtureRequest, remote: rig.RemoteHost, tmp_path: Path
) -> Iterator[SSHConnection]:
    target = SSHTarget("rig", "127.0.0.1", remote.ssh_port, request.param, [str(remote.client_key)])
    connection = SSHConnection(target, tmp_path / "known_hosts", trust_new_host_key=True)
    yield connection
    connection.close()


def test_login_shells_differ_for_real(remote: rig.RemoteHost, tmp_path: Path) -> None:
    # The premise: the fish user's commands really go through fish.
    with_fish = _connection(remote, rig.FISH_USER, tmp_path)
    try:
        status, out, err = with_fish.run(["sh", "-c", "cat /proc/$PPID/comm"])
    finally:
        with_fish.close()
    assert status == 0, err
    assert out.decode().strip() == "fish"


def test_every_argument_arrives_unchanged(conn: SSHConnection, marker: Path) -> None:
    args = _hostile(marker)
    status, out, err = conn.run(["printf", "<%s>\\n", *args])
    assert status == 0, err
    assert out.decode() == "".join(f"<{a}>\n" for a in args)
    assert not marker.exists()


def test_stdin_bytes_and_the_exit_status_are_the_commands_own(conn: SSHConnection) -> None:
    data = bytes(range(256)) * 64
    assert conn.run(["sh", "-c", "cat; exit 3"], stdin=data) == (3, data, b"")


def test_add_as_a_fish_user_reaches_docker_through_fish(
    cli: CLI, remote: rig.RemoteHost, marker: Path
) -> None:
    # The fish user may not use the rig's engine: the error must be docker's own, classified,
    # which shows the docker argv went through fish unchanged (and a hostile name did not run).
    result = cli(
        "executors", "add", "--name", "fishbox", "--hostname", "127.0.0.1",
        "--port", str(remote.ssh_port), "--username", rig.FISH_USER,
        "--identity-file", str(remote.client_key), "--accept-host-key",
        "--docker-path", "/usr/bin/docker",
    )  # fmt: skip
    assert result.returncode == 1, describe(result)
    assert f"permission denied on the Docker socket on {rig.FISH_USER}@127.0.0.1" in (
        result.stderr.decode()
    )
    assert not marker.exists()
