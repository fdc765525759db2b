"""The executor contract against the Slurm executor (docker runtime) on the real Slurm rig.

Unchanged where it applies. Where it does not (a job's container is removed when the job
ends, so `cp`, `exec`, `top` and images have no meaning there; Slurm keeps no per-line
timestamps), the overrides below check the clear error instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.errors import UsageError
from radops.executors.base import Executor
from radops.executors.model import Job, JobRequest, PrunePlan
from tests import slurm_rig
from tests.executors.contract import ExecutorContract, collect
from tests.slurm.conftest import remove_slurm_job


class TestSlurmExecutor(ExecutorContract):
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

    # Not on Slurm: each says so in one line ------------------------------------------------

    def test_logs_timestamps(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "3"])
        with pytest.raises(UsageError, match="not available on Slurm executors"):
            collect(executor.logs(job.id, timestamps=True))

    def test_copy_from_an_ended_job_streams_its_files_as_tar(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["true"])
        with pytest.raises(UsageError, match="cp is not available on Slurm executors"):
            b"".join(executor.copy_from(job.id, "/out"))

    def test_copy_to_follows_docker_cp_rules(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path, tmp_path: Path
    ) -> None:
        job = started(tools_context, ["true"])
        with pytest.raises(UsageError, match="cp is not available on Slurm executors"):
            executor.copy_to(job.id, tmp_path, "/in")
        with pytest.raises(UsageError, match="cp is not available on Slurm executors"):
            executor.copy_archive_to(job.id, [b""], "/in")

    def test_copy_reaches_files_on_a_mounted_volume(self, executor: Executor) -> None:
        with pytest.raises(UsageError, match="cp is not available"):
            b"".join(executor.copy_from("0123456789ab", "/data"))

    def test_top_reports_running_jobs_and_no_gpus_without_nvidia_smi(
        self, executor: Executor
    ) -> None:
        with pytest.raises(UsageError, match="top is not available on Slurm executors"):
            executor.top()
        with pytest.raises(UsageError, match="exec is not available on Slurm executors"):
            executor.exec("0123456789ab", ["true"])
        with pytest.raises(UsageError, match="forward is not available on Slurm executors"):
            executor.port_opener("0123456789ab", 80)

    def test_prune_plans_ended_jobs_and_the_images_only_they_use(
        self, executor: Executor, started: Callable[..., Job], tmp_path: Path
    ) -> None:
        # Images live on the compute nodes: prune plans and removes job folders only.
        ended, running, plan = self._ended_and_running(executor, started, tmp_path)
        assert plan.images == []
        executor.stop(running.id, timeout=0)
        mine = PrunePlan([j for j in executor.prune_plan().jobs
                          if j.id in (ended.id, running.id)], [])  # fmt: skip
        result = executor.prune(mine)
        assert sorted(result.jobs) == sorted([ended.id, running.id])
        assert not [j for j in executor.jobs() if j.id in (ended.id, running.id)]
        again = executor.prune(mine)
        assert (again.jobs, again.images) == ([], [])
