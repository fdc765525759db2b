"""`radops executors run|logs|jobs|stop` in process, over an in-memory executor.

The real CLI, store and error handling run; only the executor is fake (tests/cli/fake_executor.py),
registered as an SSH executor whose kind points at it. These check what the CLI itself owns:
which stream gets what, exit codes, JSON, and how an executor's errors reach the user.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from radops.api.kinds import KINDS
from radops.errors import EngineUnreachableError
from radops.executors.model import Job, Stream, this_user
from radops.specs import SSHExecutorSpec
from radops.store import ExecutorStore
from tests.cli import fake_executor
from tests.cli.fake_executor import STOPPED_EXIT_CODE, FakeEngine
from tests.conftest import InProcessResult, run_main

NAME = "box"
Invoke = Callable[..., InProcessResult]


@dataclass
class BytesResult:
    returncode: int
    stdout: bytes
    stderr: bytes


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """Executor `box` in the isolated config, served by a fresh in-memory engine."""
    engine = FakeEngine()
    monkeypatch.setitem(fake_executor.ENGINES, NAME, engine)
    monkeypatch.setitem(KINDS, "ssh", "tests.cli.fake_executor:FakeExecutor")
    ExecutorStore().add(SSHExecutorSpec(name=NAME, hostname="box.example", username="me"))
    return engine


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "trainer"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM busybox:1.36\n")
    return folder


@pytest.fixture
def invoke_bytes(capsysbinary: pytest.CaptureFixture[bytes]) -> Callable[..., BytesResult]:
    """Like the `invoke` fixture, with stdout and stderr as the bytes written."""

    def run(*args: str) -> BytesResult:
        return BytesResult(*run_main(capsysbinary, args))

    return run


def only_job(engine: FakeEngine) -> Job:
    [job] = engine.jobs.values()
    return job


def called(engine: FakeEngine) -> list[str]:
    return [method for method, _ in engine.calls]


def assert_one_error(result: InProcessResult, code: int, message: str, hint: str | None) -> None:
    """One `radops: error:` line, an optional hint line, nothing on stdout, no traceback."""
    assert result.returncode == code, result
    assert result.stdout == ""
    expected = f"radops: error: {message}\n" + (f"hint: {hint}\n" if hint else "")
    assert result.stderr == expected


# run ------------------------------------------------------------------------------------------


def test_run_prints_the_job_id_and_how_to_read_its_logs(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    result = invoke("executors", "run", NAME, str(context), "python train.py")

    assert result.returncode == 0, result
    job = only_job(engine)
    assert result.stdout == (
        f"Job {job.id} started on {NAME} (image radops/trainer:fake)\n"
        f"Logs: radops executors logs {NAME} {job.id}\n"
    )
    # Off a terminal, progress is plain lines on stderr.
    assert result.stderr == f"Building trainer (fake)\nStarted job {job.id}\n"
    assert called(engine) == ["connect", "run"]  # connected before any progress display
    assert engine.opened == engine.closed == 1


def test_run_quiet_prints_only_the_job_id(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    result = invoke("executors", "run", NAME, str(context), "true", "-q")
    assert result.returncode == 0, result
    assert result.stdout == only_job(engine).id + "\n"
    assert result.stderr == ""


def test_run_json_prints_the_job(invoke: Invoke, engine: FakeEngine, context: Path) -> None:
    result = invoke("executors", "run", NAME, str(context), "echo hi", "--json", "--name", "exp")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    job = only_job(engine)
    assert data == job.to_json()
    assert (data["executor"], data["command"], data["name"]) == (NAME, ["echo", "hi"], "exp")
    assert data["status"] == "running" and data["exit_code"] is None


def test_run_builds_the_request_from_the_arguments(
    invoke: Invoke, engine: FakeEngine, context: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_SHELL", "a b")
    result = invoke(
        "executors", "run", NAME, str(context), "python train.py --tag 'two words'",
        "-e", "LR=3e-4", "-e", "FROM_SHELL", "--gpus", "all", "--name", "exp1",
        "--file", "gpu.Dockerfile", "--transfer", "ssh", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result
    [request] = engine.requests
    assert request.context == context
    assert request.command == ["python", "train.py", "--tag", "two words"]
    assert request.env == {"LR": "3e-4", "FROM_SHELL": "a b"}
    assert (request.gpus, request.name, request.dockerfile, request.transfer) == (
        "all",
        "exp1",
        "gpu.Dockerfile",
        "ssh",
    )


def test_run_passes_several_arguments_after_dashes_as_they_are(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    result = invoke("executors", "run", NAME, str(context), "-q", "--", "sh", "-c", "echo $HOME")
    assert result.returncode == 0, result
    assert engine.requests[0].command == ["sh", "-c", "echo $HOME"]
    assert engine.requests[0].transfer == "auto"


@pytest.mark.parametrize("exit_code", [0, 3])
def test_run_follow_streams_bytes_to_each_stream_and_exits_with_the_jobs_code(
    invoke_bytes: Callable[..., BytesResult], engine: FakeEngine, context: Path, exit_code: int
) -> None:
    engine.next_output = [
        ("stdout", b"epoch 1\n"),
        ("stderr", b"\xff\xfe not utf-8\n"),
        ("stdout", b"\x00\x01raw\r\n"),
    ]
    engine.next_exit_code = exit_code

    result = invoke_bytes("executors", "run", NAME, str(context), "train", "--follow")

    assert result.returncode == exit_code
    job = only_job(engine)
    assert result.stdout == b"epoch 1\n\x00\x01raw\r\n"  # the job's stdout and nothing else
    started = f"Job {job.id} started on {NAME} (image radops/trainer:fake)\n".encode()
    assert result.stderr.endswith(started + b"\xff\xfe not utf-8\n")
    assert b"Logs:" not in result.stderr
    assert engine.calls[-2:] == [("logs", (job.id, True, None, False)), ("wait", (job.id,))]


def test_run_follow_with_a_connection_lost_half_way_keeps_the_output_then_errors(
    invoke_bytes: Callable[..., BytesResult], engine: FakeEngine, context: Path
) -> None:
    engine.next_output = [("stdout", b"before the drop\n")]
    engine.next_log_error = EngineUnreachableError("lost the SSH connection to box", "Retry.")

    result = invoke_bytes("executors", "run", NAME, str(context), "train", "-f", "-q")

    assert result.returncode == 5
    assert result.stdout == only_job(engine).id.encode() + b"\nbefore the drop\n"
    assert result.stderr == b"radops: error: lost the SSH connection to box\nhint: Retry.\n"
    assert "wait" not in called(engine)
    assert engine.closed == 1


def test_run_follow_and_json_together_is_a_usage_error(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    result = invoke("executors", "run", NAME, str(context), "true", "--follow", "--json")
    assert_one_error(result, 2, "--follow and --json cannot be combined", None)
    assert engine.opened == 0 and engine.jobs == {}


def test_run_with_an_unknown_transfer_is_a_usage_error(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    result = invoke("executors", "run", NAME, str(context), "true", "--transfer", "carrier-pigeon")
    assert_one_error(
        result, 2, "invalid --transfer 'carrier-pigeon': use auto, registry, tunnel or ssh", None
    )
    assert engine.opened == 0 and engine.jobs == {}


def test_run_with_an_unsplittable_command_is_a_usage_error(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    result = invoke("executors", "run", NAME, str(context), "echo 'unclosed")
    assert_one_error(
        result, 2, 'cannot split COMMAND "echo \'unclosed": No closing quotation', None
    )
    assert engine.opened == 0


def test_run_when_the_engine_is_unreachable_is_one_line_with_its_exit_code(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    engine.fail_with = EngineUnreachableError("cannot reach Docker on box", "Is dockerd running?")
    result = invoke("executors", "run", NAME, str(context), "true")
    assert_one_error(result, 5, "cannot reach Docker on box", "Is dockerd running?")
    assert engine.jobs == {}
    assert engine.closed == 1


def test_a_bug_in_an_executor_is_an_internal_error_without_traceback(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    engine.fail_with = RuntimeError("boom")
    result = invoke("executors", "run", NAME, str(context), "true")
    assert_one_error(
        result,
        70,
        "internal error: RuntimeError: boom",
        "Rerun with RADOPS_DEBUG=1 for the traceback, and please report it.",
    )


# logs -----------------------------------------------------------------------------------------


def test_logs_writes_each_stream_byte_for_byte(
    invoke_bytes: Callable[..., BytesResult], engine: FakeEngine
) -> None:
    job = engine.add_job(["train"], status="exited", exit_code=0)
    chunks: list[tuple[Stream, bytes]] = [
        ("stdout", b"plain\n"),
        ("stderr", b"\x1b[31mred\x1b[0m\n"),
        ("stdout", bytes(range(256))),
        ("stderr", b"no newline at the end"),
        ("stdout", b""),
    ]
    engine.output[job.id] = chunks

    result = invoke_bytes("executors", "logs", NAME, job.id)

    assert result.returncode == 0
    assert result.stdout == b"plain\n" + bytes(range(256))
    assert result.stderr == b"\x1b[31mred\x1b[0m\nno newline at the end"
    assert engine.calls == [("logs", (job.id, False, None, False))]


def test_logs_passes_follow_tail_and_timestamps_and_accepts_an_id_prefix(
    invoke: Invoke, engine: FakeEngine
) -> None:
    job = engine.add_job(["train"])
    engine.output[job.id] = [("stdout", b"last line\n")]
    result = invoke("executors", "logs", NAME, job.id[:4], "--follow", "--tail", "5", "-t")
    assert result.returncode == 0, result
    assert result.stdout == "last line\n"
    assert engine.calls == [("logs", (job.id[:4], True, 5, True))]


@pytest.mark.parametrize("command", ["logs", "stop"])
def test_an_unknown_job_is_not_found_in_one_line(
    invoke: Invoke, engine: FakeEngine, command: str
) -> None:
    engine.add_job(["train"])
    result = invoke("executors", command, NAME, "deadbeef0000")
    assert_one_error(
        result,
        3,
        f"no job 'deadbeef0000' on executor '{NAME}'",
        f"List its jobs with `radops executors jobs {NAME}`.",
    )
    assert engine.opened == engine.closed == 1


def test_an_unknown_executor_is_not_found_and_opens_nothing(
    invoke: Invoke, engine: FakeEngine
) -> None:
    result = invoke("executors", "logs", "nope", "0123456789ab")
    assert_one_error(
        result, 3, "unknown executor 'nope'", "List executors with `radops executors list`."
    )
    assert engine.opened == 0


# jobs -----------------------------------------------------------------------------------------


def test_jobs_json_lists_every_job_newest_first(invoke: Invoke, engine: FakeEngine) -> None:
    old = engine.add_job(["old"], status="exited", exit_code=1, age=timedelta(hours=3))
    new = engine.add_job(["new", "two words"], name="exp")
    mid = engine.add_job(["mid"], status="exited", exit_code=0, age=timedelta(minutes=5))

    result = invoke("executors", "jobs", NAME, "--json")

    assert result.returncode == 0, result
    expected = [replace(j, executor=NAME).to_json() for j in (new, mid, old)]
    assert json.loads(result.stdout) == expected
    assert result.stderr == ""


def test_jobs_table_has_one_row_per_job_with_status_and_exit_code(
    invoke: Invoke, engine: FakeEngine
) -> None:
    old = engine.add_job(
        ["python", "a.py"], status="exited", exit_code=2, age=timedelta(hours=3), user="bo@lab"
    )
    new = engine.add_job(["sleep", "60"], name="nap", user=this_user())

    result = invoke("executors", "jobs", NAME)

    assert result.returncode == 0, result
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "JOB", "ID", "NAME", "USER", "STATUS", "EXIT", "AGE", "COMMAND", "IMAGE",
    ]  # fmt: skip
    assert len(rows) == 2
    assert rows[0].split()[:4] == [new.id, "nap", this_user(), "running"]
    assert rows[1].split()[:6] == [old.id, "bo@lab", "exited", "2", "3h", "python"]
    mine = invoke("executors", "jobs", NAME, "--mine", "--json")
    assert [job["job_id"] for job in json.loads(mine.stdout)] == [new.id]


def test_a_long_name_is_clipped_in_the_table_and_a_bad_one_refused(
    invoke: Invoke, engine: FakeEngine, context: Path
) -> None:
    engine.add_job(["true"], name="x" * 150)
    row = invoke("executors", "jobs", NAME).stdout.splitlines()[1]
    assert "x" * 39 + "…" in row and "x" * 41 not in row
    for name, message in (
        ("two\nlines", "invalid --name 'two\\nlines': use printable text on one line"),
        ("y" * 201, "--name is 201 characters long; at most 200"),
    ):
        result = invoke("executors", "run", NAME, str(context), "--name", name, "--", "true")
        assert_one_error(result, 2, message, None)


def test_a_unique_name_works_where_a_job_id_does(invoke: Invoke, engine: FakeEngine) -> None:
    job = engine.add_job(["sleep", "60"], name="resnet")
    engine.add_job(["sleep", "60"], name="twin")
    engine.add_job(["sleep", "60"], name="twin")
    stopped = invoke("executors", "stop", NAME, "resnet")
    assert stopped.stderr.startswith(f"Stopped job {job.id}")
    ambiguous = invoke("executors", "stop", NAME, "twin")
    assert_one_error(
        ambiguous, 2, f"2 jobs on '{NAME}' are named 'twin'",
        f"Give the job id (see `radops executors jobs {NAME}`).",
    )  # fmt: skip


def test_jobs_on_an_empty_executor_says_so_on_stderr(invoke: Invoke, engine: FakeEngine) -> None:
    result = invoke("executors", "jobs", NAME)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", f"No jobs on {NAME}.\n")
    json_result = invoke("executors", "jobs", NAME, "--json")
    assert json.loads(json_result.stdout) == []


# stop -----------------------------------------------------------------------------------------


def test_stop_a_running_job_says_stopped_with_its_exit_code(
    invoke: Invoke, engine: FakeEngine
) -> None:
    job = engine.add_job(["sleep", "300"])

    result = invoke("executors", "stop", NAME, job.id[:6], "--timeout", "3")

    assert result.returncode == 0, result
    assert result.stdout == ""
    assert result.stderr == f"Stopped job {job.id} (exit code {STOPPED_EXIT_CODE}).\n"
    assert engine.calls == [("stop", (job.id[:6], 3))]
    assert engine.jobs[job.id].status == "exited"


def test_stop_a_job_that_already_ended_says_it_was_not_running(
    invoke: Invoke, engine: FakeEngine
) -> None:
    job = engine.add_job(["true"], status="exited", exit_code=0)
    result = invoke("executors", "stop", NAME, job.id)
    assert result.returncode == 0, result
    assert result.stdout == ""
    assert result.stderr == f"Job {job.id} was not running (exited).\n"
    assert engine.jobs[job.id].exit_code == 0


def test_stop_twice_stops_once(invoke: Invoke, engine: FakeEngine) -> None:
    job = engine.add_job(["sleep", "300"])
    first = invoke("executors", "stop", NAME, job.id)
    second = invoke("executors", "stop", NAME, job.id)
    assert first.stderr.startswith(f"Stopped job {job.id}")
    assert second.stderr == f"Job {job.id} was not running (exited).\n"
    assert engine.calls == [("stop", (job.id, 10)), ("stop", (job.id, 10))]  # default timeout


def test_stop_json_prints_the_job_as_it_is_afterwards(invoke: Invoke, engine: FakeEngine) -> None:
    job = engine.add_job(["sleep", "300"])
    result = invoke("executors", "stop", NAME, job.id, "--json")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data == replace(engine.jobs[job.id], executor=NAME).to_json()
    assert (data["status"], data["exit_code"]) == ("exited", STOPPED_EXIT_CODE)
    assert result.stderr == ""


# rm / prune ----------------------------------------------------------------------------------


def test_rm_removes_each_job_and_fails_for_the_one_that_runs(
    invoke: Invoke, engine: FakeEngine
) -> None:
    ended = engine.add_job(["true"], status="exited", exit_code=0)
    running = engine.add_job(["sleep", "300"])
    result = invoke("executors", "rm", NAME, running.id[:6], ended.id)
    assert result.returncode == 2, result  # the first failure's exit code, after trying all
    assert result.stderr.splitlines() == [
        f"radops: error: job {running.id} on '{NAME}' is running",
        f"hint: Stop it first (`radops executors stop {NAME} {running.id}`), or remove it with "
        "--force.",
        f"Removed job {ended.id} (exited).",
    ]
    assert list(engine.jobs) == [running.id]
    forced = invoke("executors", "rm", NAME, running.id, "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)[0]["job_id"] == running.id
    assert engine.jobs == {}


def test_prune_asks_unless_yes_and_reports_what_it_freed(
    invoke: Invoke, engine: FakeEngine
) -> None:
    old = engine.add_job(["true"], status="exited", exit_code=0, age=timedelta(days=9))
    young = engine.add_job(["true"], status="exited", exit_code=1, age=timedelta(hours=1))
    running = engine.add_job(["sleep", "300"])
    engine.images = ["radops/fake:0123456789ab", "radops/old:0123456789ab"]
    refused = invoke("executors", "prune", NAME)  # stdin is not a terminal: no question
    assert refused.returncode == 2 and "Pass --yes." in refused.stderr
    assert len(engine.jobs) == 3

    result = invoke("executors", "prune", NAME, "--until", "7d", "--yes")
    assert result.returncode == 0, result
    assert result.stdout == f"Removed 1 job from {NAME}; freed 0 B.\n"
    assert set(engine.jobs) == {young.id, running.id} and old.id not in engine.jobs

    result = invoke("executors", "prune", NAME, "--images", "--yes", "--json")
    assert json.loads(result.stdout) == {
        "jobs": [young.id], "space_freed": 1_000_000, "images": [
            {"id": "radops/old:0123456789ab", "refs": ["radops/old:0123456789ab"],
             "size": 1_000_000},
        ],
    }  # fmt: skip
    assert engine.images == ["radops/fake:0123456789ab"]  # the running job's image stays
    nothing = invoke("executors", "prune", NAME, "--yes")
    assert nothing.stderr == f"Nothing to prune on {NAME}.\n"
    bad = invoke("executors", "prune", NAME, "--until", "soon")
    assert_one_error(bad, 2, "invalid --until 'soon': use a duration such as 12h, 7d or 2w", None)


# cp ------------------------------------------------------------------------------------------


def test_cp_needs_exactly_one_job_side(invoke: Invoke, engine: FakeEngine) -> None:
    for args in (("./a", "./b"), ("3f2a:/a", "77b0:/b")):
        result = invoke("executors", "cp", NAME, *args)
        assert_one_error(
            result, 2, "give one side as JOB_ID:PATH and the other as a local path (or -)",
            "e.g. radops executors cp gpu1 3f2a:/workspace/out ./out",
        )  # fmt: skip
    assert engine.calls == []


def test_cp_from_a_job_follows_docker_cp_rules_here(
    invoke: Invoke, engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = engine.add_job(["train"], status="exited", exit_code=0)
    engine.files["/out/model.pt"] = b"weights"
    monkeypatch.chdir(tmp_path)
    assert invoke("executors", "cp", NAME, f"{job.id}:/out/model.pt", "best.pt").returncode == 0
    assert (tmp_path / "best.pt").read_bytes() == b"weights"  # a new name: the file becomes it
    (tmp_path / "ckpt").mkdir()
    assert invoke("executors", "cp", NAME, f"{job.id}:/out/model.pt", "ckpt").returncode == 0
    assert (tmp_path / "ckpt" / "model.pt").read_bytes() == b"weights"  # a folder: into it
    missing = invoke("executors", "cp", NAME, f"{job.id}:/out/model.pt", "nope/x.pt")
    assert_one_error(missing, 2, f"the destination's folder {str(tmp_path / 'nope')!r} does not "
                     "exist", None)  # fmt: skip
    gone = invoke("executors", "cp", NAME, f"{job.id}:/out/other", "x")
    assert_one_error(gone, 3, f"no '/out/other' in job {job.id}", None)


def test_inspect_shows_one_job_with_its_options(invoke: Invoke, engine: FakeEngine) -> None:
    job = engine.add_job(["python", "train.py"], name="resnet", user="ana@laptop")
    engine.jobs[job.id] = replace(job, options={"shm_size": "8g", "volumes": ["/d:/d:ro"]})
    result = invoke("executors", "inspect", NAME, "resnet")
    assert result.returncode == 0, result
    shown = {k: v.strip() for k, v in (line.split(":", 1) for line in result.stdout.splitlines())}
    expected = {
        "job": job.id, "name": "resnet", "user": "ana@laptop", "status": "running",
        "command": "python train.py", "shm_size": '"8g"', "volumes": '["/d:/d:ro"]',
    }  # fmt: skip
    assert {k: shown.get(k) for k in expected} == expected
    as_json = json.loads(invoke("executors", "inspect", NAME, job.id[:5], "--json").stdout)
    assert as_json["options"] == {"shm_size": "8g", "volumes": ["/d:/d:ro"]}
