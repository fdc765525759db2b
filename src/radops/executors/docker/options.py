"""Pure translations of `docker run` and `docker build` flag values into what radops passes on."""

from __future__ import annotations

import csv
import os
import re
from typing import Any

from radops.errors import RadopsError, UsageError

# What an engine without the NVIDIA runtime answers to `--gpus`.
NO_GPU_DRIVER = "could not select device driver"


def no_gpu_runtime(where: str) -> RadopsError:
    """`--gpus` on an engine that has no NVIDIA runtime: what is missing, and how to add it."""
    return RadopsError(
        f"--gpus: the Docker engine on {where} cannot give containers GPUs (no NVIDIA runtime: "
        "the NVIDIA Container Toolkit is not installed or not set up for Docker)",
        "Install the NVIDIA driver and the NVIDIA Container Toolkit there "
        "(https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/"
        "install-guide.html), then `sudo nvidia-ctk runtime configure --runtime=docker && "
        "sudo systemctl restart docker`. `nvidia-smi` there lists the GPUs it would see.",
    )


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
        if not sep and request["DeviceIDs"] and (key.isdigit() or key.startswith("GPU-")):
            # `device=2,3` unquoted: docker's CSV reads `3` as a field of its own (docker wants
            # '"device=2,3"'); radops reads it as the user means it.
            request["DeviceIDs"].append(key)
        elif not sep:
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


_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # compiled on first use, not at start-up


def parse_secrets(items: list[str]) -> tuple[tuple[str, str], ...]:
    """`--secret id=ID,src=PATH` (as `docker build --secret`): (id, absolute path) pairs. The
    file must be readable now; only its path goes to the builder, never its content."""
    found: dict[str, str] = {}
    for item in items:
        fields = dict(_fields(item, "--secret", "id=ID,src=PATH"))
        kind = fields.pop("type", "file")
        secret_id = fields.pop("id", "")
        source = fields.pop("src", None) or fields.pop("source", None)
        if kind != "file" or fields or not re.fullmatch(_ID, secret_id) or not source:
            raise UsageError(
                f"invalid --secret {item!r}: use id=ID,src=PATH",
                "The Dockerfile reads it with RUN --mount=type=secret,id=ID.",
            )
        path = os.path.abspath(os.path.expanduser(source))
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise UsageError(f"--secret {secret_id}: cannot read the file {source!r}")
        if secret_id in found:
            raise UsageError(f"--secret {secret_id} is given twice")
        found[secret_id] = path
    return tuple(found.items())


def parse_ssh(items: list[str], environ: dict[str, str]) -> tuple[str, ...]:
    """`--ssh default` (this shell's agent), `--ssh ID=SOCKET_OR_KEY[,...]`, as `docker build`."""
    found: list[str] = []
    for item in items:
        ssh_id, sep, paths = item.partition("=")
        if not re.fullmatch(_ID, ssh_id) or (sep and not paths):
            raise UsageError(f"invalid --ssh {item!r}: use default, or ID=PATH of an agent socket "
                             "or key")  # fmt: skip
        if not sep and not environ.get("SSH_AUTH_SOCK"):
            raise UsageError(
                f"--ssh {ssh_id}: no SSH agent in this shell (SSH_AUTH_SOCK is not set)",
                "Start one (`eval $(ssh-agent)`, `ssh-add`), or give a key: "
                "--ssh default=~/.ssh/id_ed25519.",
            )
        resolved = [os.path.abspath(os.path.expanduser(p)) for p in paths.split(",") if p]
        for path in resolved:
            if not os.path.exists(path):
                raise UsageError(f"--ssh {ssh_id}: no such agent socket or key {path!r}")
        found.append(f"{ssh_id}={','.join(resolved)}" if sep else ssh_id)
    return tuple(found)


def _fields(item: str, flag: str, form: str) -> list[tuple[str, str]]:
    pairs = []
    for field in item.split(","):
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"invalid {flag} {item!r}: use {form}")
        pairs.append((key.strip(), value))
    return pairs
