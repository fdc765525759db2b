"""What a config value may be (executor, host, user and Slurm names, paths), checked without
pydantic: the config's models (radops.specs) validate with these rules, and radops.plainconfig
reads the file with them when pydantic is not needed."""

from __future__ import annotations

import re

from radops.errors import UsageError
from radops.names import LOCAL_EXECUTOR_NAME

DEFAULT_DOCKER_PATH = "/usr/bin/docker"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
SLURM_RUNTIMES = ("docker", "podman", "pyxis")
DEFAULT_RUNTIME_PATHS = {
    "docker": DEFAULT_DOCKER_PATH,
    "podman": "/usr/bin/podman",
    "pyxis": "srun",
}


def validate_executor_name(name: str) -> str:
    """Return `name` if it is a valid executor name, else raise UsageError saying why."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid executor name {name!r}: use letters, digits, '-' and '_' (1 to 63 characters)"
        )
    return name


def check_registered_name(value: str) -> str:
    """A registered executor's name, else ValueError (`local` is built in)."""
    if not NAME_RE.fullmatch(value) or value == LOCAL_EXECUTOR_NAME:
        raise ValueError(f"invalid executor name {value!r}")
    return value


# What OpenSSH 9.6 refuses in a host name or user name from the command line: ~/.ssh/config's
# `Match exec` hands %h and %r to a local shell, so radops refuses them before any lookup.
_SHELL_CHARS = frozenset("'`\"$\\;&<>|(){}")


def check_ssh_name(value: str, what: str) -> str:
    """`value` as a host or user name for SSH, else ValueError: not empty, no leading '-' (an
    option to ssh or docker), no whitespace, control or shell characters."""
    bad = not value or value.startswith("-")
    bad = bad or any(c in _SHELL_CHARS or c.isspace() or not c.isprintable() for c in value)
    if bad:
        raise ValueError(f"invalid {what} {value!r}")
    return value


def validate_ssh_name(value: str, what: str) -> str:
    """`check_ssh_name`, as a UsageError that says which characters are refused."""
    try:
        return check_ssh_name(value, what)
    except ValueError as e:
        raise UsageError(
            str(e), "Host and user names cannot contain spaces, quotes or any of `$;&<>|(){}\\."
        ) from None


def split_host_port(hostname: str, port: int | None) -> tuple[str, int | None]:
    """Split `host:port` or `[v6]:port`; an explicit `port` must agree with one in `hostname`."""
    host, found = hostname, None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", hostname)
    if m:
        host, found = m.group(1), m.group(2)
    elif hostname.count(":") == 1:
        host, found = hostname.split(":")
    if found is not None:
        if not found.isdigit() or not 1 <= int(found) <= 65535:
            raise UsageError(f"invalid port in hostname {hostname!r}")
        if port is not None and port != int(found):
            raise UsageError(f"--port {port} disagrees with the port in {hostname!r}")
        return host, int(found)
    return host, port


def check_docker_path(value: str) -> str:
    """The container CLI's path on the executor, else ValueError: not empty, not an option."""
    if not value or value.startswith("-") or "\0" in value:
        raise ValueError(f"invalid docker path {value!r}")
    return value


def check_job_dir(value: str) -> str:
    """A Slurm job folder (absolute, on the cluster) without its trailing '/', else ValueError."""
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise ValueError(f"invalid job folder {value!r}: give an absolute path on the cluster")
    return value.rstrip("/") or "/"


def check_slurm_name(value: str | None) -> str | None:
    """A Slurm partition or account (None: the cluster's default), else ValueError."""
    if value is not None and (
        not value or value.startswith("-") or any(c.isspace() for c in value)
    ):
        raise ValueError(f"invalid Slurm name {value!r}")
    return value
