"""radops' shipping registry (radops.images.shipregistry) with Debian's real docker-registry:
loopback only, a password of its own, its storage private, nothing left when it stops or when
radops is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from radops.images import shipregistry


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ship-registry"
    monkeypatch.setenv("RADOPS_SHIP_REGISTRY_DIR", str(folder))
    return folder


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    import base64

    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def _bound(port: int) -> list[str]:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(f":{port}")]


def test_it_listens_on_loopback_only_with_a_password_and_leaves_nothing(storage: Path) -> None:
    assert shipregistry.binary() is not None, "docker-registry is not installed (bootstrap)"
    with shipregistry.running() as registry:
        url = f"http://{registry.address}/v2/"
        assert _status(url) == 401
        assert _status(url, ("radops", "wrong")) == 401
        assert _status(url, (registry.username, registry.password)) == 200
        assert _bound(registry.port) == [f"127.0.0.1:{registry.port}"]
        folder = registry.folder
        assert (folder.stat().st_mode & 0o777) == 0o700
        assert registry.password not in " ".join(registry.process.args)  # type: ignore[arg-type]
    assert registry.process.poll() is not None
    assert not folder.exists()
    assert _bound(registry.port) == []
    assert (storage.stat().st_mode & 0o777) == 0o700


def test_two_at_once_get_their_own_ports_over_one_storage(storage: Path) -> None:
    with shipregistry.running() as one, shipregistry.running() as two:
        assert one.port != two.port and one.password != two.password
        assert _status(f"http://{two.address}/v2/", (one.username, one.password)) == 401


def test_the_registry_ends_when_radops_is_killed(storage: Path) -> None:
    code = (
        "from radops.images import shipregistry as s\n"
        "r = s.start(); print(r.process.pid, r.port, flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    pid, port = (int(x) for x in child.stdout.readline().split())
    listener = _listening(port)  # the registry's own socket (inode), not whoever gets the port
    assert listener, f"nothing listens on 127.0.0.1:{port}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    # (A Go program's main thread can show as a zombie while its other threads still end.)
    while time.monotonic() < deadline and (_alive(pid) or listener & _listening(port)):
        time.sleep(0.1)
    assert not _alive(pid)
    # Its listening socket is gone. (The port itself may be taken again at once by another
    # registry started meanwhile: another test's, or another radops'.)
    assert not listener & _listening(port)


def _listening(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on 127.0.0.1:`port` (/proc/net/tcp; 0A: LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            found.add(fields[9])
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_records_of_pushed_layers_survive_and_add_up(storage: Path) -> None:
    assert shipregistry.pushed() == set()
    shipregistry.record_pushed(["sha256:a"])
    shipregistry.record_pushed(["sha256:b"])
    assert shipregistry.pushed() == {"sha256:a", "sha256:b"}
    assert shipregistry.ship_tag("radops/app:0123") == "radops-app-0123"


def test_the_start_up_probe_never_sends_the_password_to_another_listener(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local user's listener that won the race for the port (answering as a registry would)
    never sees credentials: the probe asks without them; the next port gets our registry."""
    import http.server
    import threading

    seen: list[str] = []

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization") or "")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = [server.server_address[1]]
    real = shipregistry._free_port
    monkeypatch.setattr(shipregistry, "_free_port", lambda: ports.pop() if ports else real())
    try:
        with shipregistry.running() as registry:
            assert registry.port != server.server_address[1]
            url = f"http://{registry.address}/v2/"
            assert _status(url, (registry.username, registry.password)) == 200
    finally:
        server.shutdown()
    assert seen and not any(seen), seen  # asked, and never with a password


def test_a_push_reports_the_digest_the_registry_serves_and_leaves_no_tag(
    storage: Path, docker_client: Any
) -> None:
    """The tunnel has the remote pull by this digest (not the tag, which another push could
    move); the tag the push made here goes with it."""
    from radops.images.service import LocalImages

    images = LocalImages()
    try:
        with shipregistry.running() as registry:
            ref = f"{registry.address}/{shipregistry.REPOSITORY}:digest-test"
            from radops.executors.ssh.tunnel import _untagged

            with _untagged(images, ref):
                digest = images.push("busybox:1.36", ref, lambda _line: None, registry.auth())
            assert digest is not None and digest.startswith("sha256:")
            served = shipregistry.layer_sizes(registry, digest)  # the manifest by its digest
            assert served == shipregistry.layer_sizes(registry, "digest-test") != {}
        tags = [t for i in docker_client.images.list() for t in i.tags]
        assert ref not in tags
    finally:
        images.close()


def test_folders_of_registries_killed_outright_are_swept_but_not_those_in_use(
    storage: Path,
) -> None:
    import tempfile

    stale = Path(tempfile.mkdtemp(prefix="radops-ship-registry-"))
    (stale / "htpasswd").write_text("radops:x\n")
    with shipregistry.running() as registry:
        later = time.time() + 3600  # both older than a minute by then
        shipregistry.sweep(later)
        assert registry.folder.is_dir()  # its command holds its lock
        assert not stale.exists()
        assert (
            _status(f"http://{registry.address}/v2/", (registry.username, registry.password)) == 200
        )
