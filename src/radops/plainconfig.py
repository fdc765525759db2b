"""The config file read without pydantic, for a command that uses one executor.

pydantic and the config's models (radops.config, radops.specs) take ~80 ms to import: a fifth
of a remote re-submit, paid by every `run`, `logs`, `jobs`, `stop` on an SSH, GCP or Slurm
executor. `read` checks the whole file by plain rules that accept only what the models accept
and keep unchanged (radops.rules holds the rules both use): then the named entry and the
settings come back as plain objects with the models' values. Anything else (a hand edit, a key
a newer radops wrote, a value the models would convert, a kind not listed here, a VM being
created) gives None, and the caller reads the file with the models as before, with their
errors. A plain spec answers anything beyond its fields (`created_at`, methods, `model_copy`)
from the model, made from the same entry on first use.

The settings' environment variables live here too: resolving a setting needs no model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from radops.errors import ConfigError
from radops.rules import (
    DEFAULT_DOCKER_PATH,
    SLURM_RUNTIMES,
    check_docker_path,
    check_job_dir,
    check_registered_name,
    check_slurm_name,
    check_ssh_name,
)

SCHEMA_VERSION = 1

# Each setting's environment variable; the environment wins over the config file.
SETTINGS_ENV = {
    "registry": "RADOPS_REGISTRY",
    "gcp_project": "RADOPS_GCP_PROJECT",
    "gcp_zone": "RADOPS_GCP_ZONE",
    "gcp_api_endpoint": "RADOPS_GCP_API_ENDPOINT",
    "gcp_autostop": "RADOPS_GCP_AUTOSTOP",
    "ssh_persist": "RADOPS_SSH_PERSIST",
    "registry_pull_username": "RADOPS_REGISTRY_PULL_USERNAME",
    "registry_pull_token_file": "RADOPS_REGISTRY_PULL_TOKEN_FILE",
}


def setting_names() -> list[str]:
    return list(SETTINGS_ENV)


def resolve_setting(settings: Any, key: str, flag: str | None = None) -> str | None:
    """A setting's value: the flag if given, else its environment variable, else the file."""
    if flag:
        return flag
    env = os.environ.get(SETTINGS_ENV[key])
    if env:
        return env
    value: Any = getattr(settings, key)
    return str(value) if value is not None else None


# Rules: does the model accept this stored value and keep it as it is?
Rule = Callable[[Any], bool]


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _optional(rule: Rule) -> Rule:
    return lambda value: value is None or rule(value)


_optional_text = _optional(_text)


def _kept_by(check: Callable[[str], Any]) -> Rule:
    """A string the check accepts and returns unchanged."""

    def rule(value: Any) -> bool:
        try:
            return isinstance(value, str) and check(value) == value
        except ValueError:
            return False

    return rule


def _one_of(*choices: str) -> Rule:
    return lambda value: isinstance(value, str) and value in choices


def _port(value: Any) -> bool:
    return type(value) is int and 1 <= value <= 65535


# What radops writes for a datetime (an ISO 8601 time with its offset), and nothing looser.
# (datetime.fromisoformat takes offsets that pydantic refuses, such as +00:60: not these.)
_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
)


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_LOGIN: dict[str, Rule] = {
    "kind": _text,
    "name": _kept_by(check_registered_name),
    "hostname": _kept_by(lambda v: check_ssh_name(v, "hostname")),
    "port": _optional(_port),
    "username": _optional(_kept_by(lambda v: check_ssh_name(v, "username"))),
    "identity_file": _optional_text,
    "docker_path": _kept_by(check_docker_path),
    "registry": _optional_text,
    "platform": _optional_text,
    "created_at": _timestamp,
}
_BUILD_ON: dict[str, Rule] = {"build": _optional(_one_of("local", "remote"))}
# Each kind read here: its entry's rules and the keys it must have. A kind not listed (a new
# one) is read by the models.
KINDS: dict[str, tuple[dict[str, Rule], frozenset[str]]] = {
    "ssh": ({**_LOGIN, **_BUILD_ON}, frozenset({"kind", "name", "hostname"})),
    "gcp": (
        {**_LOGIN, **_BUILD_ON, "project": _text, "zone": _text, "instance": _text,
         "host_key_fingerprint": _optional_text},
        frozenset({"kind", "name", "hostname", "project", "zone", "instance"}),
    ),
    "slurm": (
        {**_LOGIN, "job_dir": _kept_by(check_job_dir), "runtime": _one_of(*SLURM_RUNTIMES),
         "partition": _optional(_kept_by(check_slurm_name)),
         "account": _optional(_kept_by(check_slurm_name))},
        frozenset({"kind", "name", "hostname", "job_dir"}),
    ),
}  # fmt: skip
# The models' defaults that are not None (`created_at`'s is made by the model when read).
DEFAULTS: dict[str, Any] = {"docker_path": DEFAULT_DOCKER_PATH, "runtime": "docker"}
SSH_TARGET = ("hostname", "port", "username", "identity_file")  # the model's `ssh`


