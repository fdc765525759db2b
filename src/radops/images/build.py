"""Build an image on the local engine, streaming the build's output lines as progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radops.errors import BuildError
from radops.images.context import BuildOptions, read_dockerignore
from radops.progress import ProgressCallback


def build_image(
    api: Any,
    context: Path,
    dockerfile: str,
    tag: str,
    progress: ProgressCallback,
    platform: str | None = None,
    options: BuildOptions | None = None,
) -> None:
    """Build `tag` from `context` with the engine behind `api`, reporting each output line.

    The context is sent as radops lists and hashes it (`context.context_files`), so a
    `<Dockerfile>.dockerignore` is honoured, which docker-py's own packing ignores.
    """
    from docker.api.build import process_dockerfile
    from docker.utils import tar

    name, inline = process_dockerfile(dockerfile, str(context))
    patterns = read_dockerignore(context, dockerfile) or None
    try:
        packed = tar(str(context), exclude=patterns, dockerfile=(name, inline))
    except OSError as e:
        raise BuildError(f"cannot pack the build context: {e}") from e
    options = options or BuildOptions()
    with packed:
        _stream_build(api, packed, name, tag, progress, platform, options)


def _stream_build(
    api: Any, packed: Any, dockerfile: str, tag: str, progress: ProgressCallback,
    platform: str | None, options: BuildOptions,
) -> None:  # fmt: skip
    from docker.errors import APIError, DockerException

    tail: list[str] = []
    try:
        for event in api.build(
            fileobj=packed,
            custom_context=True,
            dockerfile=dockerfile,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            platform=platform,
            buildargs=dict(options.build_args) or None,
            target=options.target,
            nocache=options.no_cache,
        ):
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise BuildError(f"docker build failed: {detail.strip()}", _tail_hint(tail))
            for line in str(event.get("stream", "")).splitlines():
                if line.strip():
                    tail = [*tail[-4:], line]
                    progress(line)
    except APIError as e:  # the engine refused the build: say what it said, not the HTTP call
        detail = str(e.explanation or e).strip()
        raise BuildError(f"docker build failed: {detail}", _tail_hint(tail)) from e
    except DockerException as e:
        raise BuildError(f"docker build failed: {e}") from e


def _tail_hint(tail: list[str]) -> str | None:
    return ("Last build output:\n  " + "\n  ".join(tail)) if tail else None
