"""Locks between radops processes on this machine: files in radops' cache folder (flock, gone
with the process that held them). One radops does a piece of work (build an image, ship it to
an executor) while the others that want the same wait for it, then find it done."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from radops.errors import RadopsError
from radops.progress import ProgressCallback

LOCK_WAIT_S = 3600  # a build or a transfer may take long; a waiting run says what it waits for


@contextlib.contextmanager
def waiting_lock(kind: str, key: str, doing: str, progress: ProgressCallback) -> Iterator[bool]:
    """Hold the `kind` lock for `key` (e.g. build-locks, a tag); yield whether another radops
    held it first (then what it was `doing`, e.g. `building X`, may be done already)."""
    import platformdirs
    from filelock import FileLock, Timeout

    folder = Path(platformdirs.user_cache_dir("radops", appauthor=False)) / kind
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock"
    lock = FileLock(str(folder / name), mode=0o600)
    waited = False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        waited = True
        progress(f"Waiting for another radops that is {doing}")
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout as e:
            raise RadopsError(
                f"another radops was still {doing} after {LOCK_WAIT_S}s",
                "Check for a stuck radops or docker (`ps`); the lock goes with it.",
            ) from e
    try:
        yield waited
    finally:
        lock.release()
