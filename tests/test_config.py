"""Executor specs, names, host:port parsing and settings resolution."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from radops.config import ConfigFile, Settings
from radops.errors import UsageError
from radops.plainconfig import resolve_setting
from radops.rules import DEFAULT_DOCKER_PATH, split_host_port, validate_executor_name
from radops.specs import GCPExecutorSpec, SSHExecutorSpec


@pytest.mark.parametrize("name", ["a", "gpu1", "GPU_box-2", "x" * 63, "0", "-", "_"])
def test_valid_executor_names(name: str) -> None:
    assert validate_executor_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 64, "has space", "dot.name", "slash/name", "ünicode", "tab\tname", "a\n"]
)
def test_invalid_executor_names(name: str) -> None:
    with pytest.raises(UsageError, match="invalid executor name"):
        validate_executor_name(name)


def test_ssh_spec_defaults() -> None:
    spec = SSHExecutorSpec(name="gpu1", hostname="gpu1.lab")
    assert spec.kind == "ssh"
    assert spec.docker_path == DEFAULT_DOCKER_PATH == "/usr/bin/docker"
    assert spec.ssh.port is None and spec.ssh.username is None
    assert spec.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "local"},
        {"name": "bad name"},
        {"hostname": "-oProxyCommand=sh"},
        {"hostname": "two words"},
        {"hostname": ""},
        {"username": "-l"},
        {"username": "a b"},
        {"docker_path": "-v"},
        {"docker_path": ""},
        {"port": 0},
        {"port": 65536},
    ],
)
def test_ssh_spec_rejects_unsafe_or_invalid_fields(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SSHExecutorSpec.model_validate({"name": "gpu1", "hostname": "gpu1.lab", **fields})


def test_config_file_picks_the_spec_class_by_kind() -> None:
    config = ConfigFile.model_validate(
        {
            "executors": {
                "a": {"kind": "ssh", "name": "a", "hostname": "h"},
                "b": {
                    "kind": "gcp",
                    "name": "b",
                    "hostname": "1.2.3.4",
                    "project": "p",
                    "zone": "z",
                    "instance": "i",
                },
            }
        }
    )
    assert type(config.executors["a"]) is SSHExecutorSpec
    assert type(config.executors["b"]) is GCPExecutorSpec


def test_config_file_keeps_unknown_keys_from_newer_versions() -> None:
    raw = {
        "schema_version": 1,
        "future_top": {"x": 1},
        "executors": {"a": {"kind": "ssh", "name": "a", "hostname": "h", "future": True}},
    }
    dumped = ConfigFile.model_validate(raw).model_dump(mode="json")
    assert dumped["future_top"] == {"x": 1}
    assert dumped["executors"]["a"]["future"] is True


@pytest.mark.parametrize(
    ("hostname", "port", "expected"),
    [
        ("gpu1.lab", None, ("gpu1.lab", None)),
        ("gpu1.lab", 2200, ("gpu1.lab", 2200)),
        ("gpu1.lab:2222", None, ("gpu1.lab", 2222)),
        ("gpu1.lab:2222", 2222, ("gpu1.lab", 2222)),
        ("10.0.0.5:22", None, ("10.0.0.5", 22)),
        ("[::1]:2200", None, ("::1", 2200)),
        ("[fe80::1]", None, ("fe80::1", None)),
        ("fe80::1", None, ("fe80::1", None)),
        ("ssh-alias", None, ("ssh-alias", None)),
    ],
)
def test_split_host_port(hostname: str, port: int | None, expected: tuple[str, int | None]) -> None:
    assert split_host_port(hostname, port) == expected


@pytest.mark.parametrize(
    ("hostname", "port"),
    [
        ("gpu1.lab:2222", 22),
        ("gpu1.lab:abc", None),
        ("gpu1.lab:0", None),
        ("gpu1.lab:65536", None),
        ("gpu1.lab:", None),
        ("[::1]:99999", None),
    ],
)
def test_split_host_port_rejects(hostname: str, port: int | None) -> None:
    with pytest.raises(UsageError):
        split_host_port(hostname, port)


def test_resolve_setting_prefers_flag_then_env_then_file(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(registry="file.example/r")
    assert resolve_setting(settings, "registry") == "file.example/r"
    monkeypatch.setenv("RADOPS_REGISTRY", "env.example/r")
    assert resolve_setting(settings, "registry") == "env.example/r"
    assert resolve_setting(settings, "registry", flag="flag.example/r") == "flag.example/r"


def test_resolve_setting_unset_everywhere_is_none() -> None:
    assert resolve_setting(Settings(), "gcp_zone") is None


def test_each_setting_has_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, env in {
        "registry": "RADOPS_REGISTRY",
        "gcp_project": "RADOPS_GCP_PROJECT",
        "gcp_zone": "RADOPS_GCP_ZONE",
        "gcp_api_endpoint": "RADOPS_GCP_API_ENDPOINT",
    }.items():
        monkeypatch.setenv(env, f"value-of-{key}")
        assert resolve_setting(Settings(), key) == f"value-of-{key}"
