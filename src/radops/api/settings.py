"""The settings every executor shares (registry, GCP project and zone, SSH, ...): each one's
value and where it comes from (its environment variable wins over the config file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from radops.errors import UsageError

if TYPE_CHECKING:
    from radops.store import ExecutorStore


@dataclass(frozen=True)
class SettingValue:
    key: str
    value: str | None
    source: str | None  # "file", "env VAR", or None: not set


def _store(store: ExecutorStore | None) -> ExecutorStore:
    from radops.store import ExecutorStore

    return store or ExecutorStore()


def check_key(key: str) -> str:
    from radops.plainconfig import setting_names

    if key not in setting_names():
        raise UsageError(f"unknown setting {key!r}", f"Settings: {', '.join(setting_names())}.")
    return key


def settings(store: ExecutorStore | None = None) -> list[SettingValue]:
    """Every setting, its value and where that value comes from."""
    from radops.plainconfig import SETTINGS_ENV, resolve_setting

    loaded = _store(store).load().settings
    found = []
    for key, env in SETTINGS_ENV.items():
        value = resolve_setting(loaded, key)
        source = f"env {env}" if os.environ.get(env) else "file" if value else None
        found.append(SettingValue(key, value or None, source))
    return found


def set_setting(key: str, value: str, store: ExecutorStore | None = None) -> None:
    """Set `key` in the config file, once `value` is checked."""
    check_key(key)
    if key == "ssh_persist":
        from radops.ssh.mux import parse_persist

        parse_persist(value)
    if key == "gcp_autostop":
        from radops.gcp.autostop import parse_duration

        parse_duration(value, "gcp_autostop")
    with _store(store).edit() as config:
        setattr(config.settings, key, value)


def unset_setting(key: str, store: ExecutorStore | None = None) -> None:
    """Remove `key` from the config file."""
    check_key(key)
    with _store(store).edit() as config:
        setattr(config.settings, key, None)


def config_path(store: ExecutorStore | None = None) -> str:
    return str(_store(store).path)
