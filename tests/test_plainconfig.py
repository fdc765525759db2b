"""The config read without pydantic (radops.plainconfig) against the models it stands for.

Pure logic: every entry the plain rules accept, the models accept too, with the same values;
whatever they do not accept is left to the models (None). The entries are made by changing one
key of a valid entry of each kind to each of a set of awkward values.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from radops import plainconfig
from radops.config import ConfigFile, Settings
from radops.specs import (
    SSH_FIELDS,
    GCPExecutorSpec,
    LoginSpec,
    SlurmExecutorSpec,
    SSHExecutorSpec,
    SSHHost,
)

MODELS: dict[str, type[LoginSpec]] = {
    "ssh": SSHExecutorSpec,
    "gcp": GCPExecutorSpec,
    "slurm": SlurmExecutorSpec,
}

VALID: dict[str, dict[str, Any]] = {
    "ssh": {"kind": "ssh", "name": "box", "hostname": "gpu.example", "port": 2222,
            "username": "me", "identity_file": "~/.ssh/id", "docker_path": "/usr/bin/docker",
            "registry": "reg:5000", "platform": "linux/amd64", "build": "remote",
            "created_at": "2026-12-08T01:02:03.456789Z"},
    "gcp": {"kind": "gcp", "name": "vm", "hostname": "10.0.0.5", "username": "radops",
            "project": "p", "zone": "z", "instance": "i", "host_key_fingerprint": "SHA256:x",
            "created_at": "2026-12-08T01:02:03+00:00"},
    "slurm": {"kind": "slurm", "name": "hpc", "hostname": "login", "job_dir": "/shared/jobs",
              "runtime": "podman", "partition": "gpu", "account": "lab",
              "docker_path": "/usr/bin/podman"},
}  # fmt: skip

AWKWARD: list[Any] = [
    None, "", "x", "-x", "a b", "a;b", "ünï", 0, 1, 22, 65535, 65536, -1, True, "22", 22.0,
    "local", "remote", "docker", "pyxis", "/", "/a/", "/a", "a/", "/a\nb",
    "2026-12-08T01:00:00Z", "2026-12-08T01:00:00", "2026-12-08", "2026-13-08T01:00:00Z",
    "2026-12-08T01:00:00.1234567Z", "2026-12-08T01:00:00+00:60", "2026-12-08T01:00:00+05:99",
    "2026-12-08T01:00:00+24:00", "2026-12-08T01:00:00-23:59", "2026-12-08T24:00:00Z",
    "2026-12-08T01:00:60Z", [], {}, ["x"],
]  # fmt: skip


def _variants() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for kind, valid in VALID.items():
        rules = plainconfig.KINDS[kind][0]
        cases.append((f"{kind}", valid))
        for key in [*sorted(rules), "extra", "ssh"]:
            cases.append((f"{kind} without {key}", {k: v for k, v in valid.items() if k != key}))
            for value in AWKWARD:
                cases.append((f"{kind} {key}={value!r}", {**valid, key: value}))
    return cases


def _model(raw: dict[str, Any]) -> ConfigFile | None:
    try:
        return ConfigFile.model_validate(raw)
    except ValidationError:
        return None


def _fields(spec: Any, kind: str) -> dict[str, Any]:
    names = set(plainconfig.KINDS[kind][0]) - set(SSH_FIELDS) - {"created_at"}
    return {
        **{name: getattr(spec, name) for name in names},
        **{f"ssh.{name}": getattr(spec.ssh, name) for name in SSH_FIELDS},
    }


@pytest.mark.parametrize(("case", "entry"), _variants(), ids=[c for c, _ in _variants()])
def test_what_the_rules_accept_the_models_accept_with_the_same_values(
    case: str, entry: dict[str, Any]
) -> None:
    raw = {"schema_version": 1, "settings": {"registry": "r"}, "executors": {"e": entry}}
    plain = plainconfig.read(json.dumps(raw))
    model = _model(raw)
    if plain is None:
        return  # the models read it, with their errors: nothing to compare
    assert model is not None, f"{case}: accepted by the rules, refused by the models"
    spec, full = plain.spec("e"), model.executors["e"]
    assert spec is not None
    assert _fields(spec, entry["kind"]) == _fields(full, entry["kind"]), case
    made = {"created_at"} if "created_at" not in entry else set()  # now(), when each was made
    assert {k: v for k, v in spec.to_json().items() if k not in made} == {
        k: v for k, v in full.to_json().items() if k not in made
    }  # the plain spec asks its model


@pytest.mark.parametrize("kind", sorted(VALID))
def test_the_valid_entries_are_read_plainly(kind: str) -> None:
    """The corpus above compares something: each kind's usual entry is read without the models."""
    raw = {"executors": {"e": VALID[kind]}}
    assert plainconfig.read(json.dumps(raw)) is not None


