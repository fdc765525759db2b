"""Input radops must not trust: host and user names, known-hosts lines it cannot use, a config
folder of another user, and names or labels that would drive the terminal."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from radops.cli.render import print_table, visible
from radops.rules import check_ssh_name
from radops.ssh.hostkeys import edit_known_hosts, known_host_keys, read_known_hosts
from tests import rig
from tests.cli_process import describe
from tests.cli_process import radops as run_radops

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize(
    "name",
    ["$(touch${IFS}/tmp/x)", "`id`", "a;b", "a b", "-oProxyCommand=x", "a\nb", "a\x1bb", "a|b"],
)
def test_shell_and_option_characters_are_refused_in_ssh_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        check_ssh_name(name, "hostname")


@pytest.mark.parametrize("name", ["gpu1", "10.1.2.3", "fe80::1", "gpu-1.lab.example", "ana_b"])
def test_ordinary_ssh_names_pass(name: str) -> None:
    assert check_ssh_name(name, "hostname") == name


def test_a_hostile_hostname_never_reaches_match_exec(tmp_path: Path) -> None:
    marker = Path("/tmp") / f"radops-match-exec-{secrets.token_hex(4)}"
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text('Match exec "test -n %h"\n  User nobody\n')
    result = run_radops(
        "executors", "add", "--name", "evil", "--hostname", f"$(touch${{IFS}}{marker})",
        "--username", "ana", "--no-check", env={"HOME": str(home)},
    )  # fmt: skip
    try:
        assert result.returncode == 2, describe(result)
        assert "invalid hostname" in result.stderr and "Traceback" not in result.stderr
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)


def test_known_hosts_marker_lines_are_skipped_and_revoked_keys_collected(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(
        f"@cert-authority *.example.com ssh-ed25519 {KEY}\n"
        f"@revoked 10.0.0.9 ssh-ed25519 {KEY}\n"
        "# a comment\n"
        "garbage line\n"
        f"10.0.0.8 ssh-ed25519 {KEY}\n"
    )
    usable, revoked = read_known_hosts(path)
    assert usable == [f"10.0.0.8 ssh-ed25519 {KEY}\n"]
    assert revoked == {KEY}
    keys = known_host_keys([path])
    assert keys.lookup("10.0.0.8") is not None and keys.lookup("10.0.0.9") is None


def test_radops_known_hosts_is_rewritten_whole_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "config" / "known_hosts"
    path.parent.mkdir(mode=0o700)
    path.write_text(f"10.0.0.8 ssh-ed25519 {KEY}\n")
    path.chmod(0o644)
    (tmp_path / "config" / "known_hosts.lock").touch()
    with edit_known_hosts(path) as keys:
        keys.add("10.0.0.7", "ssh-ed25519", keys.lookup("10.0.0.8")["ssh-ed25519"])  # type: ignore[index]
    assert path.stat().st_mode & 0o777 == 0o600
    assert {line.split()[0] for line in path.read_text().splitlines()} == {"10.0.0.8", "10.0.0.7"}
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".known_hosts.")] == []


@pytest.mark.root  # adds a user and gives it the config folder
def test_a_config_folder_of_another_user_is_refused(isolated_config: Path) -> None:
    uid = rig.ensure_user(rig.OTHER_USER)
    isolated_config.mkdir(mode=0o700)
    (isolated_config / "config.json").write_text('{"executors": {}}')
    os.chown(isolated_config, uid, uid)
    result = run_radops("executors", "list")
    assert result.returncode == 4, describe(result)
    assert f"config folder {isolated_config} belongs to another user (uid {uid})" in result.stderr


def test_unprintable_characters_are_shown_escaped() -> None:
    assert visible("plain é ☃") == "plain é ☃"
    assert visible("\x1b]0;pwned\x07red\x1b[31m\nx\u202e") == (
        "\\x1b]0;pwned\\x07red\\x1b[31m\\nx\\u202e"
    )


def test_a_job_name_cannot_drive_the_terminal(
    make_context: Callable[..., Path], job_ids: list[str], docker_client: Any
) -> None:
    from tests.conftest import BASE_IMAGE, TOOLS_DOCKERFILE

    hostile = "\x1b]0;pwned\x07\x1b[2J"
    context = make_context("escapes", {"Dockerfile": TOOLS_DOCKERFILE, "marker.txt": "x"})
    refused = run_radops("executors", "run", "local", str(context), "--name", hostile, "--", "true")
    assert refused.returncode == 2 and "invalid --name" in refused.stderr
    assert "\x1b" not in refused.stderr  # the error line shows it escaped too
    # A job whose label has escapes anyway (another tool, an older radops) still lists safely.
    job_id = secrets.token_hex(6)
    labels = {"dev.radops.job-id": job_id, "dev.radops.executor": "local",
              "dev.radops.command": "[]", "dev.radops.name": hostile}  # fmt: skip
    docker_client.api.create_container(BASE_IMAGE, ["true"], name=f"radops-{job_id}", labels=labels)
    job_ids.append(job_id)
    listed = run_radops("executors", "jobs", "local")
    assert listed.returncode == 0, describe(listed)
    line = next(line for line in listed.stdout.splitlines() if line.startswith(job_id))
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in line


def test_print_table_keeps_its_columns_with_a_newline_in_a_cell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table(("A", "B"), [("x\ny", "z")])
    assert capsys.readouterr().out.splitlines() == ["A      B", "x\\ny   z"]


def test_rewriting_radops_known_hosts_keeps_the_lines_it_does_not_manage(tmp_path: Path) -> None:
    path = tmp_path / "config" / "known_hosts"
    path.parent.mkdir(mode=0o700)
    path.write_text(f"# mine\n@revoked 10.0.0.9 ssh-ed25519 {KEY}\n10.0.0.8 ssh-ed25519 {KEY}\n")
    with edit_known_hosts(path) as keys:
        del keys["10.0.0.8"]
    text = path.read_text()
    assert "# mine\n" in text and f"@revoked 10.0.0.9 ssh-ed25519 {KEY}\n" in text
    assert "10.0.0.8" not in text
    assert read_known_hosts(path)[1] == {KEY}


def test_a_machine_without_base64_fails_loudly_never_silently(tmp_path: Path) -> None:
    import subprocess

    from radops.executors.ssh.docker import RemoteDocker
    from radops.ssh.config import SSHTarget
    from radops.ssh.connection import NO_BASE64, command_line
    from radops.ssh.remote import SSHConnection

    only_sh = tmp_path / "bin"
    only_sh.mkdir()
    (only_sh / "sh").symlink_to("/bin/sh")
    ran = subprocess.run(
        ["/bin/sh", "-c", command_line(["docker", "run", "x"])],
        capture_output=True, env={"PATH": str(only_sh)}, check=False,
    )  # fmt: skip
    assert ran.returncode == 127
    assert NO_BASE64.encode() in ran.stderr
    conn = SSHConnection(SSHTarget("m", "gpu1", 22, "ana"), tmp_path / "kh")
    error = RemoteDocker(conn, "/usr/bin/docker", "gpu1").error(127, ran.stderr, "starting")
    assert error.message == f"ana@gpu1: {NO_BASE64.removeprefix('radops: ')}"


def test_a_pull_credential_goes_only_to_the_registry_it_was_set_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from radops.config import Settings
    from radops.images.registry import pull_credential

    monkeypatch.setenv("RADOPS_REGISTRY_PULL_TOKEN", "t0ken")
    settings = Settings(registry="ghcr.io/team", registry_pull_username="ana")
    found = pull_credential(settings, "ghcr.io")
    assert found is not None and (found.server, found.username) == ("ghcr.io", "ana")
    assert pull_credential(settings, "registry.example.com:5000") is None
    assert b"t0ken" not in repr(found).encode()
