"""Executor specs: what the config file holds for each executor, one pydantic model per kind.

A kind that logs in somewhere holds an `SSHHost` (composition, not inheritance): SSH, GCP
and Slurm executors are not each other's subclasses, so a check on one kind's spec never
catches another's by accident. On disk the target's fields stay at the top level of the
executor's entry (`hostname`, `port`, ...), as they always were.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from radops.names import LOCAL_EXECUTOR_NAME
from radops.rules import (
    DEFAULT_DOCKER_PATH,
    check_docker_path,
    check_job_dir,
    check_registered_name,
    check_slurm_name,
    check_ssh_name,
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# pydantic looks for plugins in every installed distribution's entry points when it builds
# a model: ~25 ms here, far more in a large ML environment. radops' models use no plugin, so
# each module builds its models with plugin loading off (as Typer does for its own adapters)
# and gives the variable back its value after its last model (here and in radops.config).
def plugins_off() -> str | None:
    """Turn pydantic's plugin lookup off; return PYDANTIC_DISABLE_PLUGINS as it was."""
    previous = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    return previous


def plugins_restore(previous: str | None) -> None:
    """PYDANTIC_DISABLE_PLUGINS as `plugins_off` found it."""
    if previous is None:
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)
    else:
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = previous


_PLUGINS_ENV = plugins_off()


class Spec(BaseModel):
    """A config entry. Unknown keys written by a newer radops survive a read-modify-write."""

    model_config = ConfigDict(extra="allow")


class SSHHost(Spec):
    """A machine radops logs in to: as given; ~/.ssh/config fills in the rest when connecting."""

    hostname: str
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    identity_file: str | None = None

    def text(self) -> str:
        """`user@host:port` as given ([v6]:port for an IPv6 address with a port)."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.hostname}]" if ":" in self.hostname and self.port else self.hostname
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str) -> str:
        return check_ssh_name(v, "hostname")

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        return None if v is None else check_ssh_name(v, "username")


SSH_FIELDS = tuple(SSHHost.model_fields)


class ExecutorSpec(Spec):
    """What every executor entry has: its kind and its name."""

    kind: str
    name: str

    def target_text(self) -> str:
        """Where its jobs run, for people."""
        return ""

    def docker_text(self) -> str:
        """The container CLI it drives, for people."""
        return "docker"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class LocalExecutorSpec(ExecutorSpec):
    """The built-in executor: the Docker engine that DOCKER_HOST (or the default socket) names."""

    kind: Literal["local"] = "local"
    name: str = LOCAL_EXECUTOR_NAME

    def target_text(self) -> str:
        return os.environ.get("DOCKER_HOST", "this machine's Docker engine")


class LoginSpec(ExecutorSpec):
    """An executor behind an SSH login: its `ssh` target is kept flat in the config file."""

    ssh: SSHHost
    docker_path: str = DEFAULT_DOCKER_PATH
    registry: str | None = None
    # The engine's platform (e.g. linux/arm64) as last checked: images are built for it.
    platform: str | None = None
    created_at: datetime = Field(default_factory=_utcnow)

    @model_validator(mode="before")
    @classmethod
    def _fold_target(cls, data: Any) -> Any:
        """`hostname`, `port`, ... at the entry's top level become its `ssh` target."""
        if isinstance(data, dict) and "ssh" not in data:
            target = {key: data[key] for key in SSH_FIELDS if key in data}
            data = {k: v for k, v in data.items() if k not in SSH_FIELDS}
            data["ssh"] = target
        return data

    @model_serializer(mode="wrap")
    def _flatten_target(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        target = data.pop("ssh", None) or {}
        flat = {**{k: data.pop(k) for k in ("kind", "name") if k in data}, **target}
        return {**flat, **data}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_registered_name(v)

    @field_validator("docker_path")
    @classmethod
    def _docker_path(cls, v: str) -> str:
        return check_docker_path(v)

    def target_text(self) -> str:
        return self.ssh.text()

    def docker_text(self) -> str:
        return self.docker_path


class SSHExecutorSpec(LoginSpec):
    """A machine reached over SSH whose Docker CLI lives at `docker_path`."""

    kind: Literal["ssh"] = "ssh"
    # Where `run` builds by default: here (then ships the image; None, the default), or on the
    # executor's engine.
    build: Literal["local", "remote"] | None = None


class GCPExecutorSpec(LoginSpec):
    """A VM that radops provisioned on Google Cloud, reached over SSH."""

    kind: Literal["gcp"] = "gcp"
    build: Literal["local", "remote"] | None = None
    project: str
    zone: str
    instance: str
    # Pinned when radops created the VM: a restarted VM (new IP, same key) is still recognised.
    host_key_fingerprint: str | None = None


class SlurmExecutorSpec(LoginSpec):
    """A Slurm cluster reached over SSH on its login node: jobs are batch jobs (`sbatch`) whose
    containers run on the compute nodes. `docker_path` is the container runtime's CLI there."""

    kind: Literal["slurm"] = "slurm"
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
        return check_job_dir(v)

    @field_validator("partition", "account")
    @classmethod
    def _slurm_name(cls, v: str | None) -> str | None:
        return check_slurm_name(v)


# Every registered kind's spec: the config file's entries are read as one of these by `kind`.
RegisteredSpec = Annotated[
    SSHExecutorSpec | GCPExecutorSpec | SlurmExecutorSpec, Field(discriminator="kind")
]
AnyExecutorSpec = LocalExecutorSpec | SSHExecutorSpec | GCPExecutorSpec | SlurmExecutorSpec


def registered_spec(entry: dict[str, Any]) -> ExecutorSpec:
    """One registered executor's entry as its kind's model (its `kind` picks the model)."""
    for model in get_args(get_args(RegisteredSpec)[0]):
        if model.model_fields["kind"].default == entry.get("kind"):
            spec: ExecutorSpec = model.model_validate(entry)
            return spec
    raise ValueError(f"unknown executor kind {entry.get('kind')!r}")


plugins_restore(_PLUGINS_ENV)
