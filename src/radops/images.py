"""Build contexts and images: hash the context as Docker sends it, build only what is missing."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from radops.errors import BuildError, UsageError
from radops.executors.base import ProgressCallback

IMAGE_REPOSITORY_PREFIX = "radops/"
HASH_CHARS = 16  # 64 bits of the context's sha256 in the tag
_CHUNK = 1 << 20


def check_context(context: Path, dockerfile: str | None) -> tuple[Path, str]:
    """Check the build folder and its Dockerfile; return the folder and the Dockerfile name."""
    if not context.exists():
        raise UsageError(f"path {str(context)!r} does not exist")
    if not context.is_dir():
        raise UsageError(
            f"path {str(context)!r} is not a folder", "PATH is the build context folder."
        )
    name = dockerfile or "Dockerfile"
    file = Path(name) if os.path.isabs(name) else context / name
    if not file.is_file():
        raise UsageError(
            f"no Dockerfile at {str(file)!r}",
            "Add one to the folder, or name it with --file.",
        )
    return context.resolve(), name


def read_dockerignore(context: Path) -> list[str]:
    """The .dockerignore patterns, read the way docker-py reads them when it builds."""
    try:
        text = (context / ".dockerignore").read_text()
    except FileNotFoundError:
        return []
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context: Path, dockerfile: str) -> list[str]:
    """The relative paths that a build sends, after .dockerignore, sorted."""
    patterns = read_dockerignore(context)
    if not patterns:
        # Everything is sent: list it without loading docker-py (a quarter of a second).
        return sorted(_walk(context))
    from docker.utils.build import exclude_paths

    return sorted(exclude_paths(str(context), patterns, dockerfile=dockerfile))


def _walk(context: Path) -> list[str]:
    """Every file and folder below `context`, relative, as docker-py lists them (no symlinks
    followed)."""
    found: list[str] = []
    for folder, dirs, files in os.walk(context):
        rel = os.path.relpath(folder, context)
        found += [name if rel == "." else f"{rel}/{name}" for name in (*dirs, *files)]
    return found


def hash_context(
    context: Path, files: Iterable[str], dockerfile: str, platform: str | None = None
) -> str:
    """sha256 over each path, its type and executable bit, and its content; plus the Dockerfile.

    A build for another platform than the engine's own (`platform`) hashes differently.
    """
    h = hashlib.sha256()
    if platform:
        h.update(b"platform\0" + platform.encode() + b"\0")
    df = Path(dockerfile) if os.path.isabs(dockerfile) else context / dockerfile
    h.update(b"dockerfile\0" + dockerfile.encode() + b"\0" + df.read_bytes() + b"\0")
    for rel in files:
        path = context / rel
        st = path.lstat()
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        if stat.S_ISLNK(st.st_mode):
            h.update(b"L" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif stat.S_ISDIR(st.st_mode):
            h.update(b"D")
        elif stat.S_ISREG(st.st_mode):
            h.update(b"X" if st.st_mode & 0o111 else b"F")
            try:
                with path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
            except OSError as e:
                message = f"cannot read {str(path)!r} in the build context: {e.strerror}"
                raise UsageError(message) from e
        else:  # a socket, FIFO or device: docker sends only its header, so hash only its kind
            h.update(b"S%o" % stat.S_IFMT(st.st_mode))
        h.update(b"\0")
    return h.hexdigest()


def image_tag(context: Path, digest: str) -> str:
    """`radops/<folder name>:<hash>`: the same folder content always gets the same tag."""
    slug = re.sub(r"[^a-z0-9]+", "-", context.name.lower()).strip("-")[:60] or "job"
    return f"{IMAGE_REPOSITORY_PREFIX}{slug}:{digest[:HASH_CHARS]}"


def tag_for_context(context: Path, dockerfile: str, platform: str | None = None) -> str:
    files = context_files(context, dockerfile)
    return image_tag(context, hash_context(context, files, dockerfile, platform))


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
