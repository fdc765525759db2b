"""The test rig's real parts: a second Docker engine playing a remote machine, reachable only
through a real sshd on loopback, and a real registry (Debian's docker-registry).

Each part is started once per test session and stopped at its end. A part that cannot start
raises RigError, so the tests that need it fail: a broken rig is never a skipped test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DOCKER = shutil.which("docker", path="/usr/bin") or "docker"


class RigError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RigError(f"{what} did not come up within {timeout:.0f}s")


def _tool(name: str, *candidates: str) -> str:
    for path in (*candidates, shutil.which(name)):
        if path and os.path.exists(path):
            return path
    raise RigError(f"{name} is not installed; run scripts/bootstrap.sh")


@dataclass
class RemoteHost:
    """An SSH host (this machine, on a loopback port) whose docker is the rig's second engine."""

    root: Path
    ssh_port: int
    registry: str
    client_key: Path
    host_key_pub: Path
    docker_host: str
    processes: list[subprocess.Popen[bytes]]
    # A second registry that wants a password (AUTH_USER / AUTH_PASSWORD).
    auth_registry: str = ""
    # The remote user's docker config folder (where `docker login` there stores credentials).
    docker_config: Path | None = None

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run docker against the remote engine directly (for assertions, not via radops)."""
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=60)

    def docker_bytes(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        return subprocess.run([DOCKER, *args], env=env, capture_output=True, timeout=60)

    def restart_engine(self) -> None:
        """Stop the rig's dockerd (its containers stop with it, as when a machine goes down) and
        start it again on the same folders: jobs with a restart policy come back."""
        engine = self.processes[0]  # remote_host starts the engine first
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(timeout=90)
        dockerd = _tool("dockerd", "/usr/sbin/dockerd", "/usr/bin/dockerd")
        self.processes[0] = start_engine_process(dockerd, self.root / "engine", self.docker_host)

    def known_hosts_line(self) -> str:
        key_type, key = self.host_key_pub.read_text().split()[:2]
        return f"[127.0.0.1]:{self.ssh_port} {key_type} {key}\n"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


RIG_BRIDGE = "radopsrig0"
# Private /24s for the rig's bridge, the first that no route of this machine overlaps is used.
# (TEST-NET-1, used before, is this very machine's eth0 network: the host then routed to the
# rig's containers through eth0, and `forward` could not reach them.)
RIG_BRIDGE_CANDIDATES = ("10.213.37.1/24", "172.30.213.1/24", "192.168.213.1/24")


def _bridge_address(
    ip: str, name: str = RIG_BRIDGE, candidates: tuple[str, ...] = RIG_BRIDGE_CANDIDATES
) -> str:
    import ipaddress

    routes = subprocess.run([ip, "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout  # fmt: skip
    used = []
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        if "/" in first and name not in line.split():
            used.append(ipaddress.ip_network(first, strict=False))
    for candidate in candidates:
        network = ipaddress.ip_interface(candidate).network
        if not any(network.overlaps(u) for u in used):
            return candidate
    raise RigError(f"every candidate network for the bridge {name} is in use: {used}")


def ensure_bridge(
    name: str = RIG_BRIDGE, candidates: tuple[str, ...] = RIG_BRIDGE_CANDIDATES
) -> str:
    """A test engine's own bridge, on a network no other interface here uses (created once
    and left in place for the next session; made again if its address collides)."""
    ip = _tool("ip", "/usr/sbin/ip", "/sbin/ip")
    address = _bridge_address(ip, name, candidates)
    shown = subprocess.run([ip, "-4", "addr", "show", name], capture_output=True, text=True)
    if shown.returncode == 0 and f"inet {address} " in shown.stdout:
        return name
    if shown.returncode == 0:  # an older rig's bridge, on another network: replace it
        subprocess.run([ip, "link", "del", name], capture_output=True)
    for argv in (
        [ip, "link", "add", "name", name, "type", "bridge"],
        [ip, "addr", "add", address, "dev", name],
        [ip, "link", "set", name, "up"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise RigError(f"cannot create the bridge {name}: {result.stderr.strip()}")
    return name


GPU_STANDIN = Path(os.environ.get("RADOPS_GPU_STANDIN", "/opt/radops/gpu-standin"))
# The stand-in for a four-GPU box (scripts/bootstrap.sh installs it from tests/gpu_standin/).
STANDIN_GPUS = 4


def standin_path(base: str | None = None) -> str:
    """PATH with the GPU stand-ins first: dockerd then registers its `nvidia` device driver and
    sets NVIDIA_VISIBLE_DEVICES as on a GPU machine; `nvidia-smi` answers for four GPUs."""
    for name in ("nvidia-container-runtime-hook", "nvidia-smi"):
        if not os.access(GPU_STANDIN / name, os.X_OK):
            raise RigError(f"no GPU stand-in {GPU_STANDIN / name}; run scripts/bootstrap.sh")
    return f"{GPU_STANDIN}:{base or os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"


def _start_engine(root: Path) -> tuple[str, subprocess.Popen[bytes]]:
    dockerd = _tool("dockerd", "/usr/sbin/dockerd", "/usr/bin/dockerd")
    engine = root / "engine"
    engine.mkdir(parents=True, exist_ok=True)
    host = f"unix://{engine / 'docker.sock'}"
    return host, start_engine_process(dockerd, engine, host)


def engine_argv(dockerd: str, engine: Path, host: str) -> list[str]:
    return [
        dockerd,
        "--host", host,
        "--data-root", str(engine / "data"),
        "--exec-root", str(engine / "exec"),
        "--pidfile", str(engine / "docker.pid"),
        # Not --bridge=none: a dockerd started with it deletes the host's docker0, which
        # breaks the local engine. The rig's engine gets a bridge of its own instead.
        f"--bridge={ensure_bridge()}",
        "--ip-forward=false",
        "--iptables=false",
    ]  # fmt: skip


def start_engine_process(dockerd: str, engine: Path, host: str) -> subprocess.Popen[bytes]:
    """The rig's dockerd (again, after a restart: same folders, same containers), with the GPU
    stand-ins on its PATH; returns once it answers."""
    env = {**os.environ, "PATH": standin_path()}
    proc = _spawn(engine_argv(dockerd, engine, host), engine / "dockerd.log", env)

    def answers() -> bool:
        if proc.poll() is not None:
            raise RigError(f"remote dockerd exited; see {engine / 'dockerd.log'}")
        env = {**os.environ, "DOCKER_HOST": host}
        return subprocess.run([DOCKER, "version"], env=env, capture_output=True).returncode == 0

    wait_for(answers, "the remote Docker engine")
    return proc


AUTH_USER = "rig-user"
AUTH_PASSWORD = "rig-s3cret-Pa55"


def _start_registry(root: Path, auth: bool = False) -> tuple[str, subprocess.Popen[bytes]]:
    registry = _tool("docker-registry", "/usr/bin/docker-registry")
    port = free_port()
    folder = root / ("auth-registry" if auth else "registry")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    auth_section = ""
    if auth:
        import bcrypt

        hashed = bcrypt.hashpw(AUTH_PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (folder / "htpasswd").write_text(f"{AUTH_USER}:{hashed}\n")
        auth_section = (
            f"auth:\n  htpasswd:\n    realm: radops-rig\n    path: {folder / 'htpasswd'}\n"
        )
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth_section
    )
    proc = _spawn([registry, "serve", str(config)], folder / "registry.log")

    def answers() -> bool:
        if proc.poll() is not None:
            raise RigError(f"docker-registry exited; see {folder / 'registry.log'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    wait_for(answers, "the registry")
    return f"127.0.0.1:{port}", proc


NO_DOCKER_USER = "radops-rig-nodocker"  # a user the remote engine's socket refuses
CLIENT_KEY_TYPES = ("ed25519", "ecdsa", "rsa")


def keygen(path: Path, key_type: str = "ed25519") -> Path:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "radops-rig", "-f", str(path)],
            check=True,
        )
    return path


FISH_USER = "radops-rig-fish"  # a user whose login shell is fish (not POSIX)
OTHER_USER = "radops-rig-other"  # another local user, for what must not trust them
GPU_USER = "radops-rig-gpu"  # a second user of the remote's engine (docker group): GPU sharing


def ensure_user(name: str, shell: str = "/bin/sh", home: str = "/nonexistent") -> int:
    """A local system user that sshd lets log in with a key; returns its uid."""
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--shell", shell, "--home-dir", home, name], check=True
        )
    # (capture_output: usermod says "no changes" when there are none)
    subprocess.run(
        ["usermod", "--shell", shell, "--home", home, name], check=True, capture_output=True
    )
    # "*" rather than useradd's "!": no password, but not a locked account sshd would refuse.
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    if home != "/nonexistent":
        Path(home).mkdir(mode=0o700, exist_ok=True)
        shutil.chown(home, name, name)
    return int(subprocess.run(["id", "-u", name], capture_output=True, check=True).stdout)


def _ensure_no_docker_user() -> None:
    ensure_user(NO_DOCKER_USER)
    fish = shutil.which("fish")
    if fish is None:
        raise RigError("fish is not installed (scripts/bootstrap.sh installs it)")
    ensure_user(FISH_USER, fish, f"/var/tmp/{FISH_USER}")
    ensure_user(GPU_USER)
    subprocess.run(["usermod", "-a", "-G", "docker", GPU_USER], check=True, capture_output=True)


def _world_readable_keys(public: list[str]) -> Path:
    """An authorized_keys file every user can read: sshd reads it as the user logging in."""
    shared = Path(tempfile.mkdtemp(prefix="radops-rig-keys-"))
    shared.chmod(0o755)
    authorized = shared / "authorized_keys"
    authorized.write_text("".join(public))
    authorized.chmod(0o644)
    return authorized


def _run_sshd(
    folder: Path,
    listen: list[tuple[str, int]],
    authorized: Path,
    docker_host: str,
    docker_config: Path,
    extra_env: str = "",
    gpus: bool = False,
    forwarding: bool = True,
) -> subprocess.Popen[bytes]:
    """sshd on `listen`; `forwarding=False`: it refuses port forwards (AllowTcpForwarding no)."""
    sshd = _tool("sshd", "/usr/sbin/sshd")
    if gpus:  # a four-GPU box: the stand-in nvidia-smi first on every session's PATH
        extra_env = f"PATH={standin_path('/usr/local/bin:/usr/bin:/bin')} {extra_env}"
    keygen(folder / "host_key")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    config = folder / "sshd_config"
    config.write_text(
        "".join(f"ListenAddress {host}:{port}\n" for host, port in listen)
        + f"HostKey {folder / 'host_key'}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        f"AllowTcpForwarding {'yes' if forwarding else 'no'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        # Every SSH session's docker talks to the rig's second engine, as on a real remote host.
        # DOCKER_CONFIG keeps a `docker login` there out of this machine's own ~/.docker.
        f"SetEnv DOCKER_HOST={docker_host} DOCKER_CONFIG={docker_config} {extra_env}\n"
    )
    proc = _spawn([sshd, "-D", "-e", "-f", str(config)], folder / "sshd.log")

    def answers() -> bool:
        # Its own log must say it listens: a connection alone could reach someone else's sshd
        # on the same address (another test session's), and every login would then fail.
        if proc.poll() is not None:
            raise RigError(f"sshd exited; see {folder / 'sshd.log'}")
        log = (folder / "sshd.log").read_text(errors="replace")
        return all(f"Server listening on {host} port {port}." in log for host, port in listen)

    wait_for(answers, "sshd")
    return proc


def _start_sshd(
    root: Path, docker_host: str, docker_config: Path
) -> tuple[int, Path, Path, subprocess.Popen[bytes]]:
    folder = root / "ssh"
    folder.mkdir(parents=True, exist_ok=True)
    keygen(folder / "client_key")
    # Every client key type OpenSSH users have, all accepted for root and the no-docker user.
    others = [keygen(folder / f"client_key_{t}", t) for t in CLIENT_KEY_TYPES[1:]]
    public = [Path(f"{k}.pub").read_text() for k in [folder / "client_key", *others]]
    authorized = _world_readable_keys(public)
    _ensure_no_docker_user()
    port = free_port()
    proc = _run_sshd(
        folder, [("127.0.0.1", port)], authorized, docker_host, docker_config, gpus=True
    )
    return port, folder / "client_key", folder / "host_key.pub", proc


@dataclass
class CloudVMs:
    """What the fake Compute Engine hands out as VMs: sshd on port 22 of other loopback
    addresses, whose authorized keys are exactly what the VMs' `ssh-keys` metadata says."""

    ips: list[str]
    authorized_keys: Path
    host_key_pub: Path
    process: subprocess.Popen[bytes]

    def set_ssh_keys(self, instance: str, value: str) -> None:
        """The fake's `on_ssh_keys` hook: `user:key` lines, as the GCE guest agent reads them."""
        keys = [line.split(":", 1)[1] for line in value.splitlines() if ":" in line]
        self.authorized_keys.write_text("".join(k.strip() + "\n" for k in keys))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=20)


