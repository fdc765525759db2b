"""Tar streams made as they are read, memory flat for any size: a folder to copy, or a build
context exactly as radops hashed it (to build on another machine)."""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator

from radops.errors import UsageError
from radops.images.context import Snapshot

CHUNK = 1 << 20


def stream_tar(fill: Callable[[tarfile.TarFile], None]) -> Iterator[bytes]:
    """The chunks of a PAX tar that `fill` writes (in a thread); a file it cannot read fails
    with a UsageError naming it."""
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with (
                open(write_end, "wb", buffering=CHUNK) as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                fill(tar)
        except BrokenPipeError:  # the reader stopped: its own error says why
            pass
        except BaseException as e:  # handed to the reading thread
            failure.append(e)

    writer = threading.Thread(target=write, name="radops-tar", daemon=True)
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


def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root, as the docker CLI sends a build context; whole-second times (a fraction
    would give every file a PAX header)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)
    return info


def _plain_name_first(names: list[str]) -> list[str]:
    """The docker CLI knows a tar on stdin by its first header: that one must be a plain one,
    not an extended header that a long or non-ASCII name would need."""
    for i, name in enumerate(names):
        if name.isascii() and len(name.encode()) < 100:
            return [name, *names[:i], *names[i + 1 :]]
    return names


def context_archive(snapshot: Snapshot) -> tuple[Iterator[bytes], int]:
    """The build context as the docker CLI would send it: the snapshot's files (ignore rules
    applied), the Dockerfile and the context's .dockerignore whether ignored or not, and about
    its size (long names' extended headers aside), for progress. The Dockerfile must be inside
    the context."""
    root = snapshot.context
    names = context_names(snapshot)
    size = archive_size(snapshot, names)

    def fill(tar: tarfile.TarFile) -> None:
        for rel in _plain_name_first(names):
            tar.add(str(root / rel), arcname=rel, recursive=False, filter=as_root)

    return stream_tar(fill), size


def context_names(snapshot: Snapshot) -> list[str]:
    """What a build context holds: the snapshot's files (ignore rules applied), and the
    Dockerfile and the context's .dockerignore whether ignored or not."""
    names = list(snapshot.files)
    for always in (snapshot.dockerfile, ".dockerignore"):
        if always not in snapshot.files and (snapshot.context / always).is_file():
            names.append(always)
    return names


def archive_size(snapshot: Snapshot, names: list[str]) -> int:
    """About the size of a tar of `names` (long names' extended headers aside)."""
    root = snapshot.context
    size = 2 * 512  # the end blocks
    for rel in names:
        with contextlib.suppress(OSError):  # gone: the tar says so, with the name
            st = os.lstat(root / rel)
            content = st.st_size if stat.S_ISREG(st.st_mode) else 0
            size += 512 + (content + 511) // 512 * 512  # its header, its padded content
    return -(-size // tarfile.RECORDSIZE) * tarfile.RECORDSIZE  # tarfile pads the last record
