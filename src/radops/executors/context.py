"""What an executor is given from outside (`ExecutorContext`): connection options, the shared
settings, radops' known-hosts file, its registry, notices. Resolved once by whoever opens the
executor (radops.api); executors never read the config file themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from radops.executors.model import ConnectOptions

if TYPE_CHECKING:
    from radops.config import Settings


def _no_settings() -> Settings:
    """Every setting unset, without pydantic's models (a context for the built-in `local`,
    which reads none, must not load them): the plain settings stand for the model."""
    from radops.plainconfig import PlainSettings

    return cast("Settings", PlainSettings({}))


def _config_dir() -> Path:
    from radops.store import config_dir

    return config_dir()


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor needs from outside, resolved once by whoever opens it (radops.api):
    executors never read the config file themselves."""

    connect: ConnectOptions = field(default_factory=ConnectOptions)
    # The shared settings (file < environment), for what a kind resolves only when it needs it.
    settings: Settings = field(default_factory=_no_settings)
    # radops' own known-hosts file, trusted beside ~/.ssh/known_hosts (where new keys go).
    known_hosts: Path = field(default_factory=lambda: _config_dir() / "known_hosts")
    registry: str | None = None  # where this executor's images go: its own, else the setting
    ssh_persist: int = 0  # seconds a shared SSH connection outlives a command (0: none)
    # What the user should know beside a result: what a queued job waits for, a job folder
    # skipped as no job of radops'. Status lines, never a job's output. None: not told.
    notices: Callable[[str], None] | None = None
