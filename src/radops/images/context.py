"""Build contexts: check one, list what a build sends, and hash it into the image's tag."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from radops.errors import UsageError
from radops.images import statcache


@dataclass(frozen=True)
class BuildOptions:
    """How to build, beyond the context: `--build-arg`s and `--target` make another image (they
    are hashed into its tag); `--no-cache` rebuilds the same one from scratch."""

    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    no_cache: bool = False
    # BuildKit only, and never part of the tag: `--secret id=ID,src=PATH` as (id, absolute
    # path), and `--ssh` specs (`default`, `ID=PATH`) forwarded to RUN --mount=type=ssh.
    secrets: tuple[tuple[str, str], ...] = ()
    ssh: tuple[str, ...] = ()

    @property
    def needs_buildkit(self) -> list[str]:
        """The options given that only BuildKit can honour."""
        return [flag for flag, used in (("--secret", self.secrets), ("--ssh", self.ssh)) if used]

    def hash_key(self) -> bytes:
        """What of these options decides the image (not no_cache: the same content again; not
        secrets, which must stay out of the image and its name)."""
        if not self.build_args and self.target is None:
            return b""  # no options: the tags radops gave before options existed
        args = "".join(f"{k}={v}\0" for k, v in sorted(self.build_args))
        return f"target\0{self.target or ''}\0args\0{args}".encode("utf-8", "surrogateescape")


IMAGE_REPOSITORY_PREFIX = "radops/"
HASH_CHARS = 16  # 64 bits of the context's sha256 in the tag
_CHUNK = 1 << 20


def check_context(context: Path, dockerfile: str | None) -> tuple[Path, str]:
    """Check the build folder and its Dockerfile; return the folder and the Dockerfile name."""
    if not context.exists():
        raise UsageError(f"path {str(context)!r} does not exist")
    if not context.is_dir():
        raise UsageError(
            f"path {str(context)!r} is not a folder", "PATH is the build context folder."
        )
    name = dockerfile or "Dockerfile"
    file = Path(name) if os.path.isabs(name) else context / name
    if not file.is_file():
        raise UsageError(
            f"no Dockerfile at {str(file)!r}",
            "Add one to the folder, or name it with --file.",
        )
    return context.resolve(), _dockerfile_name(context.resolve(), file.resolve())


def _dockerfile_name(context: Path, file: Path) -> str:
    """One name for one Dockerfile, however `--file` spelled it (`./Dockerfile`, an absolute
    path into the context, ...): relative to the context inside it, else absolute."""
    try:
        return file.relative_to(context).as_posix()
    except ValueError:
        return str(file)


def dockerignore_file(context: Path, dockerfile: str) -> Path:
    """The ignore file a build uses: `<Dockerfile>.dockerignore` beside the Dockerfile if there
    is one (it takes precedence, as with BuildKit), else the context's `.dockerignore`."""
    file = Path(dockerfile) if os.path.isabs(dockerfile) else context / dockerfile
    specific = file.with_name(file.name + ".dockerignore")
    return specific if specific.is_file() else context / ".dockerignore"


def read_dockerignore(context: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """The ignore patterns of the build (`dockerignore_file`), one per line, comments dropped."""
    try:
        text = dockerignore_file(context, dockerfile).read_text()
    except FileNotFoundError:
        return []
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context: Path, dockerfile: str) -> list[str]:
    """The relative paths that a build sends, after the ignore file, sorted."""
    patterns = read_dockerignore(context, dockerfile)
    if not patterns:
        # Everything is sent: list it without loading docker-py (a quarter of a second).
        return sorted(_walk(context))
    from docker.utils.build import exclude_paths

    try:
        return sorted(exclude_paths(str(context), patterns, dockerfile=dockerfile))
    except OSError as e:  # docker-py walks the folder and lets the first unreadable one through
        raise _unreadable(e) from e


def _unreadable(e: OSError) -> UsageError:
    where = f" {str(e.filename)!r}" if e.filename else ""
    return UsageError(
        f"cannot read{where} in the build context: {e.strerror or e}",
        "Fix its permissions, or leave it out of the build with .dockerignore.",
    )


def _walk(context: Path) -> list[str]:
    """Every file and folder below `context`, relative, as docker-py lists them (no symlinks
    followed)."""
    found: list[str] = []

    def fail(e: OSError) -> None:  # os.walk would skip an unreadable folder without a word
        raise _unreadable(e) from e

    for folder, dirs, files in os.walk(context, onerror=fail):
        rel = os.path.relpath(folder, context)
        found += [name if rel == "." else f"{rel}/{name}" for name in (*dirs, *files)]
    return found


class _Hashed(NamedTuple):
    digest: str
    tokens: dict[str, bytes]  # relative path -> what of it went into the digest
    settled: dict[str, tuple[statcache.StatKey, str]]  # regular files safe to remember


