"""A Docker engine with the containerd image store, for the tests of what radops does when an
engine saves or loads images as OCI layouts (Docker 24+ with the store enabled, the default in
recent releases). Debian 12's engine is 20.10, which has no such store: scripts/bootstrap.sh
unpacks Debian 13's dockerd and containerd into ENGINE_DIR, and this starts them with their
own containerd, data, sockets and bridge (runc and tini are this machine's, from docker.io)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.rig import DOCKER, RigError, _spawn, ensure_bridge, wait_for

ENGINE_DIR = Path(os.environ.get("RADOPS_CONTAINERD_ENGINE", "/opt/radops/containerd-engine"))
BRIDGE = "radopscd0"
BRIDGE_CANDIDATES = ("10.213.38.1/24", "172.30.214.1/24", "192.168.214.1/24")


def _binary(relative: str) -> Path:
    path = ENGINE_DIR / relative
    if not os.access(path, os.X_OK):
        raise RigError(
            f"{path} is missing: the containerd-store engine is not unpacked "
            "(run ./scripts/bootstrap.sh)"
        )
    return path


@contextlib.contextmanager
def containerd_store_engine(root: Path, images: tuple[str, ...] = ()) -> Iterator[str]:
    """Start the engine under `root`, give it `images` from the local engine, yield its
    DOCKER_HOST; stop it afterwards."""
    containerd, dockerd = _binary("usr/bin/containerd"), _binary("usr/sbin/dockerd")
    root.mkdir(parents=True, exist_ok=True)
    config = root / "containerd.toml"
    config.write_text(
        f'version = 2\nroot = "{root / "ctd-root"}"\nstate = "{root / "ctd-state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{root / "containerd.sock"}"\n'
    )
    (root / "daemon.json").write_text('{"features": {"containerd-snapshotter": true}}\n')
    # The daemons find their shims and docker-init beside them.
    path = f"{ENGINE_DIR / 'usr/bin'}:{ENGINE_DIR / 'usr/sbin'}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    host = f"unix://{root / 'docker.sock'}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_spawn([str(containerd), "--config", str(config)], root / "ctd.log", env))
        wait_for(lambda: (root / "containerd.sock").exists(), "containerd")
        argv = [
            str(dockerd),
            "--config-file", str(root / "daemon.json"),
            "--containerd", str(root / "containerd.sock"),
            "--host", host,
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            f"--bridge={ensure_bridge(BRIDGE, BRIDGE_CANDIDATES)}",
            "--ip-forward=false", "--iptables=false", "--ip6tables=false",
        ]  # fmt: skip
        processes.append(_spawn(argv, root / "dockerd.log", env))

        def answers() -> bool:
            if any(p.poll() is not None for p in processes):
                raise RigError(f"the containerd-store engine exited; see {root}/*.log")
            return docker(host, "version").returncode == 0

        wait_for(answers, "the containerd-store engine", timeout=60)
        store = docker(host, "info", "--format", "{{json .DriverStatus}}").stdout
        if b"io.containerd.snapshotter" not in store:
            raise RigError(f"the engine at {host} does not use the containerd store: {store!r}")
        for image in images:
            saved = subprocess.run([DOCKER, "save", image], capture_output=True, timeout=120)
            loaded = docker(host, "load", stdin=saved.stdout)
            if saved.returncode or loaded.returncode:
                raise RigError(f"cannot give {image} to the engine: {loaded.stderr!r}")
        yield host
    finally:
        for proc in reversed(processes):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def docker(host: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The docker CLI against the engine at `host`."""
    env = {**os.environ, "DOCKER_HOST": host}
    return subprocess.run(
        [DOCKER, *args], input=stdin, env=env, capture_output=True, timeout=120, check=False
    )
