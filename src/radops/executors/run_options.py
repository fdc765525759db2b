"""`docker run` options of a job (`-v`, `--mount`, `--shm-size`, `-p`, ...): checked here, before
anything is built, then given to an engine as docker CLI flags (SSH) or Engine API fields (local).

Paths in `-v` and `--mount` are on the executor's machine, so a relative one is refused: it would
be relative to wherever that machine's docker runs.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from radops.errors import UsageError

# Labels radops writes itself: a job cannot set them.
RESERVED_LABEL_PREFIX = "dev.radops."

# Patterns as strings: `re` compiles and caches each on first use, not at import (start-up).
_SIZE = r"(?i)^(\d+(?:\.\d+)?)([bkmg]?)b?$"
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_VOLUME_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]+$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_USER = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$"
_PORT_RANGE = r"\d{1,5}(?:-\d{1,5})?"
_PUBLISH = (
    rf"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?:(?P<host>{_PORT_RANGE})?:)?"
    rf"(?P<container>{_PORT_RANGE})(?:/(?P<proto>tcp|udp|sctp))?$"
)
_IPC = ("host", "private", "shareable", "none")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private",
                 "rprivate", "nocopy", "consistent", "cached", "delegated"}  # fmt: skip
_MOUNT_KEYS = {
    "type", "source", "src", "target", "destination", "dst", "readonly", "ro",
    "bind-propagation", "bind-nonrecursive", "volume-driver", "volume-label", "volume-nocopy",
    "volume-opt", "tmpfs-size", "tmpfs-mode", "consistency",
}  # fmt: skip


@dataclass(frozen=True)
class RunOptions:
    """How the job's container runs, beyond its image and command. Values are as `docker run`
    takes them, already checked; empty means the engine's default."""

    volumes: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    shm_size: str | None = None
    ipc: str | None = None
    publish: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    memory: str | None = None
    cpus: str | None = None
    network: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    restart: str | None = (
        None  # docker's restart policy: no, on-failure[:N], unless-stopped, always
    )

    def to_json(self) -> dict[str, Any]:
        """The options given (not the defaults), as recorded on the job."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value in (None, (), []):
                continue
            if name == "labels":
                out[name] = dict(value)
            else:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: Any) -> RunOptions:
        """Read back what `to_json` recorded (unknown or malformed entries are dropped)."""
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key == "labels" and isinstance(value, dict):
                kwargs[key] = tuple((str(k), str(v)) for k, v in value.items())
            elif isinstance(value, list):
                kwargs[key] = tuple(str(v) for v in value)
            elif isinstance(value, str):
                kwargs[key] = value
        return cls(**kwargs)

    def docker_argv(self) -> list[str]:
        """The `docker run` flags for these options (an argv list, quoted later, once)."""
        argv: list[str] = []
        for volume in self.volumes:
            argv += ["--volume", volume]
        for mount in self.mounts:
            argv += ["--mount", mount]
        for flag, value in (
            ("--shm-size", self.shm_size), ("--ipc", self.ipc), ("--workdir", self.workdir),
            ("--user", self.user), ("--entrypoint", self.entrypoint),
            ("--memory", self.memory), ("--cpus", self.cpus), ("--network", self.network),
            ("--restart", self.restart),
        ):  # fmt: skip
            if value is not None:
                argv += [flag, value]
        for port in self.publish:
            argv += ["--publish", port]
        for key, value in self.labels:
            argv += ["--label", f"{key}={value}"]
        return argv


def parse_run_options(
    *,
    volumes: list[str] | None = None,
    mounts: list[str] | None = None,
    shm_size: str | None = None,
    ipc: str | None = None,
    publish: list[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    entrypoint: str | None = None,
    memory: str | None = None,
    cpus: str | None = None,
    network: str | None = None,
    labels: list[str] | None = None,
    restart: str | None = None,
) -> RunOptions:
    """Check every option as `docker run` would, so a bad one fails before anything is built."""
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError(f"invalid --workdir {workdir!r}: give an absolute path in the container")
    if user is not None and not re.match(_USER, user):
        raise UsageError(f"invalid --user {user!r}: use NAME, UID, NAME:GROUP or UID:GID")
    if ipc is not None and ipc not in _IPC and not ipc.startswith("container:"):
        raise UsageError(f"invalid --ipc {ipc!r}: use host, private, shareable, none or "
                         "container:NAME")  # fmt: skip
    if network is not None and not (re.match(_NAME, network) or network.startswith("container:")):
        raise UsageError(f"invalid --network {network!r}: give a network name, host or none")
    if entrypoint is not None and "\n" in entrypoint:
        raise UsageError("invalid --entrypoint: it cannot contain a newline")
    return RunOptions(
        volumes=tuple(check_volume(v) for v in volumes or []),
        mounts=tuple(check_mount(m) for m in mounts or []),
        shm_size=None if shm_size is None else _check_size(shm_size, "--shm-size"),
        ipc=ipc,
        publish=tuple(check_publish(p) for p in publish or []),
        workdir=workdir,
        user=user,
        entrypoint=entrypoint,
        memory=None if memory is None else _check_size(memory, "--memory"),
        cpus=None if cpus is None else _check_cpus(cpus),
        network=network,
        labels=tuple(_check_label(item) for item in labels or []),
        restart=None if restart is None else check_restart(restart),
    )


_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)$")


def check_restart(text: str) -> str:
    """`--restart` as docker takes it: no, on-failure[:MAX_RETRIES], unless-stopped, always."""
    if not _RESTART.match(text):
        raise UsageError(f"invalid --restart {text!r}: use no, on-failure[:N], unless-stopped "
                         "or always")  # fmt: skip
    return text


def restart_policy(text: str) -> dict[str, object]:
    """A checked `--restart` value as the Engine API's RestartPolicy."""
    name, _, count = text.partition(":")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def size_bytes(text: str) -> int:
    """`512m`, `8g`, `1.5g`, `1024` (bytes) -> bytes, as docker reads sizes."""
    match = re.match(_SIZE, text.strip())
    if not match:
        raise ValueError(text)
    return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])


