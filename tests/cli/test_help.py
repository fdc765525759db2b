"""`--version`, `--help` on every command, and a `--help` that stays light."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import radops
from radops.cli import cleanup as cleanup_cli
from radops.cli import executors as executors_cli
from radops.cli import files as files_cli
from radops.cli import jobs as jobs_cli
from radops.cli import ports as ports_cli
from radops.cli import run as run_cli
from tests.cli_process import describe
from tests.cli_process import radops as run_radops
from tests.conftest import InProcessResult

# The commands the issue asks for; the registered list below must contain at least these.
ISSUE_COMMANDS = ["list", "show", "add", "remove", "run", "logs", "jobs", "stop"]
# The executors group is made of the registration commands and the job commands.
REGISTERED = [
    *executors_cli.app.registered_commands,
    *run_cli.app.registered_commands,
    *jobs_cli.app.registered_commands,
    *files_cli.app.registered_commands,
    *ports_cli.app.registered_commands,
    *cleanup_cli.app.registered_commands,
]
EXECUTOR_COMMANDS = [c.name for c in REGISTERED if c.name]
CONFIG_COMMANDS = ["show", "set", "unset"]
HEAVY_MODULES = ("docker", "paramiko", "google", "pydantic")


def test_version() -> None:
    result = run_radops("--version")
    assert result.returncode == 0, describe(result)
    assert result.stdout == f"radops {radops.__version__}\n"
    assert result.stderr == ""


def test_version_of_the_installed_command() -> None:
    # The console script installed beside this Python (a venv's bin/), else the one on PATH.
    beside = Path(sys.executable).with_name("radops")
    command = str(beside) if beside.exists() else shutil.which("radops")
    assert command, "the `radops` command is not installed"
    result = subprocess.run([command, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"radops {radops.__version__}\n"


def test_no_arguments_shows_help(invoke: Callable[..., InProcessResult]) -> None:
    result = invoke()
    assert "executors" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_executors_help_lists_every_command_with_its_help() -> None:
    assert set(ISSUE_COMMANDS) <= set(EXECUTOR_COMMANDS)
    result = run_radops("executors", "--help")
    assert result.returncode == 0, describe(result)
    for command in EXECUTOR_COMMANDS:
        assert f" {command} " in result.stdout, command
    for info in REGISTERED:
        first_words = " ".join((info.callback.__doc__ or "").split()[:3])
        assert first_words and first_words in result.stdout, info.name


@pytest.mark.parametrize("command", EXECUTOR_COMMANDS)
def test_each_executors_command_help_shows_examples(
    command: str, invoke: Callable[..., InProcessResult]
) -> None:
    result = invoke("executors", command, "--help")
    assert result.returncode == 0, describe(result)
    assert "Examples" in result.stdout
    assert f"radops executors {command}" in result.stdout


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_each_config_command_help_shows_examples(
    command: str, invoke: Callable[..., InProcessResult]
) -> None:
    result = invoke("config", command, "--help")
    assert result.returncode == 0, describe(result)
    assert "Examples" in result.stdout
    assert f"radops config {command}" in result.stdout


def test_run_help_documents_how_command_is_split(invoke: Callable[..., InProcessResult]) -> None:
    result = invoke("executors", "run", "--help")
    text = " ".join(result.stdout.split())
    assert "docker run IMAGE ARGS" in text
    assert "shell" in text


LOADED_AFTER_HELP = """
import json, sys
from radops.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m, mod in sys.modules.items() if mod and m.split('.')[0] in {heavy!r})
sys.stderr.write('\\nLOADED=' + json.dumps(heavy) + '\\n')
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["executors", "--help"], ["executors", "run", "--help"], ["config", "--help"]],
)
def test_help_does_not_import_heavy_sdks(args: list[str]) -> None:
    code = LOADED_AFTER_HELP.format(heavy=set(HEAVY_MODULES))
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert "Usage" in result.stdout, describe(result)
    loaded = json.loads(result.stderr.rsplit("LOADED=", 1)[1])
    assert loaded == []


@pytest.mark.parametrize("command", EXECUTOR_COMMANDS)
def test_help_reads_like_docker_and_git(
    command: str, invoke: Callable[..., InProcessResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Usage lines name arguments plainly (EXECUTOR, not {executor}); flags have no <bool>."""
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke("executors", command, "--help")
    assert result.returncode == 0, describe(result)
    usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert "<bool>" not in result.stdout