@contextlib.contextmanager
def cloud_vms(root: Path, remote: RemoteHost, ips: list[str]) -> Iterator[CloudVMs]:
    folder = root / "vm-ssh"
    folder.mkdir(parents=True, exist_ok=True)
    authorized = _world_readable_keys([])
    assert remote.docker_config is not None
    listen = [(ip, 22) for ip in ips]
    proc = _run_sshd(
        folder, listen, authorized, remote.docker_host, remote.docker_config, gpus=True
    )
    vms = CloudVMs(ips, authorized, folder / "host_key.pub", proc)
    try:
        yield vms
    finally:
        vms.stop()


RIG_LOCK = Path(tempfile.gettempdir()) / "radops-test-rig.lock"
RIG_LOCK_WAIT_S = 2400  # a benchmark run or another session may hold it for long


@contextlib.contextmanager
def machine_lock(
    path: Path = RIG_LOCK, wait_s: float = RIG_LOCK_WAIT_S, what: str = "rig"
) -> Iterator[None]:
    """Hold the machine's one test rig (by default the Docker rig: a second session's engine,
    sshd and fixed addresses, the GCP VMs' 127.0.0.22-23:22, would collide with this one's).
    Waits for the other session to finish (up to `wait_s`), then fails saying so."""
    with path.open("a") as lock:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RigError(f"another test session holds the {what} ({path})") from None
                if not told:
                    print(f"waiting for another test session's {what} ({path})", file=sys.stderr)
                    told = True
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def remote_host(root: Path) -> Iterator[RemoteHost]:
    """Start the remote engine, the registry and sshd; stop them all afterwards."""
    processes: list[subprocess.Popen[bytes]] = []
    host: RemoteHost | None = None
    try:
        docker_host, engine = _start_engine(root)
        processes.append(engine)
        registry, reg = _start_registry(root)
        processes.append(reg)
        auth_registry, auth_reg = _start_registry(root, auth=True)
        processes.append(auth_reg)
        docker_config = root / "remote-docker-config"
        docker_config.mkdir(mode=0o700, exist_ok=True)
        port, client_key, host_key_pub, sshd = _start_sshd(root, docker_host, docker_config)
        processes.append(sshd)
        host = RemoteHost(
            root, port, registry, client_key, host_key_pub, docker_host, processes,
            auth_registry, docker_config,
        )  # fmt: skip
        yield host
    finally:
        if host is not None:
            host.stop()
        else:
            RemoteHost(root, 0, "", root, root, "", processes).stop()
