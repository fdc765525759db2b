"""The executor contract, unchanged, against the SSH executor and the rig's remote engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.api import open_spec as open_executor
from radops.executors.base import Executor
from radops.executors.model import ConnectOptions
from radops.executors.ssh.executor import SSHExecutor
from radops.specs import SSHExecutorSpec
from tests import rig
from tests.executors.contract import ExecutorContract


def contract_spec(remote: rig.RemoteHost) -> SSHExecutorSpec:
    """The rig host as an SSH executor, by address, user and key (no ssh config)."""
    return SSHExecutorSpec(
        name="contract",
        hostname="127.0.0.1",
        port=remote.ssh_port,
        username="root",
        identity_file=str(remote.client_key),
    )


class TestSSHExecutor(ExecutorContract):
    kind_class = SSHExecutor
    machine_gpus = rig.STANDIN_GPUS

    @pytest.fixture
    def executor(
        self,
        remote: rig.RemoteHost,
        docker_client: Any,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[Executor]:
        monkeypatch.setenv("HOME", str(tmp_path))  # no personal ssh config or known hosts
        # No registry is configured, so images go over SSH (`--transfer auto`).
        trust = ConnectOptions(trust_new_host_key=True)
        with open_executor(contract_spec(remote), trust) as executor:
            yield executor

    @pytest.fixture
    def remove_job(self, remote: rig.RemoteHost) -> Callable[[str], None]:
        def remove(job_id: str) -> None:
            remote.docker("rm", "--force", f"radops-{job_id}")

        return remove
