"""Executor specs and settings as pydantic models: what the config file holds, validated on load."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from radops.errors import UsageError

SCHEMA_VERSION = 1
LOCAL_EXECUTOR_NAME = "local"
DEFAULT_DOCKER_PATH = "/usr/bin/docker"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")

# Each setting's environment variable; the environment wins over the config file.
SETTINGS_ENV = {
    "registry": "RADOPS_REGISTRY",
    "gcp_project": "RADOPS_GCP_PROJECT",
    "gcp_zone": "RADOPS_GCP_ZONE",
    "gcp_api_endpoint": "RADOPS_GCP_API_ENDPOINT",
    "gcp_autostop": "RADOPS_GCP_AUTOSTOP",
    "ssh_persist": "RADOPS_SSH_PERSIST",
    "registry_pull_username": "RADOPS_REGISTRY_PULL_USERNAME",
    "registry_pull_token_file": "RADOPS_REGISTRY_PULL_TOKEN_FILE",
}


def validate_executor_name(name: str) -> str:
    """Return `name` if it is a valid executor name, else raise UsageError saying why."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid executor name {name!r}: use letters, digits, '-' and '_' (1 to 63 characters)"
        )
    return name


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


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# pydantic looks for plugins in every installed distribution's entry points when it builds
# the first model: ~25 ms here, far more in a large ML environment. radops' models use no
# plugin, so they are built with plugin loading off (as Typer does for its own adapters);
# the variable is restored after the last model below.
_PLUGINS_ENV = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"


class _Spec(BaseModel):
    # Unknown keys written by a newer radops survive a read-modify-write by this one.
    model_config = ConfigDict(extra="allow")


class LocalExecutorSpec(_Spec):
    """The built-in executor: the Docker engine that DOCKER_HOST (or the default socket) names."""

    kind: Literal["local"] = "local"
    name: str = LOCAL_EXECUTOR_NAME

    def target_text(self) -> str:
        """Where its jobs run, for people."""
        return os.environ.get("DOCKER_HOST", "this machine's Docker engine")


class SSHExecutorSpec(_Spec):
    """A machine reached over SSH whose Docker CLI lives at `docker_path`."""

    kind: Literal["ssh"] = "ssh"
    name: str
    hostname: str
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    docker_path: str = DEFAULT_DOCKER_PATH
    identity_file: str | None = None
    registry: str | None = None
    # The engine's platform (e.g. linux/arm64) as last checked: images are built for it.
    platform: str | None = None
    # Where `run` builds by default: here (then ships the image; None, the default), or on the
    # executor's engine.
    build: Literal["local", "remote"] | None = None
    created_at: datetime = Field(default_factory=_utcnow)

    def target_text(self) -> str:
        """Where its jobs run, for people: `user@host:port` as given."""
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.hostname}{port}"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v) or v == LOCAL_EXECUTOR_NAME:
            raise ValueError(f"invalid executor name {v!r}")
        return v

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str) -> str:
        return check_ssh_name(v, "hostname")

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        return None if v is None else check_ssh_name(v, "username")

    @field_validator("docker_path")
    @classmethod
    def _docker_path(cls, v: str) -> str:
        if not v or v.startswith("-") or "\0" in v:
            raise ValueError(f"invalid docker path {v!r}")
        return v


class GCPExecutorSpec(SSHExecutorSpec):
    """An SSH executor on a VM that radops provisioned on Google Cloud."""

    kind: Literal["gcp"] = "gcp"  # type: ignore[assignment]
    project: str
    zone: str
    instance: str
    # Pinned when radops created the VM: a restarted VM (new IP, same key) is still recognised.
    host_key_fingerprint: str | None = None


SLURM_RUNTIMES = ("docker", "podman", "pyxis")
DEFAULT_RUNTIME_PATHS = {
    "docker": DEFAULT_DOCKER_PATH,
    "podman": "/usr/bin/podman",
    "pyxis": "srun",
}


class SlurmExecutorSpec(SSHExecutorSpec):
    """A Slurm cluster reached over SSH on its login node: jobs are batch jobs (`sbatch`) whose
    containers run on the compute nodes. `docker_path` is the container runtime's CLI there."""

    kind: Literal["slurm"] = "slurm"  # type: ignore[assignment]
    # A folder the login node and the compute nodes share: each job's script, output and
    # exit record live in JOB_DIR/<job id>.
    job_dir: str
    runtime: Literal["docker", "podman", "pyxis"] = "docker"
    partition: str | None = None  # defaults for every job (`run --partition` overrides)
    account: str | None = None

    def target_text(self) -> str:
        return f"slurm: {super().target_text()}"

    @field_validator("job_dir")
    @classmethod
    def _job_dir(cls, v: str) -> str:
        if not v.startswith("/") or "\0" in v or "\n" in v:
            raise ValueError(f"invalid job folder {v!r}: give an absolute path on the cluster")
        return v.rstrip("/") or "/"

    @field_validator("partition", "account")
    @classmethod
    def _slurm_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or v.startswith("-") or any(c.isspace() for c in v)):
            raise ValueError(f"invalid Slurm name {v!r}")
        return v


ExecutorSpec = Annotated[
    SSHExecutorSpec | GCPExecutorSpec | SlurmExecutorSpec, Field(discriminator="kind")
]
AnyExecutorSpec = LocalExecutorSpec | SSHExecutorSpec | GCPExecutorSpec | SlurmExecutorSpec


class Settings(_Spec):
    """Settings shared by every executor; each one can be overridden by its environment variable."""

    registry: str | None = None
    gcp_project: str | None = None
    gcp_zone: str | None = None
    gcp_api_endpoint: str | None = None
    # Default `--autostop` of `gcp create` (e.g. 60m); `--autostop off` overrides it.
    gcp_autostop: str | None = None
    ssh_persist: str | None = None  # seconds an idle shared SSH connection stays open
    # What remote engines log in to the registry with to pull (ideally a read-only token): the
    # user name, and a file holding the token (or RADOPS_REGISTRY_PULL_TOKEN, never stored).
    registry_pull_username: str | None = None
    registry_pull_token_file: str | None = None


class PendingVM(_Spec):
    """A VM being created: recorded before insert so an interrupted create can be cleaned up."""

    project: str
    zone: str
    instance: str
    created_at: datetime = Field(default_factory=_utcnow)


class ConfigFile(_Spec):
    """The whole config file."""

    schema_version: int = SCHEMA_VERSION
    settings: Settings = Field(default_factory=Settings)
    executors: dict[str, ExecutorSpec] = Field(default_factory=dict)
    gcp_pending: dict[str, PendingVM] = Field(default_factory=dict)


if _PLUGINS_ENV is None:
    del os.environ["PYDANTIC_DISABLE_PLUGINS"]
else:
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = _PLUGINS_ENV


def setting_names() -> list[str]:
    return list(SETTINGS_ENV)


def resolve_setting(settings: Settings, key: str, flag: str | None = None) -> str | None:
    """A setting's value: the flag if given, else its environment variable, else the file."""
    if flag:
        return flag
    env = os.environ.get(SETTINGS_ENV[key])
    if env:
        return env
    value: Any = getattr(settings, key)
    return str(value) if value is not None else None


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
