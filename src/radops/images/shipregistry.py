"""radops' own registry on this machine's loopback, started and stopped by one command, for
shipping an image to a remote engine through an SSH tunnel (`--transfer tunnel`).

Its storage outlives the command (a folder in radops' cache, 0700): the local engine remembers
which layers it pushed there (by diff ID, in its own metadata), so the next push of an image
that shares them neither exports nor compresses them again; it only asks the registry, which
answers from this storage. Every command starts its own registry process on a free loopback
port with a one-off password (bcrypt in an htpasswd file of its own): several radops commands
at once each have theirs, over the one storage, as registry instances sharing a storage
backend are meant to (uploads land under unique names and are moved into place by digest).

`pushed` keeps, beside the storage, the diff IDs whose blobs the storage holds: what a push
there costs nothing to export. radops reads it to choose the path before it starts anything.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radops.errors import RadopsError

BINARIES = ("docker-registry", "registry")  # Debian's package, upstream's image's name
REPOSITORY = "radops/ship"  # one repository: every blob pushed once is found by every image
START_TIMEOUT_S = 15.0
_NONCE_HEADER = "X-Radops-Registry"
_PUSHED = "radops-pushed.json"
_DEFERRED = "radops-deferred.json"
# Straight to 127.0.0.1, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def storage_dir() -> Path:
    """Where the shipping registry keeps its blobs (RADOPS_SHIP_REGISTRY_DIR overrides)."""
    given = os.environ.get("RADOPS_SHIP_REGISTRY_DIR")
    if given:
        return Path(given)
    import platformdirs

    return Path(platformdirs.user_cache_dir("radops", appauthor=False)) / "ship-registry"


def binary() -> str | None:
    """The registry program on this machine, if any (RADOPS_SHIP_REGISTRY_BIN names one; empty:
    none, the tunnel is not used)."""
    given = os.environ.get("RADOPS_SHIP_REGISTRY_BIN")
    if given is not None:
        return shutil.which(given) if given else None
    for name in BINARIES:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
        if found:
            return found
    return None


def _storage() -> Path:
    folder = storage_dir()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


@contextlib.contextmanager
def _record_lock(folder: Path) -> Iterator[None]:
    with open(folder / "radops-records.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read(name: str) -> set[str]:
    try:
        data = json.loads((storage_dir() / name).read_text())
    except (OSError, ValueError):
        return set()
    return {d for d in data if isinstance(d, str)} if isinstance(data, list) else set()


def _add(name: str, diff_ids: Iterable[str]) -> None:
    """Add `diff_ids` to a record (atomically: a crash leaves the old one)."""
    folder = _storage()
    with _record_lock(folder):
        known = _read(name) | set(diff_ids)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, prefix=".record-") as f:
            json.dump(sorted(known), f)
        os.replace(f.name, folder / name)


def pushed() -> set[str]:
    """The diff IDs whose layers the storage holds (pushed by this machine's engine)."""
    return _read(_PUSHED)


def record_pushed(diff_ids: Iterable[str]) -> None:
    _add(_PUSHED, diff_ids)


def deferred() -> set[str]:
    """The diff IDs a ship has already gone without pushing once (radops.executors.ssh.tunnel)."""
    return _read(_DEFERRED)


def record_deferred(diff_ids: Iterable[str]) -> None:
    _add(_DEFERRED, diff_ids)


def ship_tag(local_tag: str) -> str:
    """A local image tag (`radops/app:hash`) as a tag in REPOSITORY."""
    return local_tag.replace("/", "-").replace(":", "-")[-128:].lstrip(".-") or "image"


@dataclass
class LocalRegistry:
    """One running registry process on 127.0.0.1:`port` (see `start`)."""

    port: int
    username: str
    password: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    folder: Path  # its config, htpasswd and log (removed on stop)
    lock: int = field(default=-1, repr=False)  # held on folder/lock while it is in use

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def auth(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.lock >= 0:
            os.close(self.lock)
            self.lock = -1


_FOLDER_PREFIX = "radops-ship-registry-"
_STALE_S = 60.0  # a folder younger than this may be one another command is just setting up


def _in_use(folder: Path) -> int:
    """Take the folder's lock (an fd, held until closed); -1 if it could not be taken."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return -1
    return fd


def sweep(now: float | None = None) -> None:
    """Remove the folders of registries whose command ended without stopping them (radops
    killed outright): this user's, older than a minute, whose lock nobody holds."""
    now = time.time() if now is None else now
    for folder in Path(tempfile.gettempdir()).glob(_FOLDER_PREFIX + "*"):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
            continue
        if now - info.st_mtime < _STALE_S:
            continue
        fd = _in_use(folder)
        if fd >= 0:
            shutil.rmtree(folder, ignore_errors=True)
            os.close(fd)


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec (Linux): SIGTERM when the thread that started it ends.
    prctl is looked up here, in the parent: a forked child of a threaded process must not
    import or load a library (another thread may have held the lock it needs). If the parent
    is already gone by the time prctl runs, the signal will never come: the child exits."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def child() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return child


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(storage: Path, port: int, htpasswd: Path, nonce: str) -> str:
    return json.dumps(  # YAML is a superset of JSON
        {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}", "headers": {_NONCE_HEADER: [nonce]}},
            "auth": {"htpasswd": {"realm": "radops", "path": str(htpasswd)}},
        }
    )


def _answers(port: int, nonce: str) -> bool:
    """Is it our registry (its nonce header) that answers on the port? Asked without the
    password: whatever else took the port (another local user's listener) never sees it. Our
    registry sends the header with its 401 too."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/")
    try:
        with _DIRECT.open(request, timeout=2) as response:
            return bool(response.headers.get(_NONCE_HEADER) == nonce)
    except urllib.error.HTTPError as e:
        return bool(e.headers.get(_NONCE_HEADER) == nonce)
    except (OSError, urllib.error.URLError):
        return False


def layer_sizes(registry: LocalRegistry, tag: str) -> dict[str, int]:
    """The compressed size of each layer of REPOSITORY:`tag` by digest, from its manifest
    ({} if it cannot be read)."""
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{registry.address}/v2/{REPOSITORY}/manifests/{tag}",
        headers={
            "Authorization": f"Basic {basic}",
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json",
        },
    )
    try:
        with _DIRECT.open(request, timeout=10) as response:
            manifest = json.loads(response.read())
        return {str(layer["digest"]): int(layer["size"]) for layer in manifest["layers"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@contextlib.contextmanager
def running() -> Iterator[LocalRegistry]:
    """A registry on a free loopback port over the shared storage, stopped (and its files
    removed) when the block ends, whatever way it ends."""
    registry = start()
    try:
        yield registry
    finally:
        registry.stop()


def start() -> LocalRegistry:
    """Start a registry; a RadopsError if none could (no binary, or it did not answer)."""
    import bcrypt

    program = binary()
    if program is None:
        raise RadopsError("no registry program here (Debian: `apt-get install docker-registry`)")
    storage = _storage()
    sweep()
    folder = Path(tempfile.mkdtemp(prefix=_FOLDER_PREFIX))  # 0700
    lock = _in_use(folder)
    username, password = "radops", secrets.token_urlsafe(24)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    (folder / "htpasswd").write_text(f"{username}:{hashed}\n")
    nonce = secrets.token_hex(8)
    last = ""
    preexec = _die_with_parent()
    for _ in range(3):  # a port taken between the look and the start: another one
        port = _free_port()
        config = folder / "config.yml"
        config.write_text(_config(storage, port, folder / "htpasswd", nonce))
        log = open(folder / "log", "wb")  # noqa: SIM115 (the process holds it)
        process = subprocess.Popen(
            [program, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True,  # a Ctrl-C at the terminal is radops' to handle
            preexec_fn=preexec,  # radops killed outright: the registry ends too
        )
        log.close()
        registry = LocalRegistry(port, username, password, process, folder, lock)
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port, nonce):
                return registry
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
        lines = (folder / "log").read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else last
    shutil.rmtree(folder, ignore_errors=True)
    if lock >= 0:
        os.close(lock)
    raise RadopsError(f"the shipping registry did not start: {last or 'no answer'}")
