"""Tar archives made entry by entry, hostile ones included, and a folder tree as plain data."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

Entry = tuple[str, str, "str | bytes"]  # (name, kind, content or link target)

TYPES = {
    "dir": tarfile.DIRTYPE,
    "file": tarfile.REGTYPE,
    "sym": tarfile.SYMTYPE,
    "lnk": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
}


def archive(*entries: Entry, mode: int | None = None, end: bool = True) -> bytes:
    """A tar of `entries`, as docker cp sends one (GNU format); without `end`, cut off right
    after the last entry (no end-of-archive blocks)."""
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT)  # noqa: SIM115
    for name, kind, payload in entries:
        info = tarfile.TarInfo(name)
        info.type = TYPES[kind]
        info.mtime = 1_700_000_000
        info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
        data = None
        if kind == "file":
            content = payload.encode() if isinstance(payload, str) else payload
            info.size = len(content)
            data = io.BytesIO(content)
        elif kind in ("sym", "lnk"):
            info.linkname = str(payload)
        tar.addfile(info, data)
    if not end:
        return out.getvalue()  # before close() writes the end blocks
    tar.close()
    return out.getvalue()


def tree(folder: Path) -> dict[str, str]:
    """Every entry below `folder`: `dir`, `file:CONTENT` or `link:TARGET`."""
    found: dict[str, str] = {}
    for top, dirs, files in os.walk(folder):  # links to folders are listed, never entered
        for name in [*dirs, *files]:
            path = Path(top, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = f"file:{path.read_bytes().decode(errors='replace')}"
    return dict(sorted(found.items()))
