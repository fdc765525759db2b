"""A radops VM as a plain SSH executor, for the provisioner's own work on it (checking a new
VM, arming its watcher): it trusts only the VM's pinned host key and marks no activity."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from radops.specs import SSHExecutorSpec

if TYPE_CHECKING:
    from radops.executors.model import ConnectOptions
    from radops.executors.ssh.executor import SSHExecutor
    from radops.specs import GCPExecutorSpec


def vm_executor(spec: GCPExecutorSpec, connect: ConnectOptions | None = None) -> SSHExecutor:
    """The VM of `spec` over SSH, its pinned key (if any) the only one trusted."""
    from radops.executors.context import ExecutorContext
    from radops.executors.model import ConnectOptions
    from radops.executors.ssh.executor import SSHExecutor

    connect = connect or ConnectOptions()
    if spec.host_key_fingerprint:
        pinned = connect.pinned_host_keys | {spec.host_key_fingerprint}
        connect = dataclasses.replace(connect, pinned_host_keys=pinned)
    login = SSHExecutorSpec(
        name=spec.name, ssh=spec.ssh, docker_path=spec.docker_path, platform=spec.platform
    )
    return SSHExecutor(login, ExecutorContext(connect=connect))