def _hash(
    context: Path,
    files: Iterable[str],
    dockerfile: str,
    platform: str | None,
    build: BuildOptions | None,
    known: Mapping[str, tuple[statcache.StatKey, str]],
    started_ns: int,
) -> _Hashed:
    """sha256 over the Dockerfile, then each path, its type and whole mode, and its content's
    sha256 (taken from `known` when the file's stat key is unchanged, else read).

    A build for another platform than the engine's own (`platform`) hashes differently.
    """
    import hashlib  # here, not at the top: `jobs`, `logs` and `stop` load this module too

    h = hashlib.sha256()
    if platform:
        h.update(b"platform\0" + platform.encode() + b"\0")
    if build is not None:
        h.update(build.hash_key())
    df = Path(dockerfile) if os.path.isabs(dockerfile) else context / dockerfile
    h.update(b"dockerfile\0" + dockerfile.encode() + b"\0" + _read(df) + b"\0")
    tokens: dict[str, bytes] = {}
    settled: dict[str, tuple[statcache.StatKey, str]] = {}
    root = os.fspath(context) + os.sep
    racy_after = started_ns - statcache.RACY_NS
    for rel in files:  # plain strings and os calls: this loop runs once per file of the context
        path = root + rel
        try:
            st = os.lstat(path)
        except OSError as e:
            raise _unreadable(e) from e
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, mode)
            remembered = known.get(rel)
            if remembered is not None and remembered[0] == key:
                digest = remembered[1]
            else:
                digest = _file_digest(Path(path))
            if max(st.st_mtime_ns, st.st_ctime_ns) < racy_after:  # settled: outside the racy window
                settled[rel] = (key, digest)
            # The whole mode: COPY keeps it, so 0600 -> 0644 is another image.
            token = b"F%o:" % stat.S_IMODE(mode) + digest.encode()
        elif stat.S_ISDIR(mode):
            token = b"D%o" % stat.S_IMODE(mode)
        elif stat.S_ISLNK(mode):
            token = b"L" + os.readlink(path).encode("utf-8", "surrogateescape")
        else:  # a socket, FIFO or device: docker sends only its header, so hash only its kind
            token = b"S%o" % stat.S_IFMT(mode)
        tokens[rel] = token
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + token + b"\0")
    return _Hashed(h.hexdigest(), tokens, settled)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise _unreadable(e) from e


def _file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise _unreadable(e) from e
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A build context as it was hashed into its tag: what was sent, and how each path looked.

    `changed()` after a build tells whether the build may have seen anything else, so a tag is
    only ever put on an image built from exactly the hashed content.
    """

    context: Path
    dockerfile: str
    platform: str | None
    build: BuildOptions | None
    files: tuple[str, ...]
    hashed: _Hashed

    @property
    def digest(self) -> str:
        return self.hashed.digest

    @property
    def tag(self) -> str:
        return image_tag(self.context, self.digest)

    def changed(self) -> str | None:
        """The first path of the context that differs from the snapshot now, or None.

        Files whose stat key is unchanged since they settled are trusted (any write moves the
        ctime); the others, and the Dockerfile, are read again.
        """
        files = tuple(context_files(self.context, self.dockerfile))
        if files != self.files:
            return sorted(set(files) ^ set(self.files))[0]
        now = _hash(
            self.context, files, self.dockerfile, self.platform, self.build,
            self.hashed.settled, time.time_ns(),
        )  # fmt: skip
        if now.digest == self.digest:
            return None
        differs = (rel for rel in files if now.tokens[rel] != self.hashed.tokens[rel])
        return next(differs, self.dockerfile)


def snapshot(
    context: Path,
    dockerfile: str,
    platform: str | None = None,
    build: BuildOptions | None = None,
) -> Snapshot:
    """Hash the build context (`context_files`) into a `Snapshot`, reading only the files whose
    stat changed since the last hash of this folder (the stat cache)."""
    started_ns = time.time_ns()
    files = tuple(context_files(context, dockerfile))
    known = statcache.load(context)
    hashed = _hash(context, files, dockerfile, platform, build, known, started_ns)
    if any(known.get(rel) != entry for rel, entry in hashed.settled.items()) or len(
        hashed.settled
    ) != len(known):
        statcache.save(context, hashed.settled)
    return Snapshot(context, dockerfile, platform, build, files, hashed)


def hash_context(
    context: Path,
    files: Iterable[str],
    dockerfile: str,
    platform: str | None = None,
    build: BuildOptions | None = None,
) -> str:
    """The content digest of `files` in `context`, every file read (no stat cache)."""
    return _hash(context, files, dockerfile, platform, build, {}, time.time_ns()).digest


def image_tag(context: Path, digest: str) -> str:
    """`radops/<folder name>:<hash>`: the same folder content always gets the same tag."""
    slug = re.sub(r"[^a-z0-9]+", "-", context.name.lower()).strip("-")[:60] or "job"
    return f"{IMAGE_REPOSITORY_PREFIX}{slug}:{digest[:HASH_CHARS]}"


def tag_for_context(
    context: Path,
    dockerfile: str,
    platform: str | None = None,
    build: BuildOptions | None = None,
) -> str:
    return snapshot(context, dockerfile, platform, build).tag
