"""Archive entries written into a private folder, each checked: nothing lands outside it, nothing
is written through a link, no device files, no set-uid bits."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path

from radops.copying.names import parts_under, refused
from radops.errors import RadopsError

_CHUNK = 1 << 20


class Stager:
    """Writes the entries of one archive below `base` (the archive root's path there). `base`
    lives in a folder only this user can enter (mkdtemp, 0700) that nothing else writes to, so
    what radops made there is all that is there: a link it made is never followed."""

    def __init__(self, base: Path, root: str, base_exists: bool = False) -> None:
        self.base = base
        self.root = root
        # Folders made (or found) below base, as component tuples: the parents checked once.
        self._dirs: set[tuple[str, ...]] = {()} if base_exists else set()

    def add(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> tuple[str, ...]:
        """Write `member` (the entry `tar` is at); refuse it with a one-line error naming it.
        Its path components below the root."""
        parts = tuple(parts_under(member.name, self.root))
        if parts:
            self._parent(member.name, parts[:-1])
        elif member.isdir() and () in self._dirs:
            return parts  # the root folder, already there (its contents merge into it)
        path = self.base.joinpath(*parts)
        try:
            self._write(member, tar, path, parts)
        except FileExistsError:
            raise refused(member.name, "it is in the archive twice") from None
        return parts

    def _write(
        self, member: tarfile.TarInfo, tar: tarfile.TarFile, path: Path, parts: tuple[str, ...]
    ) -> None:
        if member.isdir():
            if parts not in self._dirs:
                path.mkdir()
                self._dirs.add(parts)
        elif member.issym():
            os.symlink(member.linkname, path)  # a link as a link, wherever it points
        elif member.islnk():
            os.link(self._link_target(member), path, follow_symlinks=False)
        elif member.isreg():
            self._file(member, tar, path)
        else:
            raise refused(member.name, "a device file, pipe or other special file")

    def _file(self, member: tarfile.TarInfo, tar: tarfile.TarFile, path: Path) -> None:
        # As tarfile's `data` filter: no set-uid/set-gid/sticky bits, no group/other write,
        # always readable and writable by the owner.
        mode = member.mode & 0o755
        if not mode & 0o100:
            mode &= ~0o111
        mode |= 0o600
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has a reader
        with source, open(os.open(path, flags, 0o600), "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
            os.fchmod(out.fileno(), mode)
        os.utime(path, (member.mtime, member.mtime))

    def _parent(self, name: str, parts: tuple[str, ...]) -> None:
        """Make sure each folder above an entry is a real folder made here (made now if the
        archive did not list it), never a link or a file."""
        for depth in range(len(parts) + 1):
            prefix = parts[:depth]
            if prefix in self._dirs:
                continue
            path = self.base.joinpath(*prefix)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                path.mkdir()
            else:
                if stat.S_ISLNK(st.st_mode):
                    shown = "/".join(prefix) or self.root
                    raise refused(name, f"it would be written through the link {shown!r}")
                if not stat.S_ISDIR(st.st_mode):
                    raise refused(name, f"{'/'.join(prefix) or self.root!r} is not a folder")
            self._dirs.add(prefix)

    def _link_target(self, member: tarfile.TarInfo) -> Path:
        """A hard link's target: a regular file this archive wrote before it, nothing else."""
        try:
            parts: tuple[str, ...] = tuple(parts_under(member.linkname, self.root))
        except RadopsError:
            parts = ()
        if parts and parts[:-1] in self._dirs:
            target = self.base.joinpath(*parts)
            try:
                if stat.S_ISREG(os.lstat(target).st_mode):
                    return target
            except FileNotFoundError:
                pass
        raise refused(member.name, f"a hard link to {member.linkname!r}, not a file of this copy")
