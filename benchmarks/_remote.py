"""The test rig's loopback SSH host, shared by every remote benchmark of one run.

`get()` starts the rig (tests/rig.py: a second Docker engine reachable only through a real
sshd on a loopback port, and a real registry) on first use, registers it as the executor
`bench` in an isolated RADOPS_CONFIG_DIR and HOME, and writes an OpenSSH known_hosts file for
the baseline scripts. `close()` (called by run.py when the suite ends) removes what the
benchmarks left on the rig and stops it. Everything here is bounded by timeouts.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import rig  # noqa: E402  (the repo root has to be on sys.path first)

EXECUTOR = "bench"
BASE_IMAGE = "busybox:1.36"
TIMEOUT = 300


@dataclass
class Remote:
    """The started rig, with the environment and command lines the benchmarks use."""

    host: rig.RemoteHost
    tmp: Path
    env: dict[str, str]  # for radops: isolated HOME and RADOPS_CONFIG_DIR, RADOPS_REGISTRY
    known_hosts: Path

    @property
    def registry(self) -> str:
        return self.host.registry

    def ssh(self, *remote: str) -> list[str]:
        """`ssh ... root@127.0.0.1 REMOTE...` with OpenSSH: the rig's key, known_hosts, port."""
        return [
            "ssh",
            "-F", "/dev/null",  # no user ssh config: the same options on every machine
            "-p", str(self.host.ssh_port),
            "-i", str(self.host.client_key),
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "root@127.0.0.1",
            *remote,
        ]  # fmt: skip

    @property
    def ssh_sh(self) -> str:
        """The ssh command line for a shell script (remote command to be appended)."""
        return shlex.join(self.ssh())

    def radops(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "radops", *args]

    def docker(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """docker against the rig's engine directly (set-up and clean-up, never timed)."""
        env = {**os.environ, "DOCKER_HOST": self.host.docker_host}
        return subprocess.run(
            [rig.DOCKER, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def load_base_image(self) -> None:
        """Give the rig's engine busybox (no internet): docker save here | docker load there."""
        if self.docker("image", "inspect", BASE_IMAGE).returncode == 0:
            return
        env = {**os.environ, "DOCKER_HOST": self.host.docker_host}
        with subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE) as save:
            subprocess.run(
                [rig.DOCKER, "load", "--quiet"],
                stdin=save.stdout,
                env=env,
                capture_output=True,
                check=True,
                timeout=TIMEOUT,
            )
        if save.returncode != 0:
            raise RuntimeError(f"docker save {BASE_IMAGE} failed")


def remove_local_images(registry: str, folders: Iterable[str]) -> None:
    """Untag what radops made on this machine's engine for these build folders:
    `radops/<folder>:*` and `<registry>/radops/<folder>:*` (folder names chosen unique)."""
    repos = {f"{prefix}radops/{name}" for name in folders for prefix in ("", f"{registry}/")}
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    ).stdout.split()
    tags = [ref for ref in listed if ref.rpartition(":")[0] in repos]
    if tags:
        subprocess.run(["docker", "rmi", *tags], capture_output=True, timeout=TIMEOUT, check=False)


_stack: contextlib.ExitStack | None = None
_remote: Remote | None = None


def available() -> str | None:
    """Why the rig cannot start here, or None when it can."""
    for tool in ("docker", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    for path in ("/usr/sbin/sshd", "/usr/bin/docker-registry"):
        if not os.path.exists(path):
            return f"{path} is not installed (scripts/bootstrap.sh installs it)"
    if os.geteuid() != 0:
        return "the rig starts a second dockerd and sshd, which needs root"
    return None


def start() -> Remote | str:
    """The rig (see `get`), or why it cannot run here: the remote benchmarks then say so."""
    why = available()
    if why is not None:
        return why
    try:
        return get()
    except (rig.RigError, subprocess.SubprocessError, OSError) as e:
        return f"the test rig did not start: {e}"


def get() -> Remote:
    """The rig, started on first use and registered as executor `bench`."""
    global _stack, _remote
    if _remote is not None:
        return _remote
    stack = contextlib.ExitStack()
    try:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="radops-bench-rig-")))
        stack.enter_context(rig.machine_lock())  # a test session's rig would collide with it
        host = stack.enter_context(rig.remote_host(tmp / "rig"))
        home = tmp / "home"
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(host.known_hosts_line())
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("RADOPS_", "SSH_AUTH", "XDG_"))
        }
        # Shared SSH connections (radops' default, ssh_persist 300 s) get their own short
        # socket folder, so close() can end them.
        runtime = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rb", dir="/tmp")))
        env.update(
            HOME=str(home),
            RADOPS_CONFIG_DIR=str(tmp / "config"),
            RADOPS_REGISTRY=host.registry,
            XDG_RUNTIME_DIR=str(runtime),
        )
        stack.callback(end_shared_connections, runtime)
        remote = Remote(host, tmp, env, known_hosts)
        add_executor(remote, EXECUTOR, check=True)
        remote.load_base_image()
    except BaseException:
        stack.close()
        raise
    _stack, _remote = stack, remote
    return remote


def add_executor(remote: Remote, name: str, check: bool = False) -> None:
    """`radops executors add` for the rig host (with its checks, or `--no-check`)."""
    subprocess.run(
        remote.radops(
            "executors", "add",
            "--name", name,
            "--hostname", f"127.0.0.1:{remote.host.ssh_port}",
            "--username", "root",
            "--identity-file", str(remote.host.client_key),
            "--docker-path", "/usr/bin/docker",
            *(["--accept-host-key"] if check else ["--no-check"]),
        ),
        env=remote.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=120,
    )  # fmt: skip


def end_shared_connections(runtime: Path) -> None:
    """SIGTERM every `python -m radops.ssh.mux.server` serving a socket under `runtime`."""
    marker = f"XDG_RUNTIME_DIR={runtime}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"radops.ssh.mux.server" in cmdline and marker in environ:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGTERM)


def close() -> None:
    """Remove every container and image left on the rig's engine, then stop the rig."""
    global _stack, _remote
    if _stack is None:
        return
    try:
        if _remote is not None:
            _remote.docker("container", "prune", "--force")
            _remote.docker("image", "prune", "--all", "--force")
    finally:
        _stack.close()
        _stack, _remote = None, None
