"""`cp` between here and a job, with docker cp's rules: a job's files unpacked here (checked
entry by entry, written beside DEST and moved into place whole: radops.copying), and local files
or a tar stream sent into a job. Each reports the bytes moved so far through `progress`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from radops.progress import BRIEF_S, ProgressCallback, metered, no_progress, transfer_meter

if TYPE_CHECKING:
    from radops.api.session import Session


def download(
    session: Session,
    job: str,
    source: str,
    dest: str | Path,
    progress: ProgressCallback = no_progress,
) -> None:
    """`source` in the job (a file or folder; `SRC/.` its contents) at `dest` here, as typed
    (`DEST/` says a folder), with `docker cp`'s rules; DEST is left as it was on any failure."""
    from radops.copying import download as unpack

    chunks = archive_from(session, job, source, progress)
    unpack(chunks, source or "/", str(dest))


def archive_from(
    session: Session, job: str, source: str, progress: ProgressCallback = no_progress
) -> Iterator[bytes]:
    """`source` in the job as a tar stream (`docker cp JOB:SRC -`), counted into `progress`."""
    label = f"Copying {source or '/'} from job {job}"
    meter = transfer_meter(progress, label, None, brief=BRIEF_S)
    return metered(session.copy_from(job, source or "/"), meter)


def upload(
    session: Session,
    source: str | Path,
    job: str,
    dest: str,
    progress: ProgressCallback = no_progress,
) -> None:
    """The local file or folder `source` (as typed: `SRC/.` is a folder's contents) copied to
    `dest` in the job, as `docker cp` does."""
    session.copy_to(job, source, dest or "/", progress)


def upload_archive(
    session: Session,
    archive: Iterable[bytes],
    job: str,
    dest: str,
    progress: ProgressCallback = no_progress,
) -> None:
    """A tar stream unpacked into the folder `dest` in the job (`docker cp - JOB:DEST`)."""
    meter = transfer_meter(progress, f"Copying an archive to job {job}", None, brief=BRIEF_S)
    session.copy_archive_to(job, metered(archive, meter), dest or "/")
