"""A registry that wants a password: the push uses this machine's credentials, which never go to
the remote; the remote pulls with an explicit pull credential, logged in for that one pull in a
throw-away docker config removed on every way out. No secret appears in radops' output."""

from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path

import pytest

from radops.images.registry import registry_credentials
from tests import rig
from tests.ssh.conftest import CLI


def _docker_config(folder: Path, registry: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    auths = {}
    if registry:
        token = base64.b64encode(f"{rig.AUTH_USER}:{rig.AUTH_PASSWORD}".encode()).decode()
        auths[registry] = {"auth": token}
    (folder / "config.json").write_text(json.dumps({"auths": auths}))
    return folder


def _leftovers() -> set[Path]:
    """Throw-away docker configs on the remote machine (the rig's remote is this machine)."""
    return set(Path(tempfile.gettempdir()).glob("radops-docker.*"))


def _remote_auths(remote: rig.RemoteHost) -> dict[str, object]:
    assert remote.docker_config is not None
    config = remote.docker_config / "config.json"
    return json.loads(config.read_text()).get("auths", {}) if config.exists() else {}


@pytest.fixture
def pushing_cli(cli: CLI, remote: rig.RemoteHost, tmp_path: Path) -> CLI:
    """The CLI with the registry that wants a password, and this machine's push credential."""
    cli.env["RADOPS_REGISTRY"] = remote.auth_registry
    cli.env["DOCKER_CONFIG"] = str(_docker_config(tmp_path / "docker", remote.auth_registry))
    return cli


def _with_pull_credential(cli: CLI, tmp_path: Path) -> None:
    token = tmp_path / "pull-token"
    token.write_text(rig.AUTH_PASSWORD + "\n")
    token.chmod(0o600)
    cli.env["RADOPS_REGISTRY_PULL_USERNAME"] = rig.AUTH_USER
    cli.env["RADOPS_REGISTRY_PULL_TOKEN_FILE"] = str(token)


def test_the_push_credential_never_goes_to_the_remote(
    pushing_cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost, tmp_path: Path
) -> None:
    before = _leftovers()
    result = pushing_cli("executors", "run", box, str(job_context), "sh /job/args.sh private")
    assert result.returncode == 1, result.stderr.decode()
    err = result.stderr.decode()
    assert f"Pushing {remote.auth_registry}/" in err  # this machine's credential pushed
    assert f"{remote.auth_registry} refused the pull on box" in err
    assert "registry_pull_username" in err and "Traceback" not in err
    assert rig.AUTH_PASSWORD not in err + result.stdout.decode()
    assert remote.auth_registry not in _remote_auths(remote)
    assert _leftovers() == before


def test_a_pull_credential_logs_the_remote_in_for_one_pull(
    pushing_cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost, tmp_path: Path
) -> None:
    _with_pull_credential(pushing_cli, tmp_path)
    before = _leftovers()
    result = pushing_cli(
        "executors", "run", box, str(job_context), "sh /job/args.sh private", "--json"
    )
    assert result.returncode == 0, result.stderr.decode()
    err = result.stderr.decode()
    assert f"(logged in to {remote.auth_registry} as {rig.AUTH_USER})" in err
    assert rig.AUTH_PASSWORD not in err + result.stdout.decode()
    # The login went into a throw-away docker config, gone when the script ended.
    assert remote.auth_registry not in _remote_auths(remote)
    assert _leftovers() == before
    job = json.loads(result.stdout)["job_id"]
    logs = pushing_cli("executors", "logs", box, job, "--follow")
    assert logs.stdout == b"<private>\n"


def test_a_client_killed_while_the_remote_pulls_leaves_no_login_behind(
    pushing_cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost, tmp_path: Path
) -> None:
    _with_pull_credential(pushing_cli, tmp_path)
    before = _leftovers()
    proc = pushing_cli.popen("executors", "run", box, str(job_context), "sh /job/args.sh killed")
    assert proc.stderr is not None
    for line in proc.stderr:  # kill -9 as soon as the remote login-and-pull starts
        if b"logged in to" in line:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode == -9
    deadline = time.monotonic() + 60
    while _leftovers() != before and time.monotonic() < deadline:
        time.sleep(0.2)  # the remote script runs on without its client, then cleans up
    assert _leftovers() == before
    assert remote.auth_registry not in _remote_auths(remote)


def test_a_pull_token_without_a_user_name_is_a_usage_error(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    cli.env["RADOPS_REGISTRY"] = remote.auth_registry
    cli.env["RADOPS_REGISTRY_PULL_TOKEN"] = "t0ken"
    result = cli("executors", "run", box, str(job_context), "true")
    assert result.returncode == 2
    assert "without registry_pull_username" in result.stderr.decode()


def test_push_without_credentials_is_refused_clearly(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost, tmp_path: Path
) -> None:
    cli.env["RADOPS_REGISTRY"] = remote.auth_registry
    cli.env["DOCKER_CONFIG"] = str(_docker_config(tmp_path / "docker", None))
    result = cli("executors", "run", box, str(job_context), "true")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert f"push to {remote.auth_registry} failed" in err
    assert "docker login" in err and "Traceback" not in err


def test_github_token_is_used_for_ghcr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    monkeypatch.setenv("GITHUB_ACTOR", "octo")
    assert registry_credentials("ghcr.io") == {"username": "octo", "password": "ghp_example"}
