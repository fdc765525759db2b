"""The executor kinds by name: the one list a new kind is added to (its class is imported
only when an executor of that kind is used: docker-py, paramiko and Google's client are heavy)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from radops.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from radops.executors.base import Executor
    from radops.executors.context import ExecutorContext
    from radops.specs import ExecutorSpec

# kind -> "module:Class"
KINDS = {
    "local": "radops.executors.local.executor:LocalExecutor",
    "ssh": "radops.executors.ssh.executor:SSHExecutor",
    "gcp": "radops.gcp.executor:GCPExecutor",
    "slurm": "radops.executors.slurm.executor:SlurmExecutor",
}


def executor_class(kind: str, name: str | None = None) -> type[Executor]:
    """The class of executor kind `kind`; an unknown kind names the known ones."""
    target = KINDS.get(kind)
    if target is None:
        valid = ", ".join(sorted(KINDS))
        if name is None:
            raise UsageError(f"invalid --kind {kind!r}: use one of {valid}")
        raise ConfigError(f"executor {name!r} has unknown kind {kind!r} (known: {valid})")
    module_name, class_name = target.split(":")
    cls: type[Executor] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open_executor(spec: ExecutorSpec, context: ExecutorContext | None = None) -> Executor:
    """An executor for `spec`, not yet connected."""
    return executor_class(spec.kind, spec.name)(spec, context)
