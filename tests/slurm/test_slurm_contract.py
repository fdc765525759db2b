"""The executor contract against the Slurm executor (docker runtime) on the real Slurm rig.

The contract's tests of features Slurm does not offer (a job's container is removed when the
job ends, so `cp`, `exec`, `top` and images have no meaning there; Slurm keeps no per-line
timestamps) are left out by its feature list, and their refusal is checked instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.executors.base import Executor
from radops.executors.model import Job, JobRequest
from radops.executors.slurm.executor import SlurmExecutor
from tests import slurm_rig
from tests.executors.contract import ExecutorContract
from tests.slurm.conftest import remove_slurm_job


class TestSlurmExecutor(ExecutorContract):
    kind_class = SlurmExecutor

    @pytest.fixture
    def executor(self, slurm_executor: Executor) -> Executor:
        return slurm_executor

    @pytest.fixture
    def remove_job(self, slurm: slurm_rig.SlurmCluster) -> Callable[[str], None]:
        return lambda job_id: remove_slurm_job(slurm, job_id)

    @pytest.fixture
    def started(
        self, executor: Executor, remove_job: Callable[[str], None]
    ) -> Iterator[Callable[..., Job]]:
        """As the contract's, and then until Slurm has started the job: on an idle cluster
        that is at once, but a just-submitted job may still be PENDING for a moment."""
        ids: list[str] = []

        def start(context: Path, command: list[str], **fields: Any) -> Job:
            job = executor.run(JobRequest(context=context, command=command, **fields), print)
            ids.append(job.id)
            deadline = time.monotonic() + 60
            while executor.get(job.id).status == "pending":
                assert time.monotonic() < deadline, f"job {job.id} still pending after 60s"
                time.sleep(0.5)
            return job

        yield start
        for job_id in ids:
            remove_job(job_id)
