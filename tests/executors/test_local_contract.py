"""The executor contract against the local Docker engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from radops.api import open_spec as open_executor
from radops.executors.base import Executor
from radops.executors.local.executor import LocalExecutor
from radops.specs import LocalExecutorSpec
from tests.conftest import remove_job_container
from tests.executors.contract import ExecutorContract


class TestLocalExecutor(ExecutorContract):
    kind_class = LocalExecutor

    @pytest.fixture
    def executor(self, docker_client: Any) -> Iterator[Executor]:
        with open_executor(LocalExecutorSpec()) as executor:
            yield executor

    @pytest.fixture
    def remove_job(self, docker_client: Any) -> Callable[[str], None]:
        return lambda job_id: remove_job_container(docker_client, job_id)
