"""Fixtures for SSH executor tests: the rig's remote host, an isolated HOME, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import rig

ARGS_SCRIPT = 'for a in "$@"; do printf "<%s>\\n" "$a"; done\n'


@dataclass
class CLI:
    env: dict[str, str]
    home: Path

    def __call__(
        self, *args: str, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [sys.executable, "-m", "radops", *args],
                env=self.env,
                input=input if input is not None else b"",
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:  # say what it was doing, not only that it hung
            raise AssertionError(
                f"radops {' '.join(args)} still running after {timeout}s; "
                f"stdout: {e.stdout!r}; stderr: {e.stderr!r}"
            ) from None

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "radops", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


@pytest.fixture
def ssh_home(tmp_path: Path, remote: rig.RemoteHost) -> Path:
    """A HOME whose ~/.ssh/config names the rig host `rigbox` (non-22 port, key, user)."""
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    (ssh / "config").write_text(
        "Host rigbox\n"
        "  HostName 127.0.0.1\n"
        f"  Port {remote.ssh_port}\n"
        "  User root\n"
        f"  IdentityFile {remote.client_key}\n"
    )
    return home


@pytest.fixture
def cli(tmp_path: Path, ssh_home: Path, remote: rig.RemoteHost) -> CLI:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADOPS_", "SSH_AUTH", "XDG_"))}
    env.update(
        HOME=str(ssh_home),
        RADOPS_CONFIG_DIR=str(tmp_path / "config"),
        RADOPS_SSH_PERSIST="0",  # tests that want shared connections say so
        RADOPS_REGISTRY=remote.registry,
        PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"),
    )
    return CLI(env, ssh_home)


@pytest.fixture
def trusted(ssh_home: Path, remote: rig.RemoteHost) -> None:
    """The rig's host key is in ~/.ssh/known_hosts, as after a first `ssh` by hand."""
    (ssh_home / ".ssh" / "known_hosts").write_text(remote.known_hosts_line())


@pytest.fixture
def box(cli: CLI, trusted: None) -> str:
    """A registered executor `box` for the rig host, through the ssh config alias."""
    result = cli(
        "executors",
        "add",
        "--name",
        "box",
        "--hostname",
        "rigbox",
        "--docker-path",
        "/usr/bin/docker",
    )
    assert result.returncode == 0, result.stderr.decode()
    return "box"


@pytest.fixture
def job_context(tmp_path: Path) -> Path:
    """A build context unique to this test (so its image is new to the remote engine)."""
    folder = tmp_path / f"job-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY . /job\n")
    (folder / "args.sh").write_text(ARGS_SCRIPT)
    (folder / "nonce").write_text(uuid.uuid4().hex)
    return folder
