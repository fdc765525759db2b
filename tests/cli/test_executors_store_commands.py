"""`radops executors list/show/add --no-check/remove` and `radops config` on the real store.

Most run the CLI in this process (`radops_here`); prompts on a terminal and concurrent adds run
it as processes of their own, as a user's shell does."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from radops.store import ExecutorStore
from tests.cli_process import Ran, describe, radops_here, spawn
from tests.conftest import InProcessResult
from tests.terminal import Terminal

Result = Ran


def add(*args: str, input: str | None = None) -> Result:
    return radops_here("executors", "add", "--no-check", *args, input=input)


def listed() -> dict[str, dict[str, object]]:
    """What the store holds now (read directly: `list` itself is tested through the CLI)."""
    return {s.name: s.model_dump(mode="json") for s in ExecutorStore().list()}


def assert_usage_error(result: Result | InProcessResult, *words: str) -> None:
    assert result.returncode == 2, describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith("radops: error: "), describe(result)
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr


# list / show -----------------------------------------------------------------------------------


def test_list_always_shows_local() -> None:
    result = radops_here("executors", "list")
    assert result.returncode == 0, describe(result)
    header, *rows = [line for line in result.stdout.splitlines() if line.strip("─ ")]
    assert header.split()[:2] == ["NAME", "KIND"]
    assert [row.split()[:2] for row in rows] == [["local", "local"]]


def test_list_json_is_a_list_of_objects() -> None:
    result = radops_here("executors", "list", "--json")
    assert result.returncode == 0, describe(result)
    data = json.loads(result.stdout)
    assert isinstance(data, list) and all(isinstance(item, dict) for item in data)
    assert data[0]["name"] == "local" and data[0]["kind"] == "local"


def test_show_local() -> None:
    result = radops_here("executors", "show", "local", "--json")
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout) == {"kind": "local", "name": "local"}


# add -------------------------------------------------------------------------------------------


def test_add_with_flags_stores_the_executor(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    result = add(
        "--name",
        "gpu1",
        "--hostname",
        "gpu1.lab:2222",
        "--username",
        "ana",
        "--docker-path",
        "/opt/bin/docker",
        "--identity-file",
        str(key),
    )
    assert result.returncode == 0, describe(result)
    assert "gpu1" in result.stderr
    shown = radops_here("executors", "show", "gpu1", "--json")
    assert shown.returncode == 0, describe(shown)
    spec = json.loads(shown.stdout)
    assert spec["kind"] == "ssh"
    assert (spec["hostname"], spec["port"], spec["username"]) == ("gpu1.lab", 2222, "ana")
    assert spec["docker_path"] == "/opt/bin/docker"
    assert spec["identity_file"] == str(key)
    assert set(listed()) == {"local", "gpu1"}


def test_add_json_prints_the_stored_spec() -> None:
    result = radops_here(
        "executors", "add", "--no-check", "--name", "j1", "--hostname", "h", "--json"
    )
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout)["name"] == "j1"


def test_list_table_and_show_fields_include_an_added_executor() -> None:
    assert add("--name", "box", "--hostname", "box.example", "--username", "bo").returncode == 0
    table = radops_here("executors", "list").stdout
    row = next(line for line in table.splitlines() if line.startswith("box "))
    assert row.split()[1:4] == ["ssh", "bo@box.example", "/usr/bin/docker"]
    fields = radops_here("executors", "show", "box").stdout
    assert "hostname:" in fields and "box.example" in fields


def test_add_reads_piped_answers_in_prompt_order() -> None:
    result = add(input="gpu2\ngpu2.example\nbob\n\n")
    assert result.returncode == 0, describe(result)
    assert result.stdout == ""  # no prompt text mixed into a script's output
    spec = listed()["gpu2"]
    assert (spec["hostname"], spec["username"]) == ("gpu2.example", "bob")
    assert spec["docker_path"] == "/usr/bin/docker"  # an empty answer takes the default


def test_add_prompts_on_a_terminal_in_order() -> None:
    term = Terminal([sys.executable, "-m", "radops", "executors", "add", "--no-check"], os.environ)
    for prompt, answer in [
        ("Executor name", "tty1"),
        ("Hostname", "tty1.example:2022"),
        ("Username", "carol"),
        ("Path to docker on the remote machine [/usr/bin/docker]", ""),
    ]:
        term.expect(prompt)
        term.send(answer)
    assert term.wait() == 0, term.text
    spec = listed()["tty1"]
    assert (spec["hostname"], spec["port"], spec["username"]) == ("tty1.example", 2022, "carol")
    assert spec["docker_path"] == "/usr/bin/docker"


def test_only_missing_values_are_asked_for() -> None:
    result = add(
        "--name", "half", "--username", "eve", input="half.example\n/usr/local/bin/docker\n"
    )
    assert result.returncode == 0, describe(result)
    spec = listed()["half"]
    assert (spec["hostname"], spec["username"]) == ("half.example", "eve")
    assert spec["docker_path"] == "/usr/local/bin/docker"


def test_add_with_closed_stdin_is_a_usage_error() -> None:
    result = add("--name", "nohost", input="")
    assert_usage_error(result, "--hostname")
    assert set(listed()) == {"local"}


def test_add_hostname_with_port_and_matching_port_flag() -> None:
    assert add("--name", "p1", "--hostname", "h.example:2200", "--port", "2200").returncode == 0
    assert add("--name", "p2", "--hostname", "h.example", "--port", "2201").returncode == 0
    assert add("--name", "p3", "--hostname", "[::1]:2202").returncode == 0
    found = listed()
    assert (found["p1"]["hostname"], found["p1"]["port"]) == ("h.example", 2200)
    assert (found["p2"]["hostname"], found["p2"]["port"]) == ("h.example", 2201)
    assert (found["p3"]["hostname"], found["p3"]["port"]) == ("::1", 2202)


def test_add_port_flag_disagreeing_with_host_port_is_refused() -> None:
    result = add("--name", "clash", "--hostname", "h.example:2200", "--port", "22")
    assert_usage_error(result, "--port")
    assert "clash" not in listed()


@pytest.mark.parametrize("port", ["0", "65536", "ssh"])
def test_add_invalid_port_is_refused(port: str, invoke: Callable[..., InProcessResult]) -> None:
    result = invoke(
        "executors", "add", "--no-check", "--name", "badport", "--hostname", "h", "--port", port
    )
    assert result.returncode == 2, describe(result)
    assert "badport" not in listed()


@pytest.mark.parametrize(
    "name", ["x" * 64, "has space", "dot.name", "semi;colon", "", "newline-at-end\n"]
)
def test_add_invalid_name_is_refused(name: str, invoke: Callable[..., InProcessResult]) -> None:
    result = invoke("executors", "add", "--no-check", "--name", name, "--hostname", "h.example")
    assert_usage_error(result, "invalid executor name")
    assert set(listed()) == {"local"}


def test_add_longest_valid_name() -> None:
    name = "a" * 63
    assert add("--name", name, "--hostname", "h.example").returncode == 0
    assert name in listed()


def test_add_invalid_hostname_is_refused() -> None:
    result = add(
        "--name",
        "inj",
        "--hostname",
        "-oProxyCommand=touch /tmp/x",
        "--username",
        "u",
        "--docker-path",
        "/usr/bin/docker",
    )
    assert_usage_error(result, "hostname")
    assert "inj" not in listed()


def test_add_duplicate_name_is_refused_and_keeps_the_first() -> None:
    assert add("--name", "dup", "--hostname", "first.example").returncode == 0
    result = add("--name", "dup", "--hostname", "second.example")
    assert_usage_error(result, "already exists")
    assert listed()["dup"]["hostname"] == "first.example"


def test_local_cannot_be_added_or_removed() -> None:
    assert_usage_error(add("--name", "local", "--hostname", "h.example"), "local")
    assert_usage_error(radops_here("executors", "remove", "local"), "local")
    assert listed()["local"]["kind"] == "local"


# remove ----------------------------------------------------------------------------------------


def test_remove_unregisters_the_executor() -> None:
    assert add("--name", "gone", "--hostname", "h.example").returncode == 0
    result = radops_here("executors", "remove", "gone")
    assert result.returncode == 0, describe(result)
    assert "gone" in result.stderr
    assert "gone" not in listed()
    shown = radops_here("executors", "show", "gone")
    assert shown.returncode == 3, describe(shown)
    again = radops_here("executors", "remove", "gone")
    assert again.returncode == 3, describe(again)
    assert "unknown executor" in again.stderr


# the store file --------------------------------------------------------------------------------


def test_store_file_is_private(isolated_config: Path) -> None:
    assert add("--name", "priv", "--hostname", "h.example").returncode == 0
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o700
    files = [p for p in isolated_config.iterdir() if not p.name.endswith(".lock")]
    assert [p.name for p in files] == ["config.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_twelve_concurrent_adds_are_all_kept() -> None:
    names = [f"c{i:02d}" for i in range(12)]
    processes = [
        spawn("executors", "add", "--no-check", "--name", n, "--hostname", n) for n in names
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"exit {process.returncode}: {out!r} {err!r}"
    assert set(listed()) == {"local", *names}


def test_corrupt_config_is_reported_with_its_path_and_never_overwritten(
    isolated_config: Path,
) -> None:
    isolated_config.mkdir(mode=0o700)
    path = isolated_config / "config.json"
    garbage = b'{"schema_version": 1, "executors": {"x": '
    path.write_bytes(garbage)
    for args in (
        ("executors", "add", "--no-check", "--name", "n", "--hostname", "h"),
        ("executors", "list"),
        ("executors", "remove", "x"),
        ("config", "set", "registry", "r.example"),
    ):
        result = radops_here(*args)
        assert result.returncode == 4, describe(result)
        assert str(path) in result.stderr
        assert "Traceback" not in result.stderr
        assert path.read_bytes() == garbage


def test_xdg_config_home_moves_the_file(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg-elsewhere"
    env = {"RADOPS_CONFIG_DIR": None, "XDG_CONFIG_HOME": str(xdg)}
    result = radops_here(
        "executors", "add", "--no-check", "--name", "x1", "--hostname", "h", env=env
    )
    assert result.returncode == 0, describe(result)
    assert (xdg / "radops" / "config.json").is_file()
    shown = radops_here("config", "show", "--json", env=env)
    assert json.loads(shown.stdout)["path"] == str(xdg / "radops" / "config.json")


def test_radops_config_dir_wins_over_xdg(isolated_config: Path, tmp_path: Path) -> None:
    result = radops_here("executors", "add", "--no-check", "--name", "x2", "--hostname", "h")
    assert result.returncode == 0, describe(result)
    assert (isolated_config / "config.json").is_file()
    assert not (tmp_path / "xdg-config").exists()


# radops config ---------------------------------------------------------------------------------


def config_show() -> dict[str, object]:
    result = radops_here("config", "show", "--json")
    assert result.returncode == 0, describe(result)
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_config_set_and_unset_registry() -> None:
    assert config_show()["registry"] is None
    result = radops_here("config", "set", "registry", "registry.example:5000/team")
    assert result.returncode == 0, describe(result)
    assert config_show()["registry"] == "registry.example:5000/team"
    assert radops_here("config", "unset", "registry").returncode == 0
    assert config_show()["registry"] is None


def test_environment_overrides_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    assert radops_here("config", "set", "registry", "file.example/r").returncode == 0
    monkeypatch.setenv("RADOPS_REGISTRY", "env.example/r")
    assert config_show()["registry"] == "env.example/r"
    table = radops_here("config", "show").stdout
    row = next(line for line in table.splitlines() if line.startswith("registry"))
    assert "env.example/r" in row and "RADOPS_REGISTRY" in row


def test_config_set_unknown_key_is_a_usage_error() -> None:
    assert_usage_error(radops_here("config", "set", "colour", "blue"), "colour")


def test_set_changes_one_setting_and_keeps_the_rest() -> None:
    added = add("--name", "box", "--hostname", "box.example", "--username", "ana",
                "--registry", "ghcr.io/team")  # fmt: skip
    assert added.returncode == 0, describe(added)
    changed = radops_here("executors", "set", "box", "--docker-path", "/usr/local/bin/docker")
    assert changed.returncode == 0, describe(changed)
    assert changed.stderr == "Changed executor box: docker_path /usr/local/bin/docker.\n"
    shown = json.loads(radops_here("executors", "show", "box", "--json").stdout)
    assert (shown["docker_path"], shown["username"], shown["registry"]) == (
        "/usr/local/bin/docker", "ana", "ghcr.io/team",
    )  # fmt: skip
    cleared = radops_here("executors", "set", "box", "--registry", "", "--json")
    assert "registry" not in json.loads(cleared.stdout)
    for args, code, message in (
        (("local", "--docker-path", "/x"), 2, "'local' is built in: it has no settings to change"),
        (("nobody", "--docker-path", "/x"), 3, "unknown executor 'nobody'"),
        (("box",), 2, "nothing to change"),
        (("box", "--docker-path=-rf"), 2, "invalid docker path '-rf'"),
    ):
        result = radops_here("executors", "set", *args)
        assert result.returncode == code, describe(result)
        assert result.stderr.startswith(f"radops: error: {message}"), result.stderr
