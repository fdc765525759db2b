"""The shared connection trusts no other local user: not their XDG_RUNTIME_DIR, not their server.

Root running radops with another user's XDG_RUNTIME_DIR (kept by `su` without `-`, `sudo -E`)
must neither use that folder nor send a command (docker argv, `-e` secrets) to a server that
user runs. A real second local user, a real server process of theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from radops.ssh.mux import client as mux_client
from radops.ssh.mux.sockets import socket_dir
from tests import rig
from tests.ssh.conftest import CLI
from tests.ssh.test_ssh_shared_connection import _servers, _wait_for

# Another user's fake server: it accepts, writes what it receives to a file, and answers as if
# it ran the command ("taken", "started", exit 0), as the reviewed attack did.
FAKE_SERVER = r"""
import socket, struct, sys
path, log = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    conn.settimeout(3)
    got = b""
    try:
        got = conn.recv(65536)
        for kind, payload in ((b"A", b""), (b"S", b""), (b"X", b"0")):
            conn.sendall(struct.pack(">BI", kind[0], len(payload)) + payload)
    except OSError:
        pass
    with open(log, "ab") as f:
        f.write(got)
    conn.close()
"""


@pytest.fixture(scope="module")
def other_uid() -> int:
    return rig.ensure_user(rig.OTHER_USER)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder under /tmp that every user can reach (pytest's own tmp is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as(uid: int, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.root  # adds a user and gives it a folder
def test_an_xdg_runtime_dir_of_another_user_is_not_used(
    other_uid: int, shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = shared_tmp / "run-other"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, other_uid, other_uid)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(theirs))
    monkeypatch.setenv("TMPDIR", str(shared_tmp))
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        assert socket_dir() == shared_tmp / f"radops-{os.getuid()}"
    finally:
        tempfile.tempdir = None
    assert not (theirs / "radops").exists()


def test_an_xdg_runtime_dir_others_can_enter_is_not_used(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = shared_tmp / "run-loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(loose))
    monkeypatch.setenv("TMPDIR", str(shared_tmp))
    tempfile.tempdir = None
    try:
        assert socket_dir() == shared_tmp / f"radops-{os.getuid()}"
    finally:
        tempfile.tempdir = None


@pytest.mark.root  # adds a user and runs a server as it
def test_a_server_another_user_runs_is_never_sent_a_command(
    other_uid: int, shared_tmp: Path
) -> None:
    sock, log = shared_tmp / "s.sock", shared_tmp / "received"
    server = _as(other_uid, "/usr/bin/python3", "-c", FAKE_SERVER, str(sock), str(log))
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        assert sock.stat().st_uid == other_uid
        argv = ["/usr/bin/docker", "run", "--env-file", "/dev/stdin", "img"]
        with pytest.raises(mux_client.MuxUnavailable, match="not this user's"):
            mux_client.MuxCommand(sock, argv, "box")
        assert not mux_client.probe(sock)
        mux_client.retire(sock)
        time.sleep(0.5)  # anything sent would be in the log by now
        assert not log.exists() or log.read_bytes() == b""
    finally:
        server.kill()
        server.wait(timeout=10)


def test_the_cli_keeps_its_shared_connection_out_of_another_users_folder(
    cli: CLI, box: str, other_uid: int, shared_tmp: Path
) -> None:
    theirs = shared_tmp / "run-other"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, other_uid, other_uid)
    ours = shared_tmp / "tmp"
    ours.mkdir(mode=0o700)
    cli.env.update(XDG_RUNTIME_DIR=str(theirs), TMPDIR=str(ours), RADOPS_SSH_PERSIST="3")
    try:
        first = cli("executors", "jobs", box)
        assert first.returncode == 0, first.stderr.decode()
        fallback = ours / f"radops-{os.getuid()}"
        _wait_for(lambda: _answering_in(fallback), "the shared connection in the fallback folder")
        assert not (theirs / "radops").exists()
        again = cli("executors", "jobs", box)
        assert again.returncode == 0, again.stderr.decode()
    finally:
        for pid in _servers(theirs):
            os.kill(pid, 9)


def _answering_in(folder: Path) -> bool:
    return any(mux_client.probe(sock) for sock in folder.glob("*.sock"))
