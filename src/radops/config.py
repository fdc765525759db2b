"""The config file as pydantic models: shared settings, executor specs, VMs being created."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from pydantic import Field

from radops.specs import _PLUGINS_ENV, RegisteredSpec, Spec

SCHEMA_VERSION = 1

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
