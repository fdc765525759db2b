"""A local file or folder as a tar stream, made as it is read (memory stays flat for any size)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from radops.errors import UsageError
from radops.images.archive import stream_tar


@dataclass(frozen=True)
class LocalSource:
    """A local `cp` source as docker cp reads it: `path` as typed (`dir/.` and `link/` keep
    their meaning), the name the copy gets, and whether only a folder's `contents` go."""

    path: str
    name: str
    contents: bool


def local_source(source: str | Path) -> LocalSource:
    """`source` checked: it exists here, and is a folder if it ends in `/` or `/.`."""
    path = os.fspath(source)
    if not os.path.lexists(path):
        raise UsageError(f"no such file or folder here: {path!r}")
    trimmed = path.rstrip("/") or "/"
    contents = trimmed == "." or trimmed.endswith("/.")
    if (contents or path.endswith("/")) and not os.path.isdir(path):
        raise UsageError(f"not a folder here: {path!r}")
    name = os.path.basename(os.path.normpath(os.path.abspath(path))) or "root"
    return LocalSource(path, name, contents)


def content_size(source: LocalSource) -> int | None:
    """About how many bytes a copy of `source` reads: its regular files' sizes (None for a
    link that is copied as a link, or a tree that cannot be read through)."""
    path = source.path
    if os.path.islink(path.rstrip("/") or "/") and not (source.contents or path.endswith("/")):
        return None
    if not os.path.isdir(path):
        try:
            return os.path.getsize(path)
        except OSError:  # unreadable or gone: the copy says so
            return None
    size = 0
    for folder, _, files in os.walk(path):  # an unreadable folder: the copy says so
        for name in files:
            full = os.path.join(folder, name)
            with contextlib.suppress(OSError):  # gone meanwhile: the copy says so
                if not os.path.islink(full):
                    size += os.path.getsize(full)
    return size


def pack(source: LocalSource) -> Iterator[bytes]:
    """A tar archive of `source` (a file or a folder, symlinks kept as links; followed only
    where a trailing / or /. says so, as docker cp does) whose one top-level entry is its
    name, as chunks. Unreadable files fail with a UsageError naming them."""
    return stream_tar(lambda tar: tar.add(source.path, arcname=source.name, recursive=True))
