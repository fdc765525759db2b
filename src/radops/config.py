"""The config file as pydantic models: shared settings, executor specs, VMs being created."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import Field

from radops.plainconfig import SCHEMA_VERSION
from radops.specs import RegisteredSpec, Spec, plugins_off, plugins_restore

_PLUGINS_ENV = plugins_off()  # as in radops.specs: no plugin lookup (~25 ms)


class Settings(Spec):
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


class PendingVM(Spec):
    """A VM being created: recorded before insert so an interrupted create can be cleaned up."""

    project: str
    zone: str
    instance: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class ConfigFile(Spec):
    """The whole config file."""

    schema_version: int = SCHEMA_VERSION
    settings: Settings = Field(default_factory=Settings)
    executors: dict[str, RegisteredSpec] = Field(default_factory=dict)
    gcp_pending: dict[str, PendingVM] = Field(default_factory=dict)


plugins_restore(_PLUGINS_ENV)
