"""`radops executors run/logs/jobs/stop` on the local executor, end to end on the real engine."""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from radops.executors.model import this_user
from tests.cli_process import describe, radops
from tests.conftest import BASE_IMAGE

JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")
TIMESTAMPED_LINE_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (.*)$")
DEMO = Path(__file__).resolve().parents[2] / "demos" / "remote_execution"

StartJob = Callable[..., str]
WaitJob = Callable[[str], int]
InspectJob = Callable[[str], dict[str, Any]]


def run_local(*args: str, **kwargs: Any) -> Any:
    return radops("executors", "run", "local", *args, **kwargs)


def started_id(text: str) -> str:
    """The job id from `run`'s human output ("Job <id> started on ...")."""
    match = re.search(r"Job ([0-9a-f]{12}) started", text)
    assert match, text
    return match[1]


# run -------------------------------------------------------------------------------------------


def test_demo_runs_and_its_logs_show_the_message(job_ids: list[str], wait_job: WaitJob) -> None:
    result = run_local(str(DEMO), "testing remote execution")
    assert result.returncode == 0, describe(result)
    job_id = started_id(result.stdout)
    job_ids.append(job_id)
    assert wait_job(job_id) == 0
    logs = radops("executors", "logs", "local", job_id)
    assert logs.returncode == 0, describe(logs)
    assert logs.stdout.splitlines()[0] == "testing remote execution"
    assert "host: " in logs.stdout


def test_run_prints_the_job_id_and_how_to_read_its_logs(
    tools_context: Path, job_ids: list[str]
) -> None:
    result = run_local(str(tools_context), "true")
    assert result.returncode == 0, describe(result)
    job_id = started_id(result.stdout)
    job_ids.append(job_id)
    assert JOB_ID_RE.match(job_id)
    assert f"radops executors logs local {job_id}" in result.stdout
    assert "Traceback" not in result.stderr


def test_run_quiet_prints_only_the_job_id(tools_context: Path, job_ids: list[str]) -> None:
    result = run_local(str(tools_context), "true", "--quiet")
    assert result.returncode == 0, describe(result)
    job_id = result.stdout[:-1]
    job_ids.append(job_id)
    assert JOB_ID_RE.match(job_id)
    assert result.stdout == job_id + "\n"
    assert result.stderr == ""


def test_run_json(tools_context: Path, job_ids: list[str], inspect_job: InspectJob) -> None:
    result = run_local(str(tools_context), "echo hi", "--json")
    assert result.returncode == 0, describe(result)
    data = json.loads(result.stdout)
    job_ids.append(data["job_id"])
    assert JOB_ID_RE.match(data["job_id"])
    assert data["executor"] == "local"
    assert data["image"] == inspect_job(data["job_id"])["Config"]["Image"]
    assert data["image"].startswith("radops/")
    assert data["command"] == ["echo", "hi"]


