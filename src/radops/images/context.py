"""Build contexts: check one, list what a build sends, and hash it into the image's tag."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from radops.errors import UsageError


@dataclass(frozen=True)
class BuildOptions:
    """How to build, beyond the context: `--build-arg`s and `--target` make another image (they
    are hashed into its tag); `--no-cache` rebuilds the same one from scratch."""

    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    no_cache: bool = False

    def hash_key(self) -> bytes:
        """What of these options decides the image (not no_cache: the same content again)."""
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


def hash_context(
    context: Path,
    files: Iterable[str],
    dockerfile: str,
    platform: str | None = None,
    build: BuildOptions | None = None,
) -> str:
    """sha256 over each path, its type and executable bit, and its content; plus the Dockerfile.

    A build for another platform than the engine's own (`platform`) hashes differently.
    """
    h = hashlib.sha256()
    if platform:
        h.update(b"platform\0" + platform.encode() + b"\0")
    if build is not None:
        h.update(build.hash_key())
    df = Path(dockerfile) if os.path.isabs(dockerfile) else context / dockerfile
    h.update(b"dockerfile\0" + dockerfile.encode() + b"\0" + df.read_bytes() + b"\0")
    for rel in files:
        path = context / rel
        st = path.lstat()
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        if stat.S_ISLNK(st.st_mode):
            h.update(b"L" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif stat.S_ISDIR(st.st_mode):
            h.update(b"D%o" % stat.S_IMODE(st.st_mode))
        elif stat.S_ISREG(st.st_mode):
            # The whole mode: COPY keeps it, so 0600 -> 0644 is another image.
            h.update(b"F%o" % stat.S_IMODE(st.st_mode))
            try:
                with path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
            except OSError as e:
                message = f"cannot read {str(path)!r} in the build context: {e.strerror}"
                raise UsageError(message) from e
        else:  # a socket, FIFO or device: docker sends only its header, so hash only its kind
            h.update(b"S%o" % stat.S_IFMT(st.st_mode))
        h.update(b"\0")
    return h.hexdigest()


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
    files = context_files(context, dockerfile)
    return image_tag(context, hash_context(context, files, dockerfile, platform, build))
