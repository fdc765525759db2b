"""Executor kinds, found by name and imported only when used (docker and paramiko are heavy)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from radops.errors import ConfigError

if TYPE_CHECKING:
    from radops.config import AnyExecutorSpec
    from radops.executors.base import EngineReport, Executor

# kind -> "module:Class"
KNOWN_KINDS = {
    "local": "radops.executors.local:LocalExecutor",
    "ssh": "radops.executors.ssh:SSHExecutor",
    "gcp": "radops.executors.ssh:SSHExecutor",
}


def open_executor(spec: AnyExecutorSpec) -> Executor:
    """An executor for `spec`, not yet connected."""
    target = KNOWN_KINDS.get(spec.kind)
    if target is None:
        valid = ", ".join(sorted(KNOWN_KINDS))
        raise ConfigError(f"executor {spec.name!r} has unknown kind {spec.kind!r} (known: {valid})")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    executor: Executor = cls(spec)
    return executor


def check_executor(
    spec: AnyExecutorSpec,
    accept_host_key: bool = False,
    confirm: Callable[[str, str, str], bool] | None = None,
) -> EngineReport:
    """Connect to the executor's engine and report what it runs; raise if it is unusable."""
    with open_executor(spec) as executor:
        executor.trust_new_host_key = accept_host_key
        executor.confirm_host_key = confirm
        return executor.check()
