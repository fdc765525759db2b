"""Registries as seen from here: the credentials this machine has, and pushing an image."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import RadopsError, UsageError
from radops.progress import ProgressCallback

if TYPE_CHECKING:
    from radops.config import Settings

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PUSH_HINT = (
    "Log in first (`docker login REGISTRY`; for ghcr.io a token with the write:packages scope, "
    "or set GITHUB_TOKEN), or ship the image with --transfer ssh."
)


def registry_server(ref: str) -> str:
    """The registry host of an image reference (`ghcr.io/owner/app:tag` -> `ghcr.io`)."""
    return ref.split("/")[0]


def registry_credentials(server: str) -> dict[str, str] | None:
    """Credentials for `server`: GITHUB_TOKEN for ghcr.io, else what `docker login` stored."""
    token = os.environ.get("GITHUB_TOKEN")
    if server == "ghcr.io" and token:
        return {"username": os.environ.get("GITHUB_ACTOR") or "radops", "password": token}
    from docker import auth

    found: dict[str, Any] | None = auth.resolve_authconfig(auth.load_config(), server)
    if found and found.get("password"):
        return {"username": str(found.get("username") or ""), "password": str(found["password"])}
    return None


PULL_TOKEN_ENV = "RADOPS_REGISTRY_PULL_TOKEN"
PULL_HINT = (
    "Give the machine a pull credential (a read-only token): `radops config set "
    "registry_pull_username USER` and `radops config set registry_pull_token_file FILE` (or "
    "RADOPS_REGISTRY_PULL_TOKEN), or log the machine in yourself (`docker login` there)."
)


@dataclass(frozen=True)
class PullCredential:
    """What a remote engine pulls from the registry `server` with. Never this machine's push
    credential: that one is not sent anywhere."""

    server: str
    username: str
    token: str = field(repr=False)

    def docker_config(self) -> bytes:
        """A one-line docker config (config.json) holding this credential for `server`."""
        auth = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        return json.dumps({"auths": {self.server: {"auth": auth}}}).encode()


def pull_credential(settings: Settings, server: str) -> PullCredential | None:
    """The pull credential for registry `server`: registry_pull_username with
    RADOPS_REGISTRY_PULL_TOKEN or the file registry_pull_token_file names. It belongs to the
    registry of the `registry` setting: for any other server (an executor's own `--registry`)
    there is none, so it is never sent to a registry it was not made for."""
    from radops.plainconfig import resolve_setting

    configured = resolve_setting(settings, "registry")
    if configured is None or registry_server(configured) != server:
        return None
    username = resolve_setting(settings, "registry_pull_username")
    token_file = resolve_setting(settings, "registry_pull_token_file")
    token = os.environ.get(PULL_TOKEN_ENV)
    if not username:
        if token or token_file:
            raise UsageError(
                "a registry pull token is configured without registry_pull_username",
                "Set it: `radops config set registry_pull_username USER`.",
            )
        return None
    if not token and token_file:
        path = Path(token_file).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as e:
            message = f"cannot read registry_pull_token_file {str(path)!r}: {e.strerror}"
            raise UsageError(message) from e
    if not token:
        raise UsageError(
            "registry_pull_username is set but no pull token", f"Set {PULL_TOKEN_ENV} or "
            "`radops config set registry_pull_token_file FILE`."
        )  # fmt: skip
    if "\n" in token or "\r" in token:
        raise UsageError("the registry pull token must be one line")
    return PullCredential(server, username, token)


def push(
    api: Any,
    local_tag: str,
    remote_ref: str,
    progress: ProgressCallback,
    auth: dict[str, str] | None = None,
) -> str | None:
    """Tag `local_tag` as `remote_ref` and push it (with `auth`, else this machine's credentials
    for its registry); docker-py reports push errors in the stream. The manifest digest the
    engine reports (its `aux` event), if any."""
    from docker.errors import APIError, DockerException

    from radops.progress import human_bytes, transfer_meter

    repository, _, tag = remote_ref.rpartition(":")
    server = registry_server(remote_ref)
    progress(f"Pushing {remote_ref}")
    # Per layer: bytes sent so far and its size, from the engine's progress events; the
    # layers still to send whose size is not known yet (then so is the total not).
    layers: dict[str, tuple[int, int]] = {}
    unsized: set[str] = set()
    meter = transfer_meter(progress, f"Pushing {remote_ref}", None)
    pushed = False
    digest: str | None = None
    try:
        api.tag(local_tag, repository, tag)
        auth = auth or registry_credentials(server)
        events = api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        for event in events:
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise RadopsError(f"push to {server} failed: {detail}", PUSH_HINT)
            aux = event.get("aux")
            if isinstance(aux, dict) and _DIGEST.match(str(aux.get("Digest", ""))):
                digest = str(aux["Digest"])
            layer, status = str(event.get("id", "")), event.get("status")
            detail = event.get("progressDetail") or {}
            if status in ("Preparing", "Waiting") and layer not in layers:
                unsized.add(layer)
            elif status == "Layer already exists":
                unsized.discard(layer)
            elif status == "Pushing" and detail.get("total"):
                unsized.discard(layer)
                layers[layer] = (int(detail.get("current") or 0), int(detail["total"]))
            elif status == "Pushed":
                unsized.discard(layer)
                if layer in layers:
                    layers[layer] = (layers[layer][1], layers[layer][1])
            if layer in layers and status in ("Pushing", "Pushed"):
                done, total = (sum(sizes) for sizes in zip(*layers.values(), strict=True))
                meter.update(done, None if unsized else total)
            if status == "Pushed":
                size = f" ({human_bytes(layers[layer][1])})" if layer in layers else ""
                progress(f"Pushed layer {layer}{size}")
        pushed = True
    except (APIError, DockerException) as e:
        raise RadopsError(f"push to {server} failed: {e}", PUSH_HINT) from e
    finally:
        if layers:
            meter.finish(ok=pushed)
    return digest
