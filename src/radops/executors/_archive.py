"""A local file or folder as a tar stream, made as it is read (memory stays flat for any size)."""

from __future__ import annotations

import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

from radops.errors import UsageError

CHUNK = 1 << 20


def pack(source: Path, name: str) -> Iterator[bytes]:
    """A tar archive of `source` (a file or a folder, symlinks kept as links) whose one
    top-level entry is `name`, as chunks. Unreadable files fail with a UsageError naming them."""
    if not os.path.lexists(source):
        raise UsageError(f"no such file or folder here: {str(source)!r}")
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with (
                open(write_end, "wb", buffering=CHUNK) as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                tar.add(str(source), arcname=name, recursive=True)
        except BrokenPipeError:  # the reader stopped: its own error says why
            pass
        except BaseException as e:  # handed to the reading thread
            failure.append(e)

    writer = threading.Thread(target=write, name="radops-pack", daemon=True)
    writer.start()
    with open(read_end, "rb", buffering=0) as stream:
        while chunk := stream.read(CHUNK):
            yield chunk
    writer.join()
    if failure:
        error = failure[0]
        if isinstance(error, OSError):
            where = f" {error.filename!r}" if error.filename else ""
            raise UsageError(f"cannot read{where}: {error.strerror or error}") from error
        raise error