def _check_size(text: str, flag: str) -> str:
    try:
        if size_bytes(text) <= 0:
            raise ValueError(text)
    except ValueError:
        raise UsageError(f"invalid {flag} {text!r}: use a size such as 512m or 8g") from None
    return text.strip()


def nano_cpus(text: str) -> int:
    """`--cpus` as the Engine API's NanoCpus (billionths of a CPU), as docker reads it."""
    value = float(text)
    if not math.isfinite(value):  # inf, 1e400 (inf too), nan: no count of CPUs
        raise ValueError(text)
    return round(value * 1e9)


def _check_cpus(text: str) -> str:
    try:
        nanos = nano_cpus(text)
    except ValueError:
        nanos = -1
    if nanos <= 0:  # 1e-12 rounds to 0, which the engine reads as "no limit"
        raise UsageError(
            f"invalid --cpus {text!r}: give a number of CPUs such as 4 or 1.5",
            "The smallest limit is 0.000000001 CPU.",
        )
    return text.strip()


def check_volume(spec: str) -> str:
    """`-v HOST:CONTAINER[:MODE]` with HOST an absolute path or a named volume on the machine."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise UsageError(
            f"invalid --volume {spec!r}: use HOST_PATH:CONTAINER_PATH[:ro]",
            "HOST_PATH is on the executor's machine, e.g. -v /data/imagenet:/data:ro.",
        )
    host, container = parts[0], parts[1]
    if not host.startswith("/") and not re.match(_VOLUME_NAME, host):
        raise UsageError(
            f"invalid --volume {spec!r}: {host!r} is a relative path",
            "Paths are on the executor's machine: give an absolute one (-v /data/x:/data). "
            "To send files from here, put them in the build folder or use `executors cp`.",
        )
    if not container.startswith("/"):
        raise UsageError(f"invalid --volume {spec!r}: the container path must be absolute")
    if len(parts) == 3 and not set(parts[2].split(",")) <= _VOLUME_MODES:
        raise UsageError(f"invalid --volume {spec!r}: unknown mode {parts[2]!r} (use ro or rw)")
    return spec


def mount_fields(spec: str) -> dict[str, str]:
    """A `--mount` value's CSV fields, keys lowercased; a bare key (`readonly`) is "true"."""
    try:
        items = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        items = []
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        found[key.strip().lower()] = value if sep else "true"
    return found


