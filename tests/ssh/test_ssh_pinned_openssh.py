"""`connect` and `exec -t` to a machine with a pinned host key (a GCP VM radops created) hand
OpenSSH a one-off known-hosts file holding only the key radops checked, never radops' whole
known_hosts, where an older key of another type for that address can survive.

Real parts: two sshd of this test's own (the machine radops created, with the pinned ed25519
key, and an impostor with an ECDSA key that radops' known_hosts also holds for the address),
behind one port that switches between them after radops' own check; OpenSSH's client and
paramiko. The executor is a GCP executor as `gcp create` records it (no Compute API is
needed to connect)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from radops.gcp.executor import GCPExecutor
from radops.specs import GCPExecutorSpec
from radops.ssh.openssh import PINNED_ALIAS
from radops.store import ExecutorStore
from tests import rig

NAME = "pinvm"


class Switch:
    """A TCP port that sends each connection to the next port of `route` (the last one then
    stays): the machine at an address changing between radops' check and OpenSSH's login,
    as a man in the middle can make it."""

    def __init__(self) -> None:
        self.route: list[int] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            port = self.route.pop(0) if len(self.route) > 1 else self.route[0]
            upstream = socket.create_connection(("127.0.0.1", port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@dataclass
class Rig:
    switch: Switch
    pinned_port: int  # sshd with the pinned ed25519 key: the machine radops created
    impostor_port: int  # sshd with an ECDSA key only, one radops' known_hosts also holds
    client_key: Path
    ed25519: str  # "type base64" of the pinned host key
    ecdsa: str  # the impostor's host key


def _public(path: Path) -> str:
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def _fingerprint(public: str) -> str:
    digest = hashlib.sha256(base64.b64decode(public.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _sshd(folder: Path, host_key: Path, authorized: Path) -> tuple[int, subprocess.Popen[bytes]]:
    folder.mkdir()
    port = rig.free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPermitRootLogin prohibit-password\nPidFile {folder / 'sshd.pid'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    log = folder / "sshd.log"
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    rig.wait_for(lambda: f"port {port}." in log.read_text(), "the test's sshd")
    return port, proc


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("pinned-sshd")
    ed25519, ecdsa = rig.keygen(folder / "host_ed25519"), rig.keygen(folder / "host_ecdsa", "ecdsa")
    client = rig.keygen(folder / "client")
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{client}.pub").read_text())
    procs = []
    try:
        pinned, proc = _sshd(folder / "pinned", ed25519, authorized)
        procs.append(proc)
        impostor, proc = _sshd(folder / "impostor", ecdsa, authorized)
        procs.append(proc)
        yield Rig(Switch(), pinned, impostor, client, _public(ed25519), _public(ecdsa))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


@pytest.fixture
def env(tmp_path: Path, machines: Rig, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A HOME, radops config and TMPDIR of this test's, the executor registered there, and
    radops' known_hosts holding, for its address, the pinned key and an ECDSA key (an older
    entry: trusted before the executor was pinned, or by a since-fixed radops)."""
    home, config, tmp = tmp_path / "home", tmp_path / "config", tmp_path / "tmp"
    for folder in (home / ".ssh", config, tmp):
        folder.mkdir(parents=True, mode=0o700)
    for key, value in (("HOME", home), ("RADOPS_CONFIG_DIR", config), ("TMPDIR", tmp)):
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("RADOPS_SSH_PERSIST", "0")
    ExecutorStore().add(
        GCPExecutorSpec(
            name=NAME,
            hostname="127.0.0.1",
            port=machines.switch.port,
            username="root",
            identity_file=str(machines.client_key),
            project="p",
            zone="z",
            instance=NAME,
            host_key_fingerprint=_fingerprint(machines.ed25519),
        )
    )
    name = f"[127.0.0.1]:{machines.switch.port}"
    (config / "known_hosts").write_text(f"{name} {machines.ed25519}\n{name} {machines.ecdsa}\n")
    machines.switch.route = [machines.pinned_port]
    keep = ("PATH", "LANG")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "HOME": str(home),
            "RADOPS_CONFIG_DIR": str(config), "TMPDIR": str(tmp), "RADOPS_SSH_PERSIST": "0",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}  # fmt: skip


