"""Executor kinds, found by name and imported only when used (docker and paramiko are heavy),
and the operations on registered executors that the CLI calls: open, check, register."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from radops.errors import ConfigError
from radops.executors.base import ConnectOptions

if TYPE_CHECKING:
    from radops.config import AnyExecutorSpec
    from radops.executors.base import EngineReport, Executor
    from radops.store import ExecutorStore

# kind -> "module:Class"
KNOWN_KINDS = {
    "local": "radops.executors.local:LocalExecutor",
    "ssh": "radops.executors.ssh:SSHExecutor",
    "gcp": "radops.executors.ssh:SSHExecutor",
    "slurm": "radops.executors.slurm:SlurmExecutor",
}


def open_executor(spec: AnyExecutorSpec, options: ConnectOptions | None = None) -> Executor:
    """An executor for `spec`, not yet connected; `options` say how a host key may be trusted."""
    target = KNOWN_KINDS.get(spec.kind)
    if target is None:
        valid = ", ".join(sorted(KNOWN_KINDS))
        raise ConfigError(f"executor {spec.name!r} has unknown kind {spec.kind!r} (known: {valid})")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    executor: Executor = cls(spec, options or ConnectOptions())
    return executor


def check_executor(spec: AnyExecutorSpec, options: ConnectOptions | None = None) -> EngineReport:
    """Connect to the executor's engine and report what it runs; raise if it is unusable."""
    with open_executor(spec, options) as executor:
        return executor.check()


def check_registered(
    name: str, options: ConnectOptions | None = None, store: ExecutorStore | None = None
) -> EngineReport:
    """Check executor `name` and record the platform its engine reports (images are built
    for it) if that changed."""
    from radops.config import SSHExecutorSpec
    from radops.store import ExecutorStore

    store = store or ExecutorStore()
    spec = store.get(name)
    report = check_executor(spec, options)
    if isinstance(spec, SSHExecutorSpec) and spec.platform != report.platform:
        store.update_platform(name, report.platform)
    return report


def register(
    spec: AnyExecutorSpec,
    check: bool = True,
    options: ConnectOptions | None = None,
    store: ExecutorStore | None = None,
    detect_runtime: bool = False,
) -> EngineReport | None:
    """Save a new executor; with `check`, only once its engine answered (its platform saved
    with it). Returns what the check found. `detect_runtime` (Slurm): the container runtime
    is the one the check found (pyxis, else docker, else podman)."""
    from radops.config import SlurmExecutorSpec, SSHExecutorSpec
    from radops.store import ExecutorStore

    store = store or ExecutorStore()
    store.ensure_new_name(spec.name)  # before connecting: a taken name costs no login
    report = check_executor(spec, options) if check else None
    if detect_runtime and report is not None and isinstance(spec, SlurmExecutorSpec):
        from radops.executors._slurm_login import detected_runtime

        spec, report = detected_runtime(spec, report)
    if report is not None and isinstance(spec, SSHExecutorSpec):
        spec.platform = report.platform
    store.add(spec)
    return report
