"""Registries as seen from here: the credentials this machine has, and pushing an image."""

from __future__ import annotations

import os
from typing import Any

from radops.errors import RadopsError
from radops.progress import ProgressCallback

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


def push(api: Any, local_tag: str, remote_ref: str, progress: ProgressCallback) -> None:
    """Tag `local_tag` as `remote_ref` and push it; docker-py reports push errors in the stream."""
    from docker.errors import APIError, DockerException

    repository, _, tag = remote_ref.rpartition(":")
    server = registry_server(remote_ref)
    progress(f"Pushing {remote_ref}")
    try:
        api.tag(local_tag, repository, tag)
        events = api.push(
            repository, tag=tag, stream=True, decode=True, auth_config=registry_credentials(server)
        )
        for event in events:
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise RadopsError(f"push to {server} failed: {detail}", PUSH_HINT)
            if event.get("status") == "Pushed":
                progress(f"Pushed layer {event.get('id', '')}")
    except (APIError, DockerException) as e:
        raise RadopsError(f"push to {server} failed: {e}", PUSH_HINT) from e
