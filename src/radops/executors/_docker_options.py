"""Pure translations of `docker run` flag values into Docker Engine API structures."""

from __future__ import annotations

import csv
from typing import Any

from radops.errors import UsageError


def parse_gpus(value: str) -> dict[str, Any]:
    """`--gpus` as the docker CLI reads it: `all`, a count, or `device=0,1`-style fields.

    Returns the fields of an Engine API DeviceRequest.
    """
    request: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": [], "Capabilities": [["gpu"]]}
    fields = next(csv.reader([value]), [])
    if not fields:
        raise UsageError("--gpus needs a value, e.g. all, 2 or device=0,1")
    for item in fields:
        key, sep, val = item.partition("=")
        if not sep:
            _gpu_count(request, key, value)
        elif key == "count":
            _gpu_count(request, val, value)
        elif key == "device":
            request["DeviceIDs"] = [d for d in val.split(",") if d]
        elif key == "driver":
            request["Driver"] = val
        elif key == "capabilities":
            request["Capabilities"] = [[c for c in val.split(",") if c]]
        else:
            raise UsageError(f"invalid --gpus value {value!r}: unknown field {key!r}")
    if request["Count"] and request["DeviceIDs"]:
        raise UsageError(f"invalid --gpus value {value!r}: give a count or devices, not both")
    return request


def _gpu_count(request: dict[str, Any], text: str, whole: str) -> None:
    if text == "all":
        request["Count"] = -1
    elif text.isdigit():
        request["Count"] = int(text)
    else:
        raise UsageError(f"invalid --gpus value {whole!r}: use all, a count or device=IDS")


def parse_build_args(items: list[str], environ: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """`--build-arg KEY=VALUE`, or `--build-arg KEY` for this shell's value, as `docker build`."""
    return tuple(_key_values(items, environ, "--build-arg").items())


def parse_env(items: list[str], environ: dict[str, str]) -> dict[str, str]:
    """`-e KEY=VALUE`, or `-e KEY` to pass this shell's value of KEY, as `docker run -e` does."""
    return _key_values(items, environ, "--env")


def _key_values(items: list[str], environ: dict[str, str], flag: str) -> dict[str, str]:
    """`KEY=VALUE` items, or `KEY` for this shell's value of KEY; a later KEY wins."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"invalid {flag} {item!r}: use KEY=VALUE or KEY")
        if not sep:
            if key not in environ:
                raise UsageError(f"{flag} {key}: {key} is not set in this shell")
            val = environ[key]
        found[key] = val
    return found