def _plain_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return False
    rules, required = KINDS.get(entry["kind"], ({}, frozenset({""})))
    return required <= entry.keys() and all(
        key in rules and rules[key](value) for key, value in entry.items()
    )


class PlainSettings:
    """The shared settings as the model holds them: each one, None when unset."""

    def __init__(self, stored: dict[str, str | None]) -> None:
        for key in SETTINGS_ENV:
            setattr(self, key, stored.get(key))


class PlainSpec:
    """A registered executor's entry: its fields as the model holds them (`ssh` its target);
    anything else is the model's, made from the entry on first use."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.__dict__["_entry"] = entry
        fields = {key: entry.get(key, DEFAULTS.get(key)) for key in KINDS[entry["kind"]][0]}
        fields.pop("created_at")
        for key in SSH_TARGET:
            fields.pop(key)
        self.__dict__.update(fields, ssh=PlainTarget(self, entry))

    def __getattr__(self, attr: str) -> Any:  # only what is not a field above
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.model(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:  # the model sees it too
        setattr(self.model(), attr, value)
        if attr in self.__dict__:
            self.__dict__[attr] = value

    def model(self) -> Any:
        """The entry as radops.specs' model (validated once)."""
        if "_model" not in self.__dict__:
            from pydantic import ValidationError

            from radops.specs import registered_spec

            try:
                model = registered_spec(self._entry)
            except ValidationError as e:  # the rules above let through what the model refuses
                first = e.errors()[0]
                raise ConfigError(
                    f"executor {self.name!r} in the config file is invalid: {first['msg']}"
                ) from e
            self.__dict__["_model"] = model
        return self.__dict__["_model"]


class PlainTarget:
    """A plain spec's `ssh`: where it logs in, as given; its methods are the model's."""

    def __init__(self, spec: PlainSpec, entry: dict[str, Any]) -> None:
        self.__dict__.update({key: entry.get(key) for key in SSH_TARGET}, _spec=spec)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr == "_spec":
            raise AttributeError(attr)
        return getattr(self._spec.model().ssh, attr)

    def __setattr__(self, attr: str, value: Any) -> None:  # the model sees it too
        setattr(self._spec.model().ssh, attr, value)
        self.__dict__[attr] = value


class PlainConfig:
    """A config file every part of which the rules accept."""

    def __init__(self, settings: PlainSettings, entries: dict[str, dict[str, Any]]) -> None:
        self.settings = settings
        self._entries = entries

    def spec(self, name: str) -> PlainSpec | None:
        entry = self._entries.get(name)
        return None if entry is None else PlainSpec(entry)


def read(text: str) -> PlainConfig | None:
    """The config file's text as plain objects, or None when the models must read it."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not raw.keys() <= {
        "schema_version", "settings", "executors", "gcp_pending"
    }:  # fmt: skip
        return None
    version = raw.get("schema_version", SCHEMA_VERSION)
    settings = raw.get("settings", {})
    executors = raw.get("executors", {})
    plain = (
        type(version) is int
        and version == SCHEMA_VERSION
        and raw.get("gcp_pending", {}) == {}  # a VM being created: rare, read by the model
        and isinstance(settings, dict)
        and settings.keys() <= SETTINGS_ENV.keys()
        and all(_optional_text(value) for value in settings.values())
        and isinstance(executors, dict)
        and all(_plain_entry(entry) for entry in executors.values())
    )
    return PlainConfig(PlainSettings(settings), executors) if plain else None
