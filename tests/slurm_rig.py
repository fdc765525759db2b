"""A real Slurm cluster on this machine, for the Slurm executor's tests.

munged with its own key and socket; slurmctld; two slurmd nodes with two fake GPUs each (GRES
`gpu` on dummy device nodes), the second in a network namespace on a bridge of the rig's own
(198.18.0.0/24); a login node (sshd on loopback whose sessions get SLURM_CONF); a registry that
both nodes reach (on loopback for this machine's Docker engine, and on the bridge address).
Compute nodes run containers with this machine's Docker engine or podman.

Started once per test session under a machine-wide lock of its own (the docker rig's lock is
another: both rigs may run at once), stopped at its end. A part that cannot start raises
RigError, so the tests that need it fail: a broken rig is never a skipped test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.rig import RigError, _run_sshd, _spawn, _tool, free_port, keygen, wait_for
from tests.rig import machine_lock as rig_lock

BRIDGE = "radopsslurm0"
NETNS = "radops-slurm"
VETH_HOST, VETH_NS = "radopsslurm1", "radopsslurm2"
NETWORK = ipaddress.ip_network("198.18.0.0/24")
HOST_ADDRESS = "198.18.0.1"  # this machine on the bridge: slurmctld, node1, the registry
NODE2_ADDRESS = "198.18.0.2"  # node2, in its own network namespace
NODES = ("node1", "node2")
GPUS_PER_NODE = 2
GPU_TYPE = "fake"  # GRES type: jobs ask `--gpus 2` or `--gpus fake:2`
PARTITION = "gpu"
LOCK = Path(tempfile.gettempdir()) / "radops-slurm-rig.lock"
LOCK_WAIT_S = 1200
# Seconds a finished job stays in squeue (no accounting here): long enough for a test to see
# the end state, short enough that a job dir's record is what `jobs` reads for older ones.
MIN_JOB_AGE_S = 20


@dataclass
class SlurmCluster:
    """The running rig: what tests need to reach it and to check on it behind radops' back."""

    root: Path
    conf: Path
    ssh_port: int
    client_key: Path
    host_key_pub: Path
    registry: str  # host:port on loopback (this machine's pushes, docker on the nodes)
    bridge_registry: str  # the same registry on the bridge address
    job_dir: Path  # the job folder the login node and both nodes share
    munge_socket: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def slurm(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A Slurm client command run here (for assertions and clean-up, not via radops)."""
        return subprocess.run(
            list(argv), env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def known_hosts_line(self) -> str:
        key_type, key = self.host_key_pub.read_text().split()[:2]
        return f"[127.0.0.1]:{self.ssh_port} {key_type} {key}\n"

    def stop_process(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def start_munge(self) -> None:
        self.processes["munged"] = _start_munge(self.root, self.munge_socket)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_process(name)


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True)


def _ensure_network() -> None:
    """The bridge and the namespace node2 lives in, made once and left for the next session."""
    ip = _tool("ip", "/usr/sbin/ip", "/sbin/ip")
    routes = _sh(ip, "-4", "route", "show", "table", "all").stdout
    for line in routes.splitlines():
        words = line.split()
        routed = words and "/" in words[0] and BRIDGE not in words
        if routed and ipaddress.ip_network(words[0], strict=False).overlaps(NETWORK):
            raise RigError(f"{NETWORK} is already routed here ({line.strip()})")
    if _sh(ip, "link", "show", BRIDGE).returncode != 0:
        _must(ip, "link", "add", "name", BRIDGE, "type", "bridge")
    if f"inet {HOST_ADDRESS}/24" not in _sh(ip, "-4", "addr", "show", BRIDGE).stdout:
        _must(ip, "addr", "add", f"{HOST_ADDRESS}/24", "dev", BRIDGE)
    _must(ip, "link", "set", BRIDGE, "up")
    if not Path(f"/run/netns/{NETNS}").exists():
        _must(ip, "netns", "add", NETNS)
    if _sh(ip, "link", "show", VETH_HOST).returncode != 0:
        _must(ip, "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        _must(ip, "link", "set", VETH_NS, "netns", NETNS)
    _must(ip, "link", "set", VETH_HOST, "master", BRIDGE, "up")
    inside = [ip, "-n", NETNS]
    if f"inet {NODE2_ADDRESS}/24" not in _sh(*inside, "-4", "addr", "show", VETH_NS).stdout:
        _must(*inside, "addr", "add", f"{NODE2_ADDRESS}/24", "dev", VETH_NS)
    _must(*inside, "link", "set", VETH_NS, "up")
    _must(*inside, "link", "set", "lo", "up")


def _must(*argv: str) -> None:
    result = _sh(*argv)
    if result.returncode != 0:
        raise RigError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")


def _start_munge(root: Path, sock: Path) -> subprocess.Popen[bytes]:
    munged = _tool("munged", "/usr/sbin/munged")
    folder = root / "munge"
    folder.mkdir(mode=0o700, exist_ok=True)
    key = folder / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    proc = _spawn(
        [munged, "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
         f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}",
         f"--log-file={folder / 'munged.log'}"],
        folder / "munged.out",
    )  # fmt: skip

    def answers() -> bool:
        if proc.poll() is not None:
            raise RigError(f"munged exited; see {folder}/munged.out and munged.log")
        return sock.exists()

    wait_for(answers, "munged")
    return proc


def _fake_gpus(root: Path, node: str) -> Path:
    """Dummy device nodes standing for NVIDIA GPUs (major 195, as /dev/nvidiaN)."""
    folder = root / "dev" / node
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(GPUS_PER_NODE):
        path = folder / f"nvidia{n}"
        if not path.exists():
            _must("mknod", str(path), "c", "195", str(n))
    return folder


def _write_config(root: Path, sock: Path, ctld_port: int, slurmd_port: int) -> Path:
    host = socket.gethostname().split(".")[0]
    nodes = {"node1": HOST_ADDRESS, "node2": NODE2_ADDRESS}
    node_lines = "".join(
        f"NodeName={n} NodeAddr={a} CPUs=8 RealMemory=4000 Gres=gpu:{GPU_TYPE}:{GPUS_PER_NODE} "
        "State=UNKNOWN\n"
        for n, a in nodes.items()
    )
    conf = root / "slurm.conf"
    conf.write_text(
        "ClusterName=radopsrig\n"
        f"SlurmctldHost={host}({HOST_ADDRESS})\n"
        f"SlurmctldPort={ctld_port}\nSlurmdPort={slurmd_port}\n"
        "SlurmUser=root\nSlurmdUser=root\n"
        f"AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={sock}\n"
        f"StateSaveLocation={root / 'ctld-state'}\n"
        f"SlurmdSpoolDir={root / 'spool'}/%n\n"
        f"SlurmctldPidFile={root / 'slurmctld.pid'}\n"
        f"SlurmdPidFile={root / 'slurmd'}-%n.pid\n"
        f"SlurmctldLogFile={root / 'slurmctld.log'}\n"
        f"SlurmdLogFile={root / 'slurmd'}-%n.log\n"
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
        "SlurmdParameters=config_overrides\n"
        "GresTypes=gpu\nMpiDefault=none\nReturnToService=2\n"
        "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
        f"MinJobAge={MIN_JOB_AGE_S}\nKillWait=30\nSchedulerType=sched/backfill\n"
        "SlurmctldTimeout=60\nSlurmdTimeout=120\nDefMemPerCPU=100\n"
        + node_lines
        + f"PartitionName={PARTITION} Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP\n"
        "PartitionName=cpu Nodes=node1 MaxTime=INFINITE State=UP\n"
    )
    gres = "AutoDetect=off\n" + "".join(
        f"NodeName={n} Name=gpu Type={GPU_TYPE} "
        f"File={_fake_gpus(root, n)}/nvidia[0-{GPUS_PER_NODE - 1}]\n"
        for n in nodes
    )
    (root / "gres.conf").write_text(gres)
    (root / "ctld-state").mkdir(exist_ok=True)
    for n in nodes:
        (root / "spool" / n).mkdir(parents=True, exist_ok=True)
    return conf


def _start_slurm(root: Path, conf: Path) -> dict[str, subprocess.Popen[bytes]]:
    slurmctld = _tool("slurmctld", "/usr/sbin/slurmctld")
    slurmd = _tool("slurmd", "/usr/sbin/slurmd")
    nsenter = _tool("nsenter", "/usr/bin/nsenter")
    env_conf = ["env", f"SLURM_CONF={conf}"]
    procs = {
        # -c: a clean start, no jobs from an earlier session's state
        "slurmctld": _spawn(
            [*env_conf, slurmctld, "-D", "-c", "-f", str(conf)], root / "slurmctld.out"
        ),
        "node1": _spawn(
            [*env_conf, slurmd, "-D", "-N", "node1", "-f", str(conf)], root / "node1.out"
        ),
        "node2": _spawn(
            [
                nsenter,
                f"--net=/run/netns/{NETNS}",
                *env_conf,
                slurmd,
                "-D",
                "-N",
                "node2",
                "-f",
                str(conf),
            ],
            root / "node2.out",
        ),
    }
    env = {**os.environ, "SLURM_CONF": str(conf)}

    def idle() -> bool:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RigError(f"{name} exited; see {root}/{name}.out and its log")
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], env=env, capture_output=True, text=True
        ).stdout
        states = dict(line.split() for line in out.splitlines() if line.strip())
        return all(states.get(n) == "idle" for n in NODES)

    try:
        wait_for(idle, "slurmctld and both slurmd nodes (idle)", timeout=120)
    except BaseException:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        raise
    return procs


def _start_registries(root: Path) -> tuple[str, str, list[subprocess.Popen[bytes]]]:
    """One registry's storage, served on loopback and on the bridge address, same port."""
    registry = _tool("docker-registry", "/usr/bin/docker-registry")
    port = free_port()
    procs = []
    for address in ("127.0.0.1", HOST_ADDRESS):
        folder = root / f"registry-{address}"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'registry-data'}\n"
            f"http:\n  addr: {address}:{port}\n"
        )
        proc = _spawn([registry, "serve", str(config)], folder / "registry.log")
        procs.append(proc)

        def answers(address: str = address, proc: subprocess.Popen[bytes] = proc) -> bool:
            if proc.poll() is not None:
                raise RigError(f"docker-registry on {address} exited; see {root}")
            with contextlib.suppress(OSError), socket.create_connection((address, port), 1):
                return True
            return False

        wait_for(answers, f"the registry on {address}")
    return f"127.0.0.1:{port}", f"{HOST_ADDRESS}:{port}", procs


