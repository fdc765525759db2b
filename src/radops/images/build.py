"""Build an image on the local engine, streaming the build's output lines as progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radops.errors import BuildError
from radops.progress import ProgressCallback


def build_image(
    api: Any,
    context: Path,
    dockerfile: str,
    tag: str,
    progress: ProgressCallback,
    platform: str | None = None,
) -> None:
    """Build `tag` from `context` with the engine behind `api`, reporting each output line."""
    from docker.errors import APIError, DockerException

    tail: list[str] = []
    try:
        for event in api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            platform=platform,
        ):
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise BuildError(f"docker build failed: {detail.strip()}", _tail_hint(tail))
            for line in str(event.get("stream", "")).splitlines():
                if line.strip():
                    tail = [*tail[-4:], line]
                    progress(line)
    except (APIError, DockerException) as e:
        raise BuildError(f"docker build failed: {e}") from e


def _tail_hint(tail: list[str]) -> str | None:
    return ("Last build output:\n  " + "\n  ".join(tail)) if tail else None
