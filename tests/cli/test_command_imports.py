"""What everyday commands import: a regression guard for start-up cost, not a timed test.

Each command runs in a fresh interpreter against an engine that is not there (DOCKER_HOST names
a missing socket), so it parses, reads the config, opens the executor and fails at the first
engine call: every import of that path has happened by then. docker-py (with requests), paramiko
and Google's client are for the paths that use them; Typer's pydantic adapters are for values
that are not plain strings (see radops/cli/coercion.py); pydantic (the config's models) for
commands that read a registered executor's settings: `local` has none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radops.cli.coercion import _NO, identity
from tests.cli_process import modules_after

HEAVY = ("docker", "requests", "urllib3", "paramiko", "google", "typer._adapters", "pydantic")

COMMANDS = [
    ["executors", "jobs", "local"],
    ["executors", "jobs", "local", "--json"],
    ["executors", "logs", "local", "abc123"],
    ["executors", "logs", "local", "abc123", "--tail", "5"],
    ["executors", "inspect", "local", "abc123"],
    ["executors", "stop", "local", "abc123"],
    ["executors", "stop", "local", "abc123", "--timeout", "3"],
    ["executors", "run", "local", "{context}", "true", "-q"],
    ["executors", "run", "local", "{context}/", "--", "sh", "-c", "exit 3"],
    ["--version"],
]


def _heavy_modules(args: list[str], tmp_path: Path) -> tuple[int, list[str], str]:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox:1.36\n")
    args = [a.replace("{context}", str(context)) for a in args]
    env = dict(os.environ)
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    env["RADOPS_CONFIG_DIR"] = str(tmp_path / "config")
    code, modules, stderr = modules_after(args, env, timeout=60)
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    return code, sorted(heavy), stderr


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_everyday_commands_import_no_heavy_module(args: list[str], tmp_path: Path) -> None:
    code, heavy, stderr = _heavy_modules(args, tmp_path)
    # 0 where no engine is needed, 5 (engine unreachable) where it is; never a crash (70).
    assert code in (0, 5), stderr
    assert heavy == [], stderr


def test_listing_executors_reads_the_config_without_docker_or_ssh(tmp_path: Path) -> None:
    code, heavy, stderr = _heavy_modules(["executors", "list"], tmp_path)
    assert code == 0, stderr
    assert [h for h in heavy if h.split(".")[0] != "pydantic"] == [], heavy


def test_local_commands_do_not_need_a_readable_config(tmp_path: Path) -> None:
    """`local` has no settings: a corrupt config file (reported by every command that reads
    it) does not stop a local command, and stays as it was."""
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    garbage = '{"executors": {"a": not json'
    (config / "config.json").write_text(garbage)
    env = dict(os.environ, RADOPS_CONFIG_DIR=str(config))
    env["DOCKER_HOST"] = f"unix://{tmp_path}/none.sock"
    local = subprocess.run(
        [sys.executable, "-m", "radops", "executors", "jobs", "local"],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    assert local.returncode == 5 and "Docker engine" in local.stderr, local.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "radops", "executors", "list"],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 4 and "not valid JSON" in listed.stderr, listed.stderr
    assert (config / "config.json").read_text() == garbage


def test_a_value_typer_must_convert_still_goes_through_typer(tmp_path: Path) -> None:
    """`--tail abc` is not an int: Typer's own adapter says so, with Typer's message."""
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/none.sock")
    env["RADOPS_CONFIG_DIR"] = str(tmp_path / "config")
    result = subprocess.run(
        [sys.executable, "-m", "radops", "executors", "logs", "local", "j", "--tail", "abc"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--tail" in result.stderr and "valid integer" in result.stderr


class _Info:
    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.min, self.max, self.clamp, self.parser = low, high, False, None


class _Descriptor:
    def __init__(self, annotation: object, info: _Info | None = None) -> None:
        self.annotation = annotation
        self.parameter_info = info or _Info()
        self.is_choice = False


@pytest.mark.parametrize(
    ("annotation", "value", "info"),
    [
        (str, "local", None),
        (str, "", None),
        (str, "-x with spaces ünïcode", None),
        (list[str], ("a", "b"), None),
        (list[str], [], None),
        (int, 10, None),
        (int, "007", None),
        (int, "0", _Info(0, 5)),
        (int, "5", _Info(0, 5)),
    ],
)
def test_identities_give_what_typers_adapter_gives(
    annotation: object, value: object, info: _Info | None
) -> None:
    from pydantic import TypeAdapter
    from typer._adapters import build_adapter
    from typer.models import OptionInfo

    kwargs = {} if info is None else {"min": info.min, "max": info.max}
    adapter: TypeAdapter[object] = build_adapter(annotation, OptionInfo(**kwargs))
    ours = identity(_Descriptor(annotation, info), value)
    expected = adapter.validate_python(value)
    assert ours == expected and type(ours) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "value", "info"),
    [
        (int, "+5", None),  # the adapter decides what else is an int, and its messages
        (int, " 5", None),
        (int, "6", _Info(0, 5)),
        (int, 6, _Info(0, 5)),
        (int, "5.0", None),
        (str, b"bytes", None),
        (list[str], "a", None),
        (float, "1.5", None),
        (Path, "/tmp", None),
        (bool, "yes", None),
    ],
)
def test_everything_else_is_left_to_typer(
    annotation: object, value: object, info: _Info | None
) -> None:
    assert identity(_Descriptor(annotation, info), value) is _NO


@pytest.mark.parametrize("value", ["{tmp}", "{tmp}/", "{tmp}/./x/../", "relative/dir", "", "-"])
def test_a_path_is_what_typers_adapter_makes(value: str, tmp_path: Path) -> None:
    import typer

    from radops.cli import app

    value = value.replace("{tmp}", str(tmp_path))
    command = typer.main.get_command(app).commands["executors"].commands["run"]  # type: ignore[attr-defined]
    param = next(p for p in command.params if p.name == "path")
    ours = param.get_runtime_param()._coerce_value(value, param=param, ctx=None)
    from typer._adapters import build_adapter
    from typer._coercion import AdapterRuntimeParam

    adapter = build_adapter(Path, param.type_descriptor.parameter_info)
    theirs = AdapterRuntimeParam(
        parameter_info=param.type_descriptor.parameter_info, annotation=Path, adapter=adapter
    )._coerce_value(value, param=param, ctx=None)
    assert ours == theirs and type(ours) is type(theirs)


REGISTERED = [  # (kind flags for `executors add --no-check`, commands on that executor)
    (["--kind", "ssh"], ["jobs", "logs", "stop", "run"]),
    (["--kind", "slurm", "--job-dir", "/shared/jobs", "--runtime", "docker"], ["jobs", "logs"]),
]


def _on_unreachable_host(kind: list[str], tmp_path: Path) -> dict[str, str]:
    """An environment where executor `far` (of `kind`) is registered on a closed loopback port:
    its commands read the config and open the executor, then fail to connect."""
    env = dict(os.environ, RADOPS_CONFIG_DIR=str(tmp_path / "config"), RADOPS_SSH_PERSIST="0")
    env["HOME"] = str(tmp_path)  # no ~/.ssh/config of the machine's
    added = subprocess.run(
        [sys.executable, "-m", "radops", "executors", "add", "--no-check", "--name", "far",
         "--hostname", "127.0.0.1", "--port", "1", "--username", "nobody", *kind],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return env


@pytest.mark.parametrize(("kind", "commands"), REGISTERED, ids=lambda v: " ".join(v))
def test_commands_on_a_registered_executor_read_the_config_without_pydantic(
    kind: list[str], commands: list[str], tmp_path: Path
) -> None:
    """radops.plainconfig: an SSH or Slurm executor's everyday commands do not import pydantic
    (~80 ms); they fail at the connection, as the refused port makes them."""
    env = _on_unreachable_host(kind, tmp_path)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox:1.36\n")
    args = {"jobs": [], "logs": ["abc123"], "stop": ["abc123"], "run": [str(context), "true"]}
    for command in commands:
        code, modules, stderr = modules_after(["executors", command, "far", *args[command]], env)
        assert code == 5 and "127.0.0.1" in stderr, stderr  # engine unreachable, not a crash
        assert not [m for m in modules if m.split(".")[0] == "pydantic"], (command, stderr)


def test_a_hand_edited_entry_is_read_by_the_models_as_before(tmp_path: Path) -> None:
    """A port written as a string is no plain value: pydantic reads the file (and converts it,
    as it always did); a value it refuses is the same one-line error as before."""
    env = _on_unreachable_host(["--kind", "ssh"], tmp_path)
    path = tmp_path / "config" / "config.json"
    config = json.loads(path.read_text())
    config["executors"]["far"]["port"] = "1"
    path.write_text(json.dumps(config))
    code, modules, stderr = modules_after(["executors", "jobs", "far"], env)
    assert code == 5 and "127.0.0.1" in stderr, stderr
    assert "pydantic" in modules
    config["executors"]["far"]["port"] = "not a port"
    path.write_text(json.dumps(config))
    code, modules, stderr = modules_after(["executors", "jobs", "far"], env)
    assert code == 4, stderr
    where = "is invalid at executors.far.port: Input should be a valid integer"  # path in file
    assert "config file" in stderr and where in stderr, stderr
    assert "Traceback" not in stderr
