"""Which builder makes images on this machine, found once and remembered.

BuildKit (what `RUN --mount`, `--secret` and `--ssh` need) comes from the docker CLI: `docker
buildx build` where the buildx plugin is installed, else `DOCKER_BUILDKIT=1 docker build` on a
client that carries BuildKit itself (docker before 23.0, e.g. Debian 12's docker.io 20.10). Every
`docker` on PATH is tried in PATH order. Without either, images are built by the engine's legacy
builder through its API. The answer is kept in radops' cache folder and found again when PATH,
a docker client or a CLI plugin folder changes, or DOCKER_BUILDKIT is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(cache.read_text())
        if data["fingerprint"] == fingerprint:
            return Builder(data["kind"], data["docker"], data["why"])
    builder = detect(clients)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        record = {"fingerprint": fingerprint, **builder.__dict__}
        tmp.write_text(json.dumps(record))
        os.replace(tmp, cache)
    return builder


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