def _podman_config(root: Path, registries: tuple[str, str]) -> tuple[Path, Path]:
    """podman's settings for jobs, given to them through the login session's environment:
    the rig's registry over plain http, and no default ulimits (this VM refuses podman's)."""
    folder = root / "podman"
    folder.mkdir(exist_ok=True)
    conf = folder / "registries.conf"
    conf.write_text(
        "unqualified-search-registries = []\n"
        + "".join(f'[[registry]]\nlocation = "{r}"\ninsecure = true\n' for r in registries)
    )
    containers = folder / "containers.conf"
    containers.write_text("[containers]\ndefault_ulimits = []\n")
    return conf, containers


def machine_lock() -> contextlib.AbstractContextManager[None]:
    """The machine's one Slurm rig: fixed bridge, namespace and node names."""
    return rig_lock(LOCK, LOCK_WAIT_S, "Slurm rig")


def _stray_daemons() -> None:
    """Daemons an earlier session of this rig left (killed before it could stop them) hold
    the node names and ports; under the lock, nobody else's are ours to meet."""
    for pattern in ("slurmd -D -N node", "slurmctld -D -c -f", "munged --foreground --force"):
        found = _sh("pgrep", "-f", pattern).stdout.split()
        for pid in found:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(
                f"/proc/{pid}/cmdline").exists() else b""  # fmt: skip
            if b"radops-slurm-rig" in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGTERM)


