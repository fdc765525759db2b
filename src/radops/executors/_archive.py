"""A local file or folder as a tar stream, made as it is read (memory stays flat for any size)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from radops.errors import UsageError
from radops.images.archive import stream_tar


def pack(source: Path, name: str) -> Iterator[bytes]:
    """A tar archive of `source` (a file or a folder, symlinks kept as links) whose one
    top-level entry is `name`, as chunks. Unreadable files fail with a UsageError naming them."""
    if not os.path.lexists(source):
        raise UsageError(f"no such file or folder here: {str(source)!r}")
    return stream_tar(lambda tar: tar.add(str(source), arcname=name, recursive=True))
