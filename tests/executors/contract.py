"""The contract every Executor keeps, tested through the Python API only.

Subclass `ExecutorContract` once per executor kind and provide two fixtures:
`executor` (an open Executor, closed afterwards) and `remove_job` (a callable that deletes a job's
container, for cleanup: the Executor API itself never deletes jobs). The build contexts are local
folders (`argv_context`, `tools_context` from tests/conftest.py), which every executor builds here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.errors import BuildError, NotFoundError, UsageError
from radops.executors.base import EngineReport, Executor, Job, JobRequest, Stream

JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) ")
WEIRD_ARGS = ["a", "b c", "d", "$(id)", ";echo", "x", "", "*", "'q'", "--flag"]
# Rich markup, a tab, UTF-8, and no newline at the end; plus a line on stderr.
MARKUP_SCRIPT = "printf '[bold]x[/bold]\\t\\033[0m caf\\303\\251\\nend'; printf 'to-err\\n' >&2"
MARKUP_STDOUT = b"[bold]x[/bold]\t\x1b[0m caf\xc3\xa9\nend"
# Bytes that are not UTF-8 (octal escapes, as busybox printf reads them).
RAW_SCRIPT = "printf 'a\\377\\376b\\200\\n'"
RAW_STDOUT = b"a\xff\xfeb\x80\n"


def collect(chunks: Iterator[tuple[Stream, bytes]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    for stream, data in chunks:
        assert isinstance(data, bytes)
        out[stream] += data
    return out


class ExecutorContract:
    """Run, inspect, read and stop jobs: what the CLI relies on from every executor."""

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        raise NotImplementedError("subclasses provide an open Executor")

    @pytest.fixture
    def remove_job(self) -> Callable[[str], None]:
        raise NotImplementedError("subclasses provide a way to delete a job's container")

    @pytest.fixture
    def started(
        self, executor: Executor, remove_job: Callable[[str], None]
    ) -> Iterator[Callable[..., Job]]:
        """Start a job through the executor; every job started is removed afterwards."""
        ids: list[str] = []

        def start(context: Path, command: list[str], **fields: Any) -> Job:
            job = executor.run(JobRequest(context=context, command=command, **fields), print)
            ids.append(job.id)
            return job

        yield start
        for job_id in ids:
            remove_job(job_id)

    # run -------------------------------------------------------------------------------------

    def test_run_returns_the_started_job(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 0"])
        assert JOB_ID_RE.match(job.id)
        assert job.executor == executor.name
        assert job.image.startswith("radops/")
        assert job.command == ["sh", "-c", "exit 0"]
        assert job.status in ("created", "running", "exited")
        assert job.created_at is not None

    def test_run_reports_progress_lines(
        self, executor: Executor, remove_job: Callable[[str], None], tools_context: Path
    ) -> None:
        lines: list[str] = []
        job = executor.run(JobRequest(context=tools_context, command=["true"]), lines.append)
        remove_job(job.id)
        assert lines, "run() reported no progress at all"
        assert all(isinstance(line, str) and "\n" not in line for line in lines)

    def test_each_run_is_a_new_job(self, started: Callable[..., Job], tools_context: Path) -> None:
        first = started(tools_context, ["true"])
        second = started(tools_context, ["true"])
        assert first.id != second.id
        assert first.image == second.image  # unchanged context: same content-addressed image

    def test_arguments_reach_the_container_verbatim(
        self, executor: Executor, started: Callable[..., Job], argv_context: Path
    ) -> None:
        job = started(argv_context, WEIRD_ARGS)
        assert executor.wait(job.id) == 0
        output = collect(executor.logs(job.id))
        assert output["stdout"].decode().split("\n")[:-1] == WEIRD_ARGS
        assert executor.get(job.id).command == WEIRD_ARGS

    def test_environment_reaches_the_container(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        env = {"GREETING": "hello world", "QUOTED": 'it\'s "x" $HOME'}
        job = started(tools_context, ["sh", "-c", 'echo "$GREETING|$QUOTED"'], env=env)
        executor.wait(job.id)
        assert collect(executor.logs(job.id))["stdout"] == b'hello world|it\'s "x" $HOME\n'

    def test_name_is_kept_as_a_label(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["true"], name="my experiment")
        assert job.name == "my experiment"
        assert executor.get(job.id).name == "my experiment"

    def test_missing_context_is_a_usage_error(self, executor: Executor, tmp_path: Path) -> None:
        with pytest.raises(UsageError):
            executor.run(JobRequest(context=tmp_path / "absent", command=[]), lambda _: None)

    def test_failing_build_is_a_build_error(self, executor: Executor, tmp_path: Path) -> None:
        context = tmp_path / "broken"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM busybox:1.36\nRUN false\n")
        with pytest.raises(BuildError):
            executor.run(JobRequest(context=context, command=[]), lambda _: None)

    # get / jobs / wait -----------------------------------------------------------------------

    def test_wait_returns_the_exit_code_and_get_reports_it(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 3"])
        assert executor.wait(job.id) == 3
        done = executor.get(job.id)
        assert (done.status, done.exit_code) == ("exited", 3)

    def test_get_accepts_a_unique_prefix(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["true"])
        assert executor.get(job.id[:8]).id == job.id

    @pytest.mark.parametrize("job_id", ["no-such-job", "0123456789ab"])  # a prefix; a full id
    def test_unknown_job_is_not_found(self, executor: Executor, job_id: str) -> None:
        with pytest.raises(NotFoundError):
            executor.get(job_id)
        with pytest.raises(NotFoundError):
            collect(executor.logs(job_id))
        with pytest.raises(NotFoundError):
            executor.wait(job_id)
        with pytest.raises(NotFoundError):
            executor.stop(job_id)

    def test_jobs_lists_started_jobs_newest_first(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        first = started(tools_context, ["sh", "-c", "exit 5"])
        executor.wait(first.id)
        second = started(tools_context, ["true"])
        found = {job.id: job for job in executor.jobs()}
        assert {first.id, second.id} <= set(found)
        assert (found[first.id].status, found[first.id].exit_code) == ("exited", 5)
        assert found[first.id].command == ["sh", "-c", "exit 5"]
        assert found[first.id].image == first.image
        stamps = [j.created_at.timestamp() for j in executor.jobs() if j.created_at]
        assert stamps == sorted(stamps, reverse=True)

    # logs ------------------------------------------------------------------------------------

    def test_logs_are_byte_for_byte_and_keep_streams_apart(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", MARKUP_SCRIPT])
        executor.wait(job.id)
        output = collect(executor.logs(job.id))
        assert output == {"stdout": MARKUP_STDOUT, "stderr": b"to-err\n"}

    def test_logs_keep_bytes_that_are_not_utf8(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", RAW_SCRIPT])
        executor.wait(job.id)
        assert collect(executor.logs(job.id))["stdout"] == RAW_STDOUT

    def test_logs_tail(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "5"])
        executor.wait(job.id)
        assert collect(executor.logs(job.id, tail=2))["stdout"] == b"4\n5\n"
        assert collect(executor.logs(job.id, tail=0))["stdout"] == b""

    def test_logs_timestamps(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "3"])
        executor.wait(job.id)
        lines = collect(executor.logs(job.id, timestamps=True))["stdout"].splitlines()
        assert len(lines) == 3
        for number, line in zip((b"1", b"2", b"3"), lines, strict=True):
            assert TIMESTAMP_RE.match(line), line
            assert line.endswith(b" " + number)

    def test_follow_streams_until_the_job_ends(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "echo start; sleep 2; echo end"])
        began = time.monotonic()
        output = collect(executor.logs(job.id, follow=True))
        assert output["stdout"] == b"start\nend\n"
        assert time.monotonic() - began >= 1  # it waited for the job rather than returning early
        assert executor.get(job.id).status == "exited"

    def test_large_logs_arrive_intact(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "100000"])
        executor.wait(job.id)
        expected = "".join(f"{i}\n" for i in range(1, 100001)).encode()
        assert collect(executor.logs(job.id))["stdout"] == expected

    # stop ------------------------------------------------------------------------------------

    def test_stop_ends_a_running_job(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sleep", "300"])
        assert executor.get(job.id).status == "running"
        result = executor.stop(job.id, timeout=1)
        stopped = result.job
        assert result.was_running
        assert stopped.id == job.id
        assert stopped.status == "exited"
        assert stopped.exit_code is not None

    def test_stopping_an_exited_job_is_not_an_error(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 2"])
        executor.wait(job.id)
        result = executor.stop(job.id, timeout=1)
        again = result.job
        assert not result.was_running
        assert (again.status, again.exit_code) == ("exited", 2)

    # check -----------------------------------------------------------------------------------

    def test_check_reports_the_engine(self, executor: Executor) -> None:
        report = executor.check()
        assert isinstance(report, EngineReport)
        assert report.executor == executor.name
        assert report.server_version and report.server_version != "?"
        assert report.architecture and report.os

    def test_missing_dockerfile_is_a_usage_error(self, executor: Executor, tmp_path: Path) -> None:
        (tmp_path / "Dockerfile").write_text("FROM busybox:1.36\n")
        with pytest.raises(UsageError):
            executor.run(
                JobRequest(context=tmp_path, command=[], dockerfile="Missing.Dockerfile"),
                lambda _: None,
            )