def test_job_is_a_labelled_container_that_stays_after_it_ends(
    start_job: StartJob, wait_job: WaitJob, inspect_job: InspectJob, tools_context: Path
) -> None:
    job_id = start_job(tools_context, "sh", "-c", "exit 7", options=("--name", "nightly"))
    assert wait_job(job_id) == 7
    time.sleep(0.5)  # an auto-removed container would be gone by now
    data = inspect_job(job_id)
    assert data["Name"] == f"/radops-{job_id}"
    assert data["HostConfig"]["AutoRemove"] is False
    assert data["State"]["Status"] == "exited" and data["State"]["ExitCode"] == 7
    labels = data["Config"]["Labels"]
    assert labels["dev.radops.job-id"] == job_id
    assert labels["dev.radops.executor"] == "local"
    assert json.loads(labels["dev.radops.command"]) == ["sh", "-c", "exit 7"]
    assert labels["dev.radops.image"] == data["Config"]["Image"]
    assert labels["dev.radops.name"] == "nightly"
    created = datetime.fromisoformat(labels["dev.radops.created-at"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 120


def test_command_string_is_split_like_a_shell_and_never_run_by_one(
    argv_context: Path, job_ids: list[str], wait_job: WaitJob, inspect_job: InspectJob
) -> None:
    expected = ["a", "b c", "d", "$(id)", ";echo", "x"]
    result = run_local(str(argv_context), "a 'b c' \"d\" $(id) ;echo x", "-q")
    assert result.returncode == 0, describe(result)
    job_id = result.stdout.strip()
    job_ids.append(job_id)
    assert inspect_job(job_id)["Config"]["Cmd"] == expected
    assert wait_job(job_id) == 0
    logs = radops("executors", "logs", "local", job_id)
    assert logs.stdout.splitlines() == expected


def test_arguments_after_double_dash_pass_verbatim(
    argv_context: Path, start_job: StartJob, wait_job: WaitJob, inspect_job: InspectJob
) -> None:
    expected = ["arg1", "arg 2", "$HOME", "it's", "--json", "-q"]
    job_id = start_job(argv_context, *expected)
    assert inspect_job(job_id)["Config"]["Cmd"] == expected
    wait_job(job_id)
    assert radops("executors", "logs", "local", job_id).stdout.splitlines() == expected


def test_env_reaches_the_container(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_SHELL", "from the shell")
    monkeypatch.setenv("FROM_SHELL_NOT_PASSED", "secret")
    options = ("-e", "GREETING=hello world", "--env", "FROM_SHELL", "-e", "EMPTY=")
    job_id = start_job(
        tools_context,
        "sh",
        "-c",
        'echo "$GREETING|$FROM_SHELL|${EMPTY-unset}|$FROM_SHELL_NOT_PASSED"',
        options=options,
    )
    wait_job(job_id)
    logs = radops("executors", "logs", "local", job_id)
    assert logs.stdout == "hello world|from the shell||\n"


def test_follow_streams_the_output_and_exits_with_the_jobs_exit_code(
    tools_context: Path, job_ids: list[str]
) -> None:
    script = "echo out; echo err >&2; sleep 1; echo last; exit 3"
    result = run_local(str(tools_context), "--follow", "--", "sh", "-c", script, binary=True)
    job_ids.append(started_id(result.stderr.decode()))
    assert result.returncode == 3, describe(result)
    assert result.stdout == b"out\nlast\n"
    assert b"err\n" in result.stderr


def test_follow_of_a_successful_job_exits_zero(tools_context: Path, job_ids: list[str]) -> None:
    result = run_local(str(tools_context), "-f", "echo done")
    job_ids.append(started_id(result.stderr))
    assert result.returncode == 0, describe(result)
    assert result.stdout == "done\n"


# context-hash caching --------------------------------------------------------------------------


def test_unchanged_folder_is_not_rebuilt_and_changes_make_a_new_image(
    make_context: Callable[..., Path], job_ids: list[str], docker_client: Any
) -> None:
    folder = make_context(
        "cache",
        {
            "Dockerfile": f"FROM {BASE_IMAGE}\nCOPY . /app\n",
            "app.txt": secrets.token_hex(8),
            ".dockerignore": "*.log\nscratch/\n",
        },
    )

    def run_json() -> tuple[str, str]:
        result = run_local(str(folder), "true", "--json")
        assert result.returncode == 0, describe(result)
        data = json.loads(result.stdout)
        job_ids.append(data["job_id"])
        return data["image"], result.stderr

    first_tag, first_err = run_json()
    assert "Building" in first_err
    first_id = docker_client.images.get(first_tag).id

    second_tag, second_err = run_json()
    assert second_tag == first_tag
    assert "up to date" in second_err and "Building" not in second_err
    assert docker_client.images.get(second_tag).id == first_id

    (folder / "train.log").write_text("ignored")
    (folder / "scratch").mkdir()
    (folder / "scratch" / "tmp.bin").write_bytes(b"\0" * 100)
    ignored_tag, ignored_err = run_json()
    assert ignored_tag == first_tag
    assert "up to date" in ignored_err

    (folder / "app.txt").write_text("changed")
    changed_tag, changed_err = run_json()
    assert changed_tag != first_tag
    assert changed_tag.split(":")[0] == first_tag.split(":")[0]
    assert "Building" in changed_err


# logs ------------------------------------------------------------------------------------------


def test_logs_are_byte_for_byte(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    script = "printf '[bold]x[/bold] [red]y\\033[0m caf\\303\\251\\nno newline'; printf 'e\\n' >&2"
    job_id = start_job(tools_context, "sh", "-c", script)
    wait_job(job_id)
    result = radops("executors", "logs", "local", job_id, binary=True)
    assert result.returncode == 0, describe(result)
    assert result.stdout == b"[bold]x[/bold] [red]y\x1b[0m caf\xc3\xa9\nno newline"
    assert result.stderr == b"e\n"


def test_logs_keep_bytes_that_are_not_utf8(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    job_id = start_job(tools_context, "sh", "-c", "printf 'a\\377\\376b\\200'")
    wait_job(job_id)
    result = radops("executors", "logs", "local", job_id, binary=True)
    assert result.returncode == 0, describe(result)
    assert result.stdout == b"a\xff\xfeb\x80"


def test_large_logs_arrive_whole(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    job_id = start_job(tools_context, "seq", "1", "200000")
    wait_job(job_id)
    result = radops("executors", "logs", "local", job_id, binary=True)
    assert result.returncode == 0, describe(result)
    assert result.stdout == "".join(f"{i}\n" for i in range(1, 200001)).encode()


def test_logs_tail(tools_context: Path, start_job: StartJob, wait_job: WaitJob) -> None:
    job_id = start_job(tools_context, "seq", "1", "10")
    wait_job(job_id)
    assert radops("executors", "logs", "local", job_id, "--tail", "3").stdout == "8\n9\n10\n"
    assert radops("executors", "logs", "local", job_id, "-n", "1").stdout == "10\n"


def test_logs_timestamps(tools_context: Path, start_job: StartJob, wait_job: WaitJob) -> None:
    job_id = start_job(tools_context, "seq", "1", "3")
    wait_job(job_id)
    result = radops("executors", "logs", "local", job_id, "--timestamps", binary=True)
    assert result.returncode == 0, describe(result)
    lines = result.stdout.splitlines()
    matches = [TIMESTAMPED_LINE_RE.match(line) for line in lines]
    assert all(matches), lines
    assert [m[3] for m in matches if m] == [b"1", b"2", b"3"]


def test_logs_follow_ends_when_the_job_ends(tools_context: Path, start_job: StartJob) -> None:
    job_id = start_job(tools_context, "sh", "-c", "echo start; sleep 2; echo end")
    began = time.monotonic()
    result = radops("executors", "logs", "local", job_id, "--follow", timeout=60)
    assert result.returncode == 0, describe(result)
    assert result.stdout == "start\nend\n"
    assert time.monotonic() - began >= 1


def test_logs_accept_a_job_id_prefix(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    job_id = start_job(tools_context, "echo", "by prefix")
    wait_job(job_id)
    result = radops("executors", "logs", "local", job_id[:7])
    assert result.returncode == 0, describe(result)
    assert result.stdout == "by prefix\n"


def test_logs_of_an_unknown_job(docker_client: Any) -> None:
    result = radops("executors", "logs", "local", "no-such-job")
    assert result.returncode == 3, describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith("radops: error: ") and "no-such-job" in result.stderr
    assert "Traceback" not in result.stderr


# jobs ------------------------------------------------------------------------------------------


def test_jobs_table_shows_status_and_exit_code(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    job_id = start_job(tools_context, "sh", "-c", "exit 4", options=("--name", "tabled"))
    wait_job(job_id)
    result = radops("executors", "jobs", "local")
    assert result.returncode == 0, describe(result)
    header = result.stdout.splitlines()[0].split()
    assert header[:2] == ["JOB", "ID"] and "STATUS" in header and "EXIT" in header
    row = next(line for line in result.stdout.splitlines() if line.startswith(job_id))
    assert row.split()[:5] == [job_id, "tabled", this_user(), "exited", "4"]  # USER: who ran it
    assert "sh -c 'exit 4'" in row
    assert "radops/" in row


def test_jobs_json(tools_context: Path, start_job: StartJob, wait_job: WaitJob) -> None:
    first = start_job(tools_context, "sh", "-c", "exit 0")
    wait_job(first)
    running = start_job(tools_context, "sleep", "300")
    result = radops("executors", "jobs", "local", "--json")
    assert result.returncode == 0, describe(result)
    found = {job["job_id"]: job for job in json.loads(result.stdout)}
    assert (found[first]["status"], found[first]["exit_code"]) == ("exited", 0)
    assert (found[running]["status"], found[running]["exit_code"]) == ("running", None)
    assert found[running]["command"] == ["sleep", "300"]
    assert found[first]["executor"] == "local"
    assert found[first]["image"].startswith("radops/")


# stop ------------------------------------------------------------------------------------------


def test_stop_a_running_job(
    tools_context: Path, start_job: StartJob, inspect_job: InspectJob
) -> None:
    job_id = start_job(tools_context, "sleep", "300")
    assert inspect_job(job_id)["State"]["Running"] is True
    result = radops("executors", "stop", "local", job_id, "--timeout", "1")
    assert result.returncode == 0, describe(result)
    assert job_id in result.stderr
    state = inspect_job(job_id)["State"]
    assert state["Running"] is False and state["Status"] == "exited"
    listed = json.loads(radops("executors", "jobs", "local", "--json").stdout)
    assert next(j for j in listed if j["job_id"] == job_id)["status"] == "exited"


def test_stopping_an_exited_job_is_not_an_error(
    tools_context: Path, start_job: StartJob, wait_job: WaitJob
) -> None:
    job_id = start_job(tools_context, "sh", "-c", "exit 0")
    wait_job(job_id)
    result = radops("executors", "stop", "local", job_id, "--json")
    assert result.returncode == 0, describe(result)
    data = json.loads(result.stdout)
    assert (data["job_id"], data["status"], data["exit_code"]) == (job_id, "exited", 0)


# Ctrl-C ----------------------------------------------------------------------------------------


def interrupt_after_first_line(*args: str) -> tuple[int, bytes, bytes]:
    """Start `radops ARGS...`, wait for the job's first output line, then press Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "radops", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, first + out, err


def test_ctrl_c_while_following_logs_exits_130_and_leaves_the_job_running(
    tools_context: Path, start_job: StartJob, inspect_job: InspectJob
) -> None:
    job_id = start_job(tools_context, "sh", "-c", "echo ready; sleep 300")
    code, out, err = interrupt_after_first_line("executors", "logs", "local", job_id, "-f")
    assert code == 130, (out, err)
    assert out.startswith(b"ready\n")
    assert b"Traceback" not in err
    assert inspect_job(job_id)["State"]["Running"] is True


def test_ctrl_c_during_run_follow_says_the_job_keeps_running(
    tools_context: Path, job_ids: list[str], inspect_job: InspectJob
) -> None:
    args = ("executors", "run", "local", str(tools_context), "--follow", "--")
    code, out, err = interrupt_after_first_line(*args, "sh", "-c", "echo ready; sleep 300")
    job_id = started_id(err.decode())
    job_ids.append(job_id)
    assert code == 130, (out, err)
    assert out == b"ready\n"
    assert b"keeps running" in err and f"radops executors stop local {job_id}".encode() in err
    assert b"Traceback" not in err
    assert inspect_job(job_id)["State"]["Running"] is True
