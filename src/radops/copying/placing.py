"""Where a copy from a job goes (docker cp's rules, links at the destination never followed), and
its move into place once it is complete."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radops.copying.names import CONTENTS_ROOTS
from radops.errors import RadopsError, UsageError

LINK_HINT = "radops never writes through a link: name the folder it points to, or remove the link."
Action = Literal["move", "replace", "merge"]


@dataclass(frozen=True)
class Placement:
    """What the archive's root becomes: `target`, moved or replaced there; with `merge`, the
    existing folder the root folder's entries go into."""

    target: Path
    merge: bool

    @property
    def staging_parent(self) -> Path:
        """Where the copy is written first: the folder it moves into, so the same filesystem."""
        return self.target if self.merge else self.target.parent


def place(dest: str, source: str, is_dir: bool, root: str) -> Placement:
    """Where the root entry of `source`'s archive (a folder if `is_dir`) goes for `dest` as typed
    (a trailing / says a folder); a UsageError if docker cp's rules refuse, or if it would mean
    writing through the link at `dest`."""
    if not dest:
        raise UsageError("the destination is empty", "Give a path, e.g. `.`.")
    folder_only = dest.endswith(("/", os.sep, "/.")) or dest in (".", "..")
    path = Path(os.path.abspath(dest))
    st = _lstat(path)
    if st is None:
        if folder_only and not is_dir:
            raise UsageError(f"the destination folder {dest!r} does not exist")
        if not path.parent.is_dir():
            raise UsageError(f"the destination's folder {str(path.parent)!r} does not exist")
        return Placement(path, merge=False)
    if stat.S_ISLNK(st.st_mode):
        if is_dir or folder_only or path.is_dir():
            raise UsageError(f"refusing to write through the symbolic link {dest!r}", LINK_HINT)
        return Placement(path, merge=False)  # the link itself is replaced, its target untouched
    if stat.S_ISDIR(st.st_mode):
        if is_dir and root in CONTENTS_ROOTS:
            return Placement(path, merge=True)
        inside = path / root
        return Placement(inside, merge=action(inside, is_dir) == "merge")
    if folder_only:
        raise UsageError(f"the destination {dest!r} is not a folder")
    if is_dir:
        raise UsageError(f"cannot copy folder {source!r} to file {dest!r}")
    action(path, is_dir)  # a regular file, else refused
    return Placement(path, merge=False)


def action(target: Path, is_dir: bool, device: int | None = None) -> Action:
    """How an entry (a folder if `is_dir`) joins a folder at `target`, as docker cp does inside
    a folder: new names move in, files and links are replaced (a link itself, never what it
    points to), folders merge; a folder never replaces a file or a link, nor a file a folder.
    A merge stays on `device` (the staging folder's), so each move is a rename."""
    st = _lstat(target)
    if st is None:
        return "move"
    if stat.S_ISDIR(st.st_mode):
        if not is_dir:
            raise UsageError(f"cannot overwrite folder {str(target)!r} with a file or link")
        if device is not None and st.st_dev != device:
            raise UsageError(f"cannot merge into {str(target)!r}: it is another filesystem")
        return "merge"
    if is_dir:
        kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "file"
        hint = "radops never writes through a link: remove it, or copy elsewhere."
        raise UsageError(f"cannot overwrite {kind} {str(target)!r} with a folder", hint)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise UsageError(f"refusing to replace {str(target)!r}: not a regular file")
    return "replace"


def commit(placement: Placement, staged: Path) -> None:
    """Move the complete copy at `staged` into place, with signals held until it is done: a
    file or new folder in one rename, a merge entry by entry (each checked first, all of them
    before the first move)."""
    with signals_held():
        if not placement.merge:
            os.replace(staged, placement.target)
            return
        _merge(staged, placement.target, act=False)
        _merge(staged, placement.target, act=True)


def _merge(staged: Path, target: Path, act: bool) -> None:
    device = os.lstat(staged).st_dev
    pending = [(staged, target)]
    while pending:
        source, into = pending.pop()
        with os.scandir(source) as entries:
            names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for name, is_dir in names:
            there = into / name
            if there == staged:
                raise RadopsError(f"refusing to unpack {name!r}: radops' own staging folder")
            how = action(there, is_dir, device)
            if how == "merge":
                pending.append((source / name, there))
            elif act:
                os.replace(source / name, there)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, TERM and HUP wait until the block is done, then arrive as if sent just after.
    Python-level handlers, not a signal mask: Python runs handlers in the main thread whichever
    thread the signal reached (an SSH transport runs one of its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        signal.raise_signal(caught[0])


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """TERM and HUP (a closed terminal) raise KeyboardInterrupt as Ctrl-C does, so a partial
    copy is removed on those too; a signal already ignored (nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    replaced = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            replaced[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in replaced.items():
            signal.signal(sig, handler)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