def check_mount(spec: str) -> str:
    """`--mount type=bind,source=/x,target=/y[,readonly]` as docker reads it (CSV fields)."""
    found = mount_fields(spec)
    for key in found:
        if key not in _MOUNT_KEYS:
            raise UsageError(
                f"invalid --mount {spec!r}: unknown field {key!r}",
                "Use type=bind|volume|tmpfs,source=...,target=...[,readonly].",
            )
    kind = found.get("type", "volume")
    target = found.get("target") or found.get("destination") or found.get("dst")
    source = found.get("source") or found.get("src")
    if kind not in ("bind", "volume", "tmpfs"):
        raise UsageError(f"invalid --mount {spec!r}: type must be bind, volume or tmpfs")
    if not target or not target.startswith("/"):
        raise UsageError(f"invalid --mount {spec!r}: give target=ABSOLUTE_PATH in the container")
    if kind == "bind" and (not source or not source.startswith("/")):
        raise UsageError(
            f"invalid --mount {spec!r}: a bind mount needs source=ABSOLUTE_PATH",
            "The source is on the executor's machine.",
        )
    for prefix, only in (("bind-", "bind"), ("volume-", "volume"), ("tmpfs-", "tmpfs")):
        wrong = [key for key in found if key.startswith(prefix) and kind != only]
        if wrong:  # as the docker CLI refuses them (docker-py too)
            raise UsageError(f"invalid --mount {spec!r}: {wrong[0]} applies to type={only} only")
    _check_tmpfs_fields(spec, found)
    return spec


def _check_tmpfs_fields(spec: str, found: dict[str, str]) -> None:
    """tmpfs-size is a size (512m, 1048576), tmpfs-mode octal permission bits, as docker reads
    them: checked here so that every kind refuses a bad one the same way, before anything runs."""
    if "tmpfs-size" in found:
        try:
            size_bytes(found["tmpfs-size"])  # 0 is docker's default size, as docker reads it
        except ValueError:
            raise UsageError(
                f"invalid --mount {spec!r}: tmpfs-size must be a size such as 64m or 1048576"
            ) from None
    if "tmpfs-mode" in found:
        try:
            mode = int(found["tmpfs-mode"], 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            raise UsageError(
                f"invalid --mount {spec!r}: tmpfs-mode must be octal permission bits such as 1777"
            )


def check_publish(spec: str) -> str:
    """`-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`."""
    match = re.match(_PUBLISH, spec)
    ports = [p for p in re.split(r"[-:/]", spec.rsplit("]", 1)[-1]) if p.isdigit()]
    if not match or any(not 0 < int(p) < 65536 for p in ports if p):
        raise UsageError(
            f"invalid --publish {spec!r}: use [IP:]HOST_PORT:CONTAINER_PORT, e.g. 6006:6006",
            "To reach a port from here without publishing it, use `executors forward`.",
        )
    return spec


def _check_label(item: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    if not key or any(c.isspace() for c in key):
        raise UsageError(f"invalid --label {item!r}: use KEY=VALUE")
    if key.startswith(RESERVED_LABEL_PREFIX):
        raise UsageError(f"invalid --label {item!r}: {RESERVED_LABEL_PREFIX}* labels are radops'")
    return key, value


def read_env_file(path: str, environ: dict[str, str]) -> dict[str, str]:
    """`--env-file FILE` as docker reads it: KEY=VALUE lines, `#` comments and blank lines
    skipped, a bare KEY takes this shell's value (dropped when unset, as docker does)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"cannot read --env-file {path!r}: {e.strerror or e}") from e
    except UnicodeDecodeError:
        raise UsageError(f"--env-file {path!r} is not UTF-8 text") from None
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"--env-file {path!r} line {number}: expected KEY=VALUE")
        if sep:
            found[key] = value
        elif key in environ:
            found[key] = environ[key]
    return found
