"""`cp` between here and a job, with docker cp's rules: a job's files unpacked here (checked
entry by entry, written beside DEST and moved into place whole: radops.copying), and local files
or a tar stream sent into a job."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radops.api.session import Session


def download(session: Session, job: str, source: str, dest: str | Path) -> None:
    """`source` in the job (a file or folder; `SRC/.` its contents) at `dest` here, as typed
    (`DEST/` says a folder), with `docker cp`'s rules; DEST is left as it was on any failure."""
    from radops.copying import download as unpack

    unpack(session.copy_from(job, source or "/"), source or "/", str(dest))


def upload(session: Session, source: str | Path, job: str, dest: str) -> None:
    """The local file or folder `source` (as typed: `SRC/.` is a folder's contents) copied to
    `dest` in the job, as `docker cp` does."""
    session.copy_to(job, source, dest or "/")


def upload_archive(session: Session, archive: Iterable[bytes], job: str, dest: str) -> None:
    """A tar stream unpacked into the folder `dest` in the job (`docker cp - JOB:DEST`)."""
    session.copy_archive_to(job, archive, dest or "/")
