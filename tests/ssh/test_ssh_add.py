"""`executors add` / `check` / `connect` against a real sshd and a real remote Docker engine."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from tests import rig
from tests.ssh.conftest import CLI
from tests.terminal import Terminal


def _config(cli: CLI) -> dict[str, object]:
    path = Path(cli.env["RADOPS_CONFIG_DIR"]) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {"executors": {}}


def test_add_by_prompts_through_ssh_config_alias(cli: CLI, trusted: None) -> None:
    term = Terminal([sys.executable, "-m", "radops", "executors", "add"], cli.env)
    term.expect("Executor name:")
    term.send("box")
    term.expect("Hostname:")
    term.send("rigbox")  # an alias from ~/.ssh/config, on a non-22 port
    term.expect("Username [root]:")  # the default comes from the alias's User
    term.send("")
    term.expect("Path to docker on the remote machine [/usr/bin/docker]:")
    term.send("")
    assert term.wait() == 0, term.text
    assert "box: Docker" in term.text and "linux/amd64" in term.text
    spec = _config(cli)["executors"]["box"]  # type: ignore[index]
    assert spec == {**spec, "kind": "ssh", "hostname": "rigbox", "username": "root"}
    assert spec["docker_path"] == "/usr/bin/docker"
    assert spec["platform"] == "linux/amd64"


def test_add_reads_piped_answers_without_prompting(cli: CLI, trusted: None) -> None:
    result = cli("executors", "add", "--json", input=b"box\nrigbox\n\n\n")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["username"] == "root"  # stdout is exactly the JSON
    assert "Executor name" not in result.stderr.decode()


def test_unknown_host_key_is_trusted_after_asking_on_a_terminal(
    cli: CLI, remote: rig.RemoteHost
) -> None:
    argv = [
        *(sys.executable, "-m", "radops", "executors", "add", "--name", "box"),
        *("--hostname", "rigbox", "--username", "root", "--docker-path", "/usr/bin/docker"),
    ]
    refused = Terminal(argv, cli.env)
    refused.expect("SHA256:")
    refused.expect("Trust this key and continue connecting? [y/N]:")
    refused.send("n")
    assert refused.wait() == 7
    assert "box" not in _config(cli)["executors"]  # type: ignore[operator]

    accepted = Terminal(argv, cli.env)
    accepted.expect("Trust this key and continue connecting? [y/N]:")
    accepted.send("y")
    assert accepted.wait() == 0, accepted.text
    known = (Path(cli.env["RADOPS_CONFIG_DIR"]) / "known_hosts").read_text()
    assert known.split()[1:3] == remote.known_hosts_line().split()[1:3]


def test_add_by_flags_accepting_an_unknown_host_key(cli: CLI, remote: rig.RemoteHost) -> None:
    result = cli(
        "executors", "add", "--name", "flagged", "--hostname", f"127.0.0.1:{remote.ssh_port}",
        "--username", "root", "--identity-file", str(remote.client_key),
        "--docker-path", "/usr/bin/docker", "--accept-host-key", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["port"] == remote.ssh_port
    known = Path(cli.env["RADOPS_CONFIG_DIR"]) / "known_hosts"
    assert known.read_text().split()[:3] == remote.known_hosts_line().split()[:3]
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    # Trusted from now on: a check needs no flag.
    check = cli("executors", "check", "flagged", "--json")
    assert check.returncode == 0, check.stderr.decode()
    assert json.loads(check.stdout)["architecture"] == "amd64"


def test_unknown_host_key_without_terminal_or_flag_is_refused(cli: CLI) -> None:
    result = cli(
        "executors", "add", "--name", "box", "--hostname", "rigbox", "--docker-path", "docker"
    )
    assert result.returncode == 7
    err = result.stderr.decode()
    assert "unknown host key for [127.0.0.1]" in err and "SHA256:" in err
    assert "--accept-host-key" in err and "Traceback" not in err
    assert "box" not in _config(cli)["executors"]  # type: ignore[operator]


def test_changed_host_key_is_always_refused(
    cli: CLI, remote: rig.RemoteHost, tmp_path: Path
) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key = Path(f"{other}.pub").read_text().split()[:2]
    (cli.home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{remote.ssh_port} {key_type} {key}\n"
    )
    result = cli(
        "executors",
        "add",
        "--name",
        "box",
        "--hostname",
        "rigbox",
        "--accept-host-key",
        "--docker-path",
        "docker",
    )
    assert result.returncode == 7
    err = result.stderr.decode()
    assert "host key" in err and "127.0.0.1" in err and "changed" in err
    assert "box" not in _config(cli)["executors"]  # type: ignore[operator]


def test_unreachable_host_is_not_saved(cli: CLI) -> None:
    port = rig.free_port()
    result = cli(
        "executors",
        "add",
        "--name",
        "gone",
        "--hostname",
        f"127.0.0.1:{port}",
        "--username",
        "root",
        "--docker-path",
        "docker",
    )
    assert result.returncode == 5
    assert f"cannot connect to root@127.0.0.1:{port}: connection refused" in result.stderr.decode()
    assert "gone" not in _config(cli)["executors"]  # type: ignore[operator]


def test_failed_authentication_is_reported(cli: CLI, trusted: None, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    (cli.home / ".ssh" / "config").write_text("")  # no IdentityFile: only the stranger key
    port = next(line for line in (cli.home / ".ssh" / "known_hosts").read_text().split("]:")[1:])
    result = cli(
        "executors", "add", "--name", "box", "--hostname", f"127.0.0.1:{port.split()[0]}",
        "--username", "root", "--identity-file", str(stranger), "--docker-path", "docker",
    )  # fmt: skip
    assert result.returncode == 1
    assert "SSH authentication failed for root@127.0.0.1" in result.stderr.decode()


def test_docker_missing_at_the_given_path(cli: CLI, trusted: None) -> None:
    result = cli(
        "executors",
        "add",
        "--name",
        "box",
        "--hostname",
        "rigbox",
        "--docker-path",
        "/opt/nowhere/docker",
    )
    assert result.returncode == 1
    assert "docker not found at /opt/nowhere/docker" in result.stderr.decode()
    assert "box" not in _config(cli)["executors"]  # type: ignore[operator]


def test_add_no_check_saves_without_connecting(cli: CLI) -> None:
    result = cli(
        "executors",
        "add",
        "--name",
        "later",
        "--hostname",
        "192.0.2.1",
        "--username",
        "u",
        "--docker-path",
        "docker",
        "--no-check",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert _config(cli)["executors"]["later"]["hostname"] == "192.0.2.1"  # type: ignore[index]


def test_connect_print_shows_a_working_ssh_command(cli: CLI, remote: rig.RemoteHost) -> None:
    # Trusted through radops only (--accept-host-key): OpenSSH must trust it too.
    added = cli(
        "executors", "add", "--name", "box", "--hostname", "rigbox",
        "--docker-path", "/usr/bin/docker", "--accept-host-key",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    result = cli("executors", "connect", "box", "--print")
    assert result.returncode == 0, result.stderr.decode()
    argv = shlex.split(result.stdout.decode())
    known = f"{cli.home}/.ssh/known_hosts {cli.env['RADOPS_CONFIG_DIR']}/known_hosts"
    assert argv == [
        "ssh", "-p", str(remote.ssh_port), "-o", f"UserKnownHostsFile={known}",
        "-i", str(remote.client_key), "root@127.0.0.1",
    ]  # fmt: skip
    ran = subprocess.run(
        [*argv[:-1], "-o", "BatchMode=yes", argv[-1], "echo", "connected"],
        env=cli.env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert ran.stdout == "connected\n", ran.stderr


def test_the_unknown_key_hint_of_a_command_without_the_flag_names_one_with_it(
    cli: CLI, box: str, job_context: Path
) -> None:
    (cli.home / ".ssh" / "known_hosts").write_text("")  # as after `ssh-keygen -R`
    hint = f"hint: Check the fingerprint with the machine's owner, then trust it with `radops executors check {box} --accept-host-key`"  # noqa: E501
    for args in (("jobs", box), ("run", box, str(job_context), "true")):
        result = cli("executors", *args)
        err = result.stderr.decode()
        assert result.returncode == 7, err
        assert err.splitlines()[0].startswith("radops: error: unknown host key for"), err
        assert err.splitlines()[1].startswith(hint), err
    # The hint's command exists and does what it says.
    trusting = cli("executors", "check", box, "--accept-host-key")
    assert trusting.returncode == 0, trusting.stderr.decode()
    assert cli("executors", "jobs", box).returncode == 0
