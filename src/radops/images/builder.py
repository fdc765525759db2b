"""Which builder makes images on this machine, found once and remembered.

BuildKit (what `RUN --mount`, `--secret` and `--ssh` need) comes from the docker CLI: `docker
buildx build` where the buildx plugin is installed, else `DOCKER_BUILDKIT=1 docker build` on a
client that carries BuildKit itself (docker before 23.0, e.g. Debian 12's docker.io 20.10). Every
`docker` on PATH is tried in PATH order. Without either, images are built by the engine's legacy
builder through its API. The answer is kept in radops' cache folder and found again when PATH,
a docker client or a CLI plugin folder changes, or DOCKER_BUILDKIT is set. The answer names a
program radops runs: it is used only from a folder and file that are the user's alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

BUILDX = "buildx"  # docker buildx build
BUILTIN = "buildkit"  # DOCKER_BUILDKIT=1 docker build, BuildKit inside the client
LEGACY = "legacy"  # the engine API's classic builder

NO_BUILDKIT_HINT = (
    "Install Docker's buildx plugin (docker-buildx-plugin from Docker's apt repository), or "
    "Debian's docker.io package, whose docker 20.10 client has BuildKit built in."
)
_PROBE_TIMEOUT_S = 20


@dataclass(frozen=True)
class Builder:
    kind: str
    docker: str | None = None  # the docker CLI that builds (None: the engine API)
    why: str = ""  # for the legacy builder: why there is no BuildKit

    @property
    def buildkit(self) -> bool:
        return self.kind != LEGACY

    def command(self) -> list[str]:
        """The argv that starts a build (options and the context follow)."""
        if self.kind == BUILDX:  # --load: a docker-container builder keeps images to itself
            return [str(self.docker), "buildx", "build", "--load"]
        return [str(self.docker), "build"]

    def environment(self) -> dict[str, str]:
        return {"DOCKER_BUILDKIT": "1"} if self.kind == BUILTIN else {}

    def describe(self) -> str:
        if self.kind == BUILDX:
            return f"BuildKit ({self.docker} buildx)"
        if self.kind == BUILTIN:
            return f"BuildKit (DOCKER_BUILDKIT=1 {self.docker})"
        return f"Docker's legacy builder ({self.why})"


def find_builder() -> Builder:
    """The builder to use, from the cache when nothing it depends on has changed."""
    if os.environ.get("DOCKER_BUILDKIT", "").strip().lower() in ("0", "false"):
        return Builder(LEGACY, why="DOCKER_BUILDKIT=0 is set")
    clients = docker_clients()
    fingerprint = _fingerprint(clients)
    cache = _cache_file()
    cached = _read_cache(cache, fingerprint, clients)
    if cached is not None:
        return cached
    builder = detect(clients)
    with contextlib.suppress(OSError):
        _write_cache(cache, {"fingerprint": fingerprint, **builder.__dict__})
    return builder


def _read_cache(cache: Path, fingerprint: list[object], clients: list[str]) -> Builder | None:
    """The remembered builder; None if there is none, or if radops cannot trust it: the cache
    names a program radops runs, so the folder and the file must be this user's alone, and
    that program one of the `docker`s on PATH that only root or this user can change."""
    try:
        folder = os.open(cache.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if not _private(os.fstat(folder)):
            return None
        with os.fdopen(os.open(cache.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)) as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or not _private(info):
                return None
            data = json.loads(f.read(1 << 16))
        builder = Builder(str(data["kind"]), data["docker"], str(data["why"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(folder)
    if data["fingerprint"] != fingerprint or builder.kind not in (BUILDX, BUILTIN, LEGACY):
        return None
    if builder.kind != LEGACY and not (builder.docker in clients and _safe_program(builder.docker)):
        return None
    return builder


def _write_cache(cache: Path, record: dict[str, object]) -> None:
    """Remember `record`: a new 0600 file renamed over the old one (whoever owned it), in a
    folder that is this user's alone; in any other folder nothing is remembered."""
    cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = os.open(cache.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if not _private(os.fstat(folder)):
            return
        tmp = f".{cache.name}.{os.getpid()}.{secrets.token_hex(4)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(tmp, flags, 0o600, dir_fd=folder), "w") as f:
            f.write(json.dumps(record))
        os.replace(tmp, cache.name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


def _private(info: os.stat_result) -> bool:
    """Owned by this user, and nobody else may write to it."""
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _safe_program(path: str) -> bool:
    """An executable file (links followed) that only root or this user can change."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid in (0, os.getuid())
        and not info.st_mode & 0o022
        and os.access(path, os.X_OK)
    )


def detect(clients: list[str]) -> Builder:
    """Ask each docker client, in PATH order, whether it builds with BuildKit."""
    if not clients:
        return Builder(LEGACY, why="no docker CLI on PATH")
    for docker in clients:
        if _succeeds([docker, "buildx", "version"]):
            return Builder(BUILDX, docker)
        if _builtin_buildkit(docker):
            return Builder(BUILTIN, docker)
    return Builder(LEGACY, why="no docker CLI on PATH has the buildx plugin or BuildKit built in")


def docker_clients() -> list[str]:
    """Every executable `docker` on PATH, in order, one per real file."""
    found: list[str] = []
    seen: set[str] = set()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder or ".", "docker")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                found.append(path)
    return found


def _builtin_buildkit(docker: str) -> bool:
    """Docker clients before 23.0 carry BuildKit; later ones hand it to the buildx plugin."""
    try:
        out = subprocess.run(
            [docker, "--version"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    match = re.match(r"Docker version (\d+)\.(\d+)", out.strip())
    if match is None:  # not Docker's CLI (podman's stand-in, say)
        return False
    return (18, 9) <= (int(match[1]), int(match[2])) < (23, 0)


def _succeeds(argv: list[str]) -> bool:
    try:
        result = subprocess.run(argv, capture_output=True, timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _plugin_folders() -> list[str]:
    config = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    system = ("/usr/local/lib", "/usr/local/libexec", "/usr/lib", "/usr/libexec")
    return [os.path.join(config, "cli-plugins"), *(f"{d}/docker/cli-plugins" for d in system)]


def _fingerprint(clients: list[str]) -> list[object]:
    """What the answer depends on: the clients (by file) and the plugin folders' contents."""

    def state(path: str) -> list[object]:
        try:
            st = os.stat(path)
        except OSError:
            return [path, None]
        return [path, os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino]

    return [*(state(c) for c in clients), *(state(d) for d in _plugin_folders())]


def _cache_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("radops", appauthor=False)) / "builder.json"