@pytest.mark.parametrize(
    "raw",
    [
        {"schema_version": 2},
        {"schema_version": 0},
        {"schema_version": "1"},
        {"settings": {"registry": 5}},
        {"settings": {"unknown": "x"}},
        {"settings": []},
        {"executors": []},
        {"executors": {"e": "not an entry"}},
        {"executors": {"e": {**VALID["ssh"], "kind": "kubernetes"}}},
        {"gcp_pending": {"vm": {"project": "p", "zone": "z", "instance": "i"}}},
        {"gcp_pending": []},
        {"other": 1},
        [],
    ],
    ids=repr,
)
def test_the_models_read_anything_else(raw: Any) -> None:
    assert plainconfig.read(json.dumps(raw)) is None


def test_not_json_is_left_to_the_models() -> None:
    assert plainconfig.read('{"executors": ') is None


def test_settings_are_the_models_settings() -> None:
    stored = {"registry": "reg:5000", "ssh_persist": "60", "gcp_zone": None}
    plain = plainconfig.read(json.dumps({"settings": stored}))
    assert plain is not None
    model = Settings.model_validate(stored)
    assert {k: getattr(plain.settings, k) for k in plainconfig.SETTINGS_ENV} == model.model_dump()


def test_the_rules_name_the_models_fields() -> None:
    """A field added to a model without its rule here would make every entry fall back (and
    the plain values miss it): this fails first."""
    assert set(plainconfig.SETTINGS_ENV) == set(Settings.model_fields)
    for kind, (rules, required) in plainconfig.KINDS.items():
        model = MODELS[kind]
        fields = (set(model.model_fields) - {"ssh"}) | set(SSH_FIELDS)
        assert set(rules) == fields, kind
        assert model.model_fields["ssh"].annotation is SSHHost
        flat = {**model.model_fields, **SSHHost.model_fields}
        del flat["ssh"]
        assert required == {n for n, f in flat.items() if f.is_required()} | {"kind"}, kind
        for name, info in flat.items():
            if not info.is_required() and info.default_factory is None:
                default = plainconfig.DEFAULTS.get(name)
                assert info.default == default or name == "kind", (kind, name)


def test_a_plain_spec_is_its_model_for_everything_else() -> None:
    plain = plainconfig.read(json.dumps({"executors": {"e": VALID["ssh"]}}))
    assert plain is not None
    spec: Any = plain.spec("e")
    assert plain.spec("missing") is None
    assert spec.target_text() == "me@gpu.example:2222"
    assert spec.ssh.text() == "me@gpu.example:2222"
    changed = spec.model_copy(update={"platform": "linux/arm64"})
    assert isinstance(changed, SSHExecutorSpec) and changed.platform == "linux/arm64"
    assert spec.created_at == datetime.fromisoformat("2026-12-08T01:02:03.456789+00:00")
    with pytest.raises(AttributeError):
        spec.no_such_field  # noqa: B018
    spec.platform = "linux/arm64"  # what is set is what its model says too
    spec.ssh.port = 2200
    assert spec.platform == "linux/arm64" and spec.ssh.port == 2200
    assert spec.to_json()["platform"] == "linux/arm64" and spec.to_json()["port"] == 2200
