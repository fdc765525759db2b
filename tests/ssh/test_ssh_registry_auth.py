"""A registry that wants a password: the push uses local credentials, and the remote is logged in
with them through stdin when its pull is refused. The secret never appears in radops' output."""

from __future__ import annotations

import base64
import json
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


def test_private_registry_push_and_remote_login(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost, tmp_path: Path
) -> None:
    cli.env["RADOPS_REGISTRY"] = remote.auth_registry
    cli.env["DOCKER_CONFIG"] = str(_docker_config(tmp_path / "docker", remote.auth_registry))
    result = cli("executors", "run", box, str(job_context), "sh /job/args.sh private", "--json")
    assert result.returncode == 0, result.stderr.decode()
    err = result.stderr.decode()
    assert f"Logging box in to {remote.auth_registry}" in err
    assert rig.AUTH_PASSWORD not in err + result.stdout.decode()
    assert remote.docker_config is not None
    # The login went into a throw-away docker config: no token stays on the remote machine.
    remote_config = remote.docker_config / "config.json"
    if remote_config.exists():
        assert remote.auth_registry not in json.loads(remote_config.read_text()).get("auths", {})
    job = json.loads(result.stdout)["job_id"]
    logs = cli("executors", "logs", box, job, "--follow")
    assert logs.stdout == b"<private>\n"


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
