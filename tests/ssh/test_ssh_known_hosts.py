"""Lines of ~/.ssh/known_hosts that paramiko cannot read: @revoked keys are refused whatever the
flags, @cert-authority lines are skipped with a warning, not a crash. Real sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from radops.errors import HostKeyError
from radops.ssh.config import HostSpec
from radops.ssh.remote import SSHConnection
from tests import rig
from tests.cli_process import describe
from tests.ssh.conftest import CLI


def _add(cli: CLI, *extra: str) -> tuple[int, str]:
    result = cli("executors", "add", "--name", "kh", "--hostname", "rigbox", *extra)
    return result.returncode, result.stderr.decode()


def test_a_revoked_host_key_is_refused_even_when_accepting_new_keys(
    cli: CLI, ssh_home: Path, remote: rig.RemoteHost
) -> None:
    line = remote.known_hosts_line()
    (ssh_home / ".ssh" / "known_hosts").write_text(f"@revoked {line}")
    code, err = _add(cli, "--accept-host-key")
    assert code == 7, err
    assert "is marked @revoked in a known-hosts file; refusing to connect" in err
    assert "Traceback" not in err
    radops_known = Path(cli.env["RADOPS_CONFIG_DIR"]) / "known_hosts"
    assert not radops_known.exists() or remote.known_hosts_line().split()[2] not in (
        radops_known.read_text()
    )


def test_a_cert_authority_line_is_skipped_with_a_warning(
    cli: CLI, ssh_home: Path, remote: rig.RemoteHost
) -> None:
    key_type, key = remote.known_hosts_line().split()[1:3]
    (ssh_home / ".ssh" / "known_hosts").write_text(
        f"@cert-authority *.example.com {key_type} {key}\n{remote.known_hosts_line()}"
    )
    result = cli("executors", "add", "--name", "kh", "--hostname", "rigbox")
    assert result.returncode == 0, describe(result)
    err = result.stderr.decode()
    assert "known_hosts:1: @cert-authority lines are not supported; skipped" in err
    assert "Traceback" not in err


def test_trust_given_for_the_target_only_does_not_reach_a_proxyjump_host(
    ssh_home: Path, remote: rig.RemoteHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new GCP VM without published keys is trusted on first use; a bastion on the way is not.
    (ssh_home / ".ssh" / "config").write_text(
        f"Host bastion\n  HostName 127.0.0.1\n  Port {remote.ssh_port}\n  User root\n"
        f"  IdentityFile {remote.client_key}\n"
        f"Host inner\n  HostName localhost\n  Port {remote.ssh_port}\n  User root\n"
        f"  IdentityFile {remote.client_key}\n  ProxyJump bastion\n"
    )
    monkeypatch.setenv("HOME", str(ssh_home))
    known = tmp_path / "known_hosts"
    target_only = SSHConnection(HostSpec("inner"), known, trust_new_host_key=True,
                                trust_new_hops=False)  # fmt: skip
    try:
        with pytest.raises(HostKeyError, match=r"unknown host key for \[127.0.0.1\]"):
            target_only.run(["true"])
    finally:
        target_only.close()
    everyone = SSHConnection(HostSpec("inner"), known, trust_new_host_key=True)
    try:
        assert everyone.run(["true"])[0] == 0  # --accept-host-key: the user said so for all
    finally:
        everyone.close()