def _connect(env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "radops", "executors", "connect", NAME],
        env=env, input=stdin, capture_output=True, timeout=60, check=False,
    )  # fmt: skip


def _switch_after_check(machines: Rig) -> None:
    """radops' own connection reaches the pinned machine, every later one the impostor."""
    machines.switch.route = [machines.pinned_port, machines.impostor_port]


def test_connect_trusts_the_pinned_key_alone_and_removes_its_file(
    env: dict[str, str], machines: Rig
) -> None:
    done = _connect(env, b"echo connected-$((6*7))\n")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"connected-42\n"
    assert os.listdir(env["TMPDIR"]) == []  # the one-off file and its folder are gone

    # The impostor's ECDSA key is in radops' known_hosts: OpenSSH given that whole file (as
    # radops did) logs in to it. Given the pinned key alone, it refuses it.
    machines.switch.route = [machines.impostor_port]
    whole_file = subprocess.run(
        ["ssh", "-p", str(machines.switch.port), "-i", str(machines.client_key),
         "-o", f"UserKnownHostsFile={env['RADOPS_CONFIG_DIR']}/known_hosts",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "root@127.0.0.1", "echo", "impostor"],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert whole_file.stdout == b"impostor\n", whole_file.stderr.decode()
    _switch_after_check(machines)
    refused = _connect(env, b"echo impostor\n")
    assert refused.returncode == 255, refused.stderr.decode()
    assert b"impostor" not in refused.stdout
    assert b"Host key verification failed" in refused.stderr, refused.stderr
    assert os.listdir(env["TMPDIR"]) == []


def test_openssh_argv_and_its_file(env: dict[str, str], machines: Rig) -> None:
    spec = ExecutorStore().get(NAME)
    assert isinstance(spec, GCPExecutorSpec)
    with GCPExecutor(spec) as ex, ex.shell() as argv:
        options = {argv[i + 1] for i, word in enumerate(argv) if word == "-o"}
        known = next(o.split("=", 1)[1] for o in options if o.startswith("UserKnownHostsFile="))
        assert Path(known).read_text() == f"{PINNED_ALIAS} {machines.ed25519}\n"
        assert Path(known).stat().st_mode & 0o777 == 0o600
        assert Path(known).parent.stat().st_mode & 0o777 == 0o700
        assert {f"HostKeyAlias={PINNED_ALIAS}", "GlobalKnownHostsFile=/dev/null",
                "StrictHostKeyChecking=yes", "UpdateHostKeys=no", "CheckHostIP=no",
                "KnownHostsCommand=none"} <= options  # fmt: skip
        assert argv[-1] == "root@127.0.0.1"
        assert argv[-3:-1] == ["-i", str(machines.client_key)]
        batch = [*argv[:-1], "-o", "BatchMode=yes", argv[-1], "echo", "ok"]
        ran = subprocess.run(batch, capture_output=True, timeout=60)
        assert ran.stdout == b"ok\n", ran.stderr.decode()

        # The same argv with a file holding only a stale key of another type for the alias
        # (one the machine no longer has): OpenSSH refuses the machine.
        stale = rig.keygen(Path(env["TMPDIR"]).parent / "stale", "ecdsa")
        Path(known).write_text(f"{PINNED_ALIAS} {_public(stale)}\n")
        refused = subprocess.run(batch, capture_output=True, timeout=60)
        assert refused.returncode == 255 and refused.stdout == b""
        assert b"Host key verification failed" in refused.stderr, refused.stderr
    assert not Path(known).parent.exists()


def test_exec_on_a_terminal_goes_through_the_same_file(
    env: dict[str, str], machines: Rig, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    spec = ExecutorStore().get(NAME)
    assert isinstance(spec, GCPExecutorSpec)
    with GCPExecutor(spec) as ex:
        assert ex._exec_on_terminal(["echo", "on-terminal"]) == 0
    assert capfdbinary.readouterr().out.replace(b"\r", b"") == b"on-terminal\n"
    _switch_after_check(machines)
    with GCPExecutor(spec) as ex:
        assert ex._exec_on_terminal(["echo", "impostor"]) == 255
    captured = capfdbinary.readouterr()
    assert b"impostor" not in captured.out
    assert b"Host key verification failed" in captured.err, captured.err
    assert os.listdir(env["TMPDIR"]) == []
