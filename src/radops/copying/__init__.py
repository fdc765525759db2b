"""`cp` from a job to here: the job's tar stream unpacked by docker cp's rules, all or nothing."""

from __future__ import annotations

import contextlib
import io
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from radops.copying.names import CONTENTS_ROOTS, parts_under, refused, root_of
from radops.copying.placing import (
    Placement,
    action,
    commit,
    interrupts_raise,
    place,
    signals_held,
)
from radops.copying.staging import Stager
from radops.errors import RadopsError, UsageError

__all__ = ["download"]


def download(chunks: Iterator[bytes], source: str, dest: str) -> None:
    """Unpack `chunks`, the stream of `docker cp JOB:SOURCE -`, at `dest` (as typed: a trailing
    / says a folder) with docker cp's rules.

    Everything is written into a private folder beside where it goes, each entry checked (one
    line naming any entry outside SOURCE's root, absolute, with `..`, written through a link,
    or a device file), and moved into place only once the whole stream arrived: an error or
    an interrupt leaves `dest` as it was, with nothing left over. Links come as links.
    """
    reader = _ChunkReader(chunks)
    try:
        with interrupts_raise():
            try:
                _download(reader, source, dest)
            except tarfile.TarError as e:
                reader.drain()  # cut short: the executor's own error (connection lost) says why
                raise RadopsError(
                    f"the copy of {source!r} was cut short or damaged ({e}); {dest!r} is unchanged"
                ) from e
    except OSError as e:
        where = f" {e.filename!r}" if e.filename else ""
        raise RadopsError(f"cannot write{where}: {e.strerror or e}") from e
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            # On a dropped connection closing fails too; the first error is the one to show.
            with contextlib.suppress(Exception):
                close()


def nothing_to_copy(source: str) -> UsageError:
    """An empty archive for SOURCE. Docker sends one for a file whose name is not UTF-8 (its
    archive names it by a U+FFFD copy of the name and finds nothing), on every kind: say so."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        parent = posixpath.dirname(source.rstrip("/")) or "/"
        return UsageError(
            f"docker cannot copy {source!r} alone: its name is not UTF-8 text",
            f"Copy the folder that holds it instead (JOB:{parent}): docker copies such names "
            "inside a folder.",
        )
    return UsageError(f"nothing to copy at {source!r}")


def _download(reader: _ChunkReader, source: str, dest: str) -> None:
    root = root_of(source)
    with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 20), mode="r|") as tar:
        first = tar.next()
        if first is None:
            raise nothing_to_copy(source)
        if parts_under(first.name, root):
            raise refused(first.name, f"the archive does not start with {root!r}")
        if root in CONTENTS_ROOTS and not first.isdir():
            raise refused(first.name, "not a folder")
        placement = place(dest, source, first.isdir(), root)
        with _staging(placement) as (base, merged):
            _unpack(tar, first, Stager(base, root, merged), placement)
            reader.drain()  # the end of the stream is where an executor reports a failure
            if reader.received < tar.offset + 2 * tarfile.BLOCKSIZE:
                raise tarfile.ReadError("no end-of-archive marker")
            commit(placement, base)


def _unpack(
    tar: tarfile.TarFile, first: tarfile.TarInfo, stager: Stager, placement: Placement
) -> None:
    member: tarfile.TarInfo | None = first
    while member is not None:
        parts = stager.add(member, tar)
        if placement.merge:  # a conflict with what is there fails now, not after the transfer
            action(placement.target.joinpath(*parts), member.isdir())
        # tarfile keeps every header it read (not in its type stubs): memory would grow per file.
        tar.members.clear()  # type: ignore[attr-defined]
        member = tar.next()


@contextlib.contextmanager
def _staging(placement: Placement) -> Iterator[tuple[Path, bool]]:
    """(where the archive's root is written, whether it is an existing folder), in a private
    folder (0700) in the folder the copy moves into; removed on every way out."""
    folder = Path(tempfile.mkdtemp(prefix=".radops-cp-", dir=placement.staging_parent))
    try:
        yield (folder, True) if placement.merge else (folder / "copy", False)
    finally:
        with signals_held():
            shutil.rmtree(folder, ignore_errors=True)


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks (what tarfile's stream mode reads), counting
    the bytes it received."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
            self.received += len(chunk)
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def drain(self) -> None:
        """Read the stream to its end."""
        for chunk in self._chunks:
            self.received += len(chunk)