@contextlib.contextmanager
def slurm_cluster(root: Path) -> Iterator[SlurmCluster]:
    """Start the whole rig under `root`; stop it all afterwards."""
    _stray_daemons()
    _ensure_network()
    cluster = SlurmCluster(
        root=root, conf=root / "slurm.conf", ssh_port=0, client_key=root, host_key_pub=root,
        registry="", bridge_registry="", job_dir=root / "jobs",
        munge_socket=root / "munge" / "munge.socket",
    )  # fmt: skip
    try:
        cluster.start_munge()
        conf = _write_config(root, cluster.munge_socket, free_port(), free_port())
        cluster.processes.update(_start_slurm(root, conf))
        registry, bridge_registry, registries = _start_registries(root)
        for n, proc in enumerate(registries):
            cluster.processes[f"registry{n}"] = proc
        cluster.registry, cluster.bridge_registry = registry, bridge_registry
        registries_conf, containers_conf = _podman_config(root, (registry, bridge_registry))
        cluster.job_dir.mkdir(mode=0o700, exist_ok=True)
        ssh = root / "login"
        ssh.mkdir(exist_ok=True)
        (root / "docker-config").mkdir(mode=0o700, exist_ok=True)
        (root / "docker-config" / "config.json").write_text("{}\n")  # podman reads it too
        keygen(ssh / "client_key")
        authorized = ssh / "authorized_keys"
        authorized.write_text(Path(f"{ssh / 'client_key'}.pub").read_text())
        authorized.chmod(0o644)
        port = free_port()
        # The login node's sessions: SLURM_CONF for every Slurm client, podman's settings for
        # jobs (sbatch passes the environment on). DOCKER_HOST is this machine's own engine.
        env_line = (
            f"SLURM_CONF={conf} CONTAINERS_REGISTRIES_CONF={registries_conf} "
            f"CONTAINERS_CONF={containers_conf}"
        )
        cluster.processes["sshd"] = _run_sshd(
            ssh, [("127.0.0.1", port)], authorized, "unix:///var/run/docker.sock",
            root / "docker-config", extra_env=env_line,
        )  # fmt: skip
        cluster.ssh_port = port
        cluster.client_key = ssh / "client_key"
        cluster.host_key_pub = ssh / "host_key.pub"
        yield cluster
    finally:
        cluster.stop()


def clean_jobs(cluster: SlurmCluster) -> None:
    """Cancel every job still queued or running (tests cancel their own; this catches the
    rest) so the next test starts on idle nodes."""
    cluster.slurm("scancel", "--full", "--partition", PARTITION)
    cluster.slurm("scancel", "--full", "--partition", "cpu")
