"""Moving an image from the local engine to a remote one: through a registry, or over SSH."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from radops.errors import RadopsError

if TYPE_CHECKING:
    from radops.executors.base import ProgressCallback
    from radops.ssh import SSHConnection

PUSH_HINT = (
    "Log in first (`docker login REGISTRY`; for ghcr.io a token with the write:packages scope, "
    "or set GITHUB_TOKEN), or ship the image with --transfer ssh."
)


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
    server = remote_ref.split("/")[0]
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


def registry_login(api: Any, ref: str) -> tuple[str, str, str] | None:
    """(server, username, secret) to log the remote engine in with, if any are known here."""
    server = ref.split("/")[0]
    creds = registry_credentials(server)
    if creds is None:
        return None
    return server, creds["username"], creds["password"]


def send_over_ssh(api: Any, conn: SSHConnection, docker_path: str, local_tag: str) -> None:
    """`docker save | ssh host docker load`, streamed through the executor's one connection."""
    from docker.errors import APIError, DockerException

    try:
        chunks = api.get_image(local_tag, chunk_size=1 << 20)
        status, output = conn.run_with_input([docker_path, "load", "--quiet"], chunks)
    except (APIError, DockerException) as e:
        raise RadopsError(f"cannot export {local_tag} from the local engine: {e}") from e
    if status != 0:
        from radops.executors._docker_argv import error_line

        reason = error_line(output.decode(errors="replace")) or f"exit status {status}"
        raise RadopsError(f"`docker load` on the remote machine failed: {reason}")
