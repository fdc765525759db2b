"""`cp` between here and a job, with docker cp's rules: a job's files unpacked here, and
local files or a tar stream sent into a job."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import UsageError

if TYPE_CHECKING:
    import tarfile

    from radops.api.session import Session


def download(session: Session, job: str, source: str, dest: Path) -> None:
    """`source` in the job (a file or folder) unpacked at `dest` here, as `docker cp` does."""
    extract(session.copy_from(job, source or "/"), source, dest)


def upload(session: Session, source: Path, job: str, dest: str) -> None:
    """The local file or folder `source` copied to `dest` in the job, as `docker cp` does."""
    session.copy_to(job, source, dest or "/")


def upload_archive(session: Session, archive: Iterable[bytes], job: str, dest: str) -> None:
    """A tar stream unpacked into the folder `dest` in the job (`docker cp - JOB:DEST`)."""
    session.copy_archive_to(job, archive, dest or "/")


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def extract(chunks: Iterator[bytes], source: str, dest: Path) -> None:
    """Unpack a `docker cp JOB:SOURCE -` stream at `dest` with `docker cp`'s rules.

    A file goes into `dest` if it is a folder, else becomes `dest` (its parent must exist).
    A folder goes into `dest` if it is one (its contents only for `SOURCE/.`), else becomes
    `dest`. Entries that would land outside the destination, device files and set-uid bits are
    refused (tarfile's `data` filter), so a job cannot write anywhere else here.
    """
    import tarfile

    written = str(dest)  # as typed: a trailing / says "a folder"
    dest = Path(os.path.abspath(dest))
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        first = tar.next()
        if first is None:
            raise UsageError(f"nothing to copy at {source!r}")
        root = first.name.split("/", 1)[0]
        base, top = _place(first, root, source, dest, written.endswith(("/", os.sep)))
        for member in _members(first, tar):
            rest = member.name[len(root) :].lstrip("/") if member.name != root else ""
            member.name = f"{top}/{rest}" if rest else top
            if member.islnk() and member.linkname.split("/", 1)[0] == root:
                linked = member.linkname[len(root) :].lstrip("/")
                member.linkname = f"{top}/{linked}" if linked else top
            try:
                tar.extract(member, path=base, filter="data")
            except tarfile.FilterError as e:
                raise UsageError(f"refusing to unpack {member.name!r}: {e}") from e


def _members(first: tarfile.TarInfo, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    yield first
    while (member := tar.next()) is not None:
        yield member


def _place(
    first: tarfile.TarInfo, root: str, source: str, dest: Path, folder_only: bool
) -> tuple[Path, str]:
    """(folder to unpack in, name the archive's root gets there), by docker cp's rules."""
    is_dir = first.isdir()
    contents_only = source.rstrip("/").endswith("/.") or source == "."
    if dest.is_dir():
        if is_dir and contents_only:
            return dest.parent, dest.name  # the folder's contents merge into dest
        return dest, root
    if dest.exists():
        if is_dir:
            raise UsageError(f"cannot copy folder {source!r} to file {str(dest)!r}")
        return dest.parent, dest.name
    if folder_only and not is_dir:
        raise UsageError(f"the destination folder {str(dest)!r} does not exist")
    if not dest.parent.is_dir():
        raise UsageError(f"the destination's folder {str(dest.parent)!r} does not exist")
    return dest.parent, dest.name
