"""A stat cache for context hashing, as git's index: a file whose (size, mtime, ctime, inode,
device, mode) are what they were when it was last read has the digest it had then, so an
unchanged context is re-hashed by `stat` alone.

Racy timestamps (git's problem): a file written in the same clock tick as it was read can change
again without its timestamps moving. So only files whose mtime and ctime are older than the hash's
start by `RACY_NS` are remembered; younger ones are read every time until they settle.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

# (size, mtime_ns, ctime_ns, inode, device, mode): what must not move for a digest to hold.
StatKey = tuple[int, int, int, int, int, int]

RACY_NS = 2_000_000_000  # coarse file-system clocks and clock steps: 2 s of doubt
_VERSION = 1


def _cache_file(context: Path) -> Path:
    import hashlib

    import platformdirs

    folder = Path(platformdirs.user_cache_dir("radops", appauthor=False)) / "context-hashes"
    name = hashlib.sha256(os.fsencode(context)).hexdigest()[:24] + ".json"
    return folder / name


def load(context: Path) -> dict[str, tuple[StatKey, str]]:
    """The remembered digests of `context`'s files (relative path -> (stat key, sha256)); empty
    when there are none or the file is unreadable or from another version."""
    try:
        data = json.loads(_cache_file(context).read_text())
        if data.get("version") != _VERSION or data.get("context") != os.fsdecode(context):
            return {}
        return {rel: (tuple(row[:6]), row[6]) for rel, row in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def save(context: Path, entries: dict[str, tuple[StatKey, str]]) -> None:
    """Remember `entries` for `context` (atomically, 0600); a cache that cannot be written is
    only a slower next hash, never an error."""
    import tempfile

    file = _cache_file(context)
    data = {
        "version": _VERSION,
        "context": os.fsdecode(context),
        "files": {rel: [*key, digest] for rel, (key, digest) in entries.items()},
    }
    with contextlib.suppress(OSError):
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
