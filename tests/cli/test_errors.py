"""Bad input and broken surroundings: one-line errors, documented exit codes, no tracebacks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import describe, radops
from tests.conftest import BASE_IMAGE, IMAGE_PREFIX

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent.sock"}


def assert_error(result: subprocess.CompletedProcess[Any], code: int, *words: str) -> list[str]:
    """A one-line error (plus an optional hint line) on stderr, nothing on stdout."""
    assert result.returncode == code, describe(result)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("radops: error: "), describe(result)
    assert len(lines) == 1 or lines[1].startswith("hint: "), describe(result)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, describe(result)
    return lines


def session_job_containers(client: Any) -> set[str]:
    containers = client.containers.list(
        all=True, filters={"label": "dev.radops.job-id"}, ignore_removed=True
    )
    return {c.name for c in containers if c.labels["dev.radops.image"].startswith(IMAGE_PREFIX)}


@pytest.fixture
def folder_without_dockerfile(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "main.py").write_text("print(1)\n")
    return folder


# unknown executor / job ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("run", "nope", ".", "true"),
        ("logs", "nope", "0123456789ab"),
        ("jobs", "nope"),
        ("stop", "nope", "0123456789ab"),
        ("show", "nope"),
        ("remove", "nope"),
    ],
)
def test_unknown_executor(args: tuple[str, ...]) -> None:
    assert_error(radops("executors", *args), 3, "unknown executor 'nope'")


@pytest.mark.parametrize("command", ["logs", "stop"])
def test_unknown_job(command: str, docker_client: Any) -> None:
    assert_error(radops("executors", command, "local", "zzzz-unknown"), 3, "zzzz-unknown")


# bad paths and Dockerfiles ---------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    assert_error(radops("executors", "run", "local", str(missing), "true"), 2, str(missing))


def test_path_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "Dockerfile"
    file.write_text(f"FROM {BASE_IMAGE}\n")
    assert_error(radops("executors", "run", "local", str(file), "true"), 2, "not a folder")


def test_folder_without_dockerfile(folder_without_dockerfile: Path) -> None:
    result = radops("executors", "run", "local", str(folder_without_dockerfile), "true")
    lines = assert_error(result, 2, "Dockerfile")
    assert len(lines) == 2  # with a hint about --file


def test_missing_file_option(tools_context: Path) -> None:
    result = radops("executors", "run", "local", str(tools_context), "--file", "GPU.Dockerfile")
    assert_error(result, 2, "GPU.Dockerfile")


# bad options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "word"),
    [
        (("-e", "=value"), "--env"),
        (("-e", "UNSET_IN_THIS_SHELL_123"), "UNSET_IN_THIS_SHELL_123"),
        (("--gpus", "lots"), "--gpus"),
        (("--follow", "--json"), "--follow"),
        (("--transfer", "carrier-pigeon"), "--transfer"),
    ],
)
def test_bad_run_options(options: tuple[str, ...], word: str, tools_context: Path) -> None:
    result = radops("executors", "run", "local", str(tools_context), *options, "--", "true")
    assert_error(result, 2, word)


def test_command_that_cannot_be_split(tools_context: Path) -> None:
    result = radops("executors", "run", "local", str(tools_context), "echo 'unbalanced")
    assert_error(result, 2, "COMMAND")


def test_unknown_option_is_a_usage_error() -> None:
    result = radops("executors", "list", "--bogus")
    assert result.returncode == 2, describe(result)
    assert "--bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_argument_is_a_usage_error() -> None:
    result = radops("executors", "logs", "local")
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr


# the engine ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("run", "local", "{context}", "true"), ("jobs", "local"), ("logs", "local", "abc")],
)
def test_engine_not_reachable(args: tuple[str, ...], tools_context: Path) -> None:
    argv = [a.format(context=tools_context) for a in args]
    lines = assert_error(radops("executors", *argv, env=NO_ENGINE), 5, "Docker")
    assert len(lines) == 2 and "dockerd" in lines[1]  # says how to start it


def test_engine_not_reachable_with_debug_shows_the_traceback() -> None:
    result = radops("executors", "jobs", "local", env={**NO_ENGINE, "RADOPS_DEBUG": "1"})
    assert result.returncode == 5, describe(result)
    assert "Traceback" in result.stderr
    assert "radops: error: " in result.stderr


def test_build_failure(make_context: Callable[..., Path], docker_client: Any) -> None:
    folder = make_context("broken", {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN false\n"})
    result = radops("executors", "run", "local", str(folder), "true")
    assert result.returncode == 6, describe(result)
    assert result.stdout == ""
    assert "radops: error: docker build failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_gpus_are_requested_from_the_engine(
    tools_context: Path, job_ids: list[str], docker_client: Any
) -> None:
    before = session_job_containers(docker_client)
    result = radops("executors", "run", "local", str(tools_context), "--gpus", "all", "-q", "true")
    if result.returncode == 0:  # an engine with GPUs
        job_ids.append(result.stdout.strip())
        return
    # Without GPUs the engine refuses the device request: a clean one-line error, not a crash.
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-2].startswith("radops: error: --gpus: ") and lines[-1].startswith("hint: ")
    assert "NVIDIA Container Toolkit" in result.stderr
    assert "Traceback" not in result.stderr
    assert session_job_containers(docker_client) == before  # a job that never started is gone
