"""Sending an image without the layers the remote engine already has.

An engine identifies a layer by its *chain ID*: the layer's diff ID (the sha256 of its
uncompressed tar) chained with every layer below it. `docker load` looks each layer of the
archive's image up by chain ID first and only reads the layer's file when the engine lacks it,
so an archive may leave out the files of layers the remote has. `filtered_archive` does that to
a `docker save` stream as it flows, in one pass:

- the OCI layout (Docker 25+) names layer files by digest (`blobs/sha256/<diff id>`): a layer
  the remote has is dropped as it starts, unread;
- the classic layout (Docker <= 24) names them `<v1 id>/layer.tar`, ids that say nothing about
  the content. Each folder's `json` (before its `layer.tar`: the members come sorted) names
  its parent folder, and the base layer's has none: a folder whose chain down to the base has
  been seen is at a known depth, so its diff ID is the image's at that depth, and the file is
  dropped unread or sent as it comes. That is always the base layer, most often the biggest.
  Any other is hashed as it passes and held back (in memory, then a temporary file past
  `HOLD_IN_MEMORY`) until its diff ID is known; then sent or dropped. (Were a depth ever
  wrong, a layer dropped by mistake makes the remote's `docker load` fail for a missing file,
  and the caller sends the whole archive; one kept by mistake only costs its bytes.)

Everything else (configs, manifests, other files of a layer folder) passes through as it is.
Engines with the containerd image store load OCI archives but want every blob: the caller
sends them the whole archive (`RemoteLayers.partial_ok`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from radops.errors import RadopsError

BLOCK = 512
HOLD_IN_MEMORY = 32 << 20
_CHUNK = 1 << 20
_OCI_BLOB = "blobs/sha256/"
_JSON_MAX = 1 << 20  # a classic layer's `json` (its v1 config) is a few kB


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of each layer of an image whose layers' diff IDs are `diff_ids`."""
    chains: list[str] = []
    for diff in diff_ids:
        if not chains:
            chains.append(diff)
        else:
            link = f"{chains[-1]} {diff}".encode()
            chains.append("sha256:" + hashlib.sha256(link).hexdigest())
    return chains


@dataclass(frozen=True)
class RemoteLayers:
    """What the remote engine holds: the chain IDs of its images' layers, and its store."""

    chains: frozenset[str]
    containerd_store: bool

    @property
    def partial_ok(self) -> bool:
        """Whether `docker load` there takes an archive without the layers it has."""
        return not self.containerd_store

    def needed(self, diff_ids: list[str]) -> set[str]:
        """The diff IDs whose files an archive of the image must carry for this engine."""
        chains = chain_ids(diff_ids)
        return {d for d, c in zip(diff_ids, chains, strict=True) if c not in self.chains}


def base_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile's stages start FROM (not `scratch`, not an earlier stage, not a
    reference made of build arguments)."""
    stages: set[str] = set()
    bases: list[str] = []
    for raw in dockerfile.splitlines():
        words = raw.split()
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if not args:
            continue
        ref = args[0]
        known = ref.lower() == "scratch" or ref.lower() in stages or "$" in ref
        if not known and ref not in bases:
            bases.append(ref)
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
    return bases


def parse_remote_layers(out: bytes) -> RemoteLayers:
    """Read LAYERS_SCRIPT's output: `radops:driver <DriverStatus JSON>`, then one JSON list of
    diff IDs per image."""
    chains: set[str] = set()
    containerd = False
    for raw in out.splitlines():
        line = raw.decode(errors="replace").strip()
        if line.startswith("radops:driver "):
            containerd = "io.containerd.snapshotter" in line
        elif line.startswith("["):
            try:
                diffs = json.loads(line)
            except ValueError:
                continue
            if isinstance(diffs, list) and all(isinstance(d, str) for d in diffs):
                chains.update(chain_ids(diffs))
    return RemoteLayers(frozenset(chains), containerd)


@dataclass
class FilterStats:
    """What a filtered archive left out, and what it sent."""

    sent: int = 0
    skipped_layers: int = 0
    skipped_bytes: int = 0
    kept_layers: set[str] = field(default_factory=set)  # diff IDs whose files were sent


class _Reader:
    """Exact-size reads over an iterable of chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def pieces(self, size: int) -> Iterator[bytes]:
        """The next `size` bytes, as they come (EOF before them is an error)."""
        while size > 0:
            if not self._buffer:
                self._buffer = next(self._chunks, b"")
                if not self._buffer:
                    raise ValueError("the image archive ended in the middle of a file")
            piece, self._buffer = self._buffer[:size], self._buffer[size:]
            size -= len(piece)
            yield piece

    def read(self, size: int) -> bytes:
        return b"".join(self.pieces(size))

    def rest(self) -> Iterator[bytes]:
        """Everything after what was read."""
        if self._buffer:
            yield self._buffer
            self._buffer = b""
        yield from self._chunks

    def at_end(self) -> bool:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return True
            self._buffer = chunk
        return False


def _size(header: bytes, pax: bytes | None) -> int:
    """A member's size: a PAX `size=` record wins (Go's archive/tar, docker's, writes sizes of
    8 GiB and more there), else the header's octal or base-256 field."""
    if pax is not None:
        for record in _pax_records(pax):
            if record.startswith(b"size="):
                return int(record[5:])
    field_ = header[124:136]
    if field_[0] & 0x80:  # base-256 (GNU): the bits after the marker bit, big-endian
        if field_[0] == 0xFF:
            raise ValueError("a negative size")
        return int.from_bytes(bytes([field_[0] & 0x7F]) + field_[1:], "big")
    text = field_.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _name(header: bytes, pax: bytes | None, long_name: bytes | None) -> str:
    if pax is not None:
        for record in _pax_records(pax):
            if record.startswith(b"path="):
                return record[5:].decode(errors="replace")
    if long_name is not None:
        return long_name.split(b"\0", 1)[0].decode(errors="replace")
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX ustar: a prefix field (GNU's has none)
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode(errors="replace")


def _pax_records(data: bytes) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space == -1:
            return
        try:
            length = int(data[pos:space])
        except ValueError:
            return
        if length <= 0:
            return
        yield data[space + 1 : pos + length].rstrip(b"\n")
        pos += length


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


class _Held:
    """A layer file held back until its diff ID is known: memory, then a temporary file."""

    def __init__(self) -> None:
        self.memory: list[bytes] = []
        self.in_memory = 0
        self.file: IO[bytes] | None = None
        self.digest = hashlib.sha256()

    def add(self, piece: bytes) -> None:
        self.digest.update(piece)
        if self.file is None and self.in_memory + len(piece) <= HOLD_IN_MEMORY:
            self.memory.append(piece)
            self.in_memory += len(piece)
            return
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="radops-layer-")  # noqa: SIM115 (closed in close())
            for held in self.memory:
                self.file.write(held)
            self.memory = []
        self.file.write(piece)

    def replay(self) -> Iterator[bytes]:
        yield from self.memory
        if self.file is not None:
            self.file.seek(0)
            while chunk := self.file.read(_CHUNK):
                yield chunk

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def filtered_archive(
    chunks: Iterable[bytes],
    needed: set[str],
    all_layers: set[str],
    stats: FilterStats,
    order: list[str] | None = None,
) -> Iterator[bytes]:
    """`chunks` (a `docker save` tar) without the files of layers in `all_layers` that are not
    `needed`. Diff IDs are `sha256:<hex>`; `order`, the image's diff IDs bottom first, lets
    classic layers at a known depth pass unhashed. Counts into `stats`. An archive it cannot
    read, or no room for a held layer, is a RadopsError."""
    try:
        yield from _filter(chunks, needed, all_layers, stats, order or [])
    except ValueError as e:
        raise RadopsError(f"cannot read the image archive from the local engine: {e}") from e
    except OSError as e:
        raise RadopsError(
            f"cannot hold an image layer in a temporary file: {e.strerror or e}",
            "Free space in the temporary folder (TMPDIR), or ship with --transfer registry.",
        ) from e


def _depth(folder: str, parents: dict[str, str | None], most: int) -> int | None:
    """How many layers lie below the classic layer `folder`, if its chain is known down to the
    base (at most `most` steps); else None."""
    depth = 0
    while folder in parents and depth <= most:
        parent = parents[folder]
        if parent is None:
            return depth
        folder, depth = parent, depth + 1
    return None


def _parent(data: bytes) -> tuple[bool, str | None]:
    """A classic layer's `json`: (readable, its parent folder or None for the base)."""
    try:
        parent = json.loads(data).get("parent")
    except (ValueError, AttributeError):
        return False, None
    if parent is None or (isinstance(parent, str) and "/" not in parent and parent):
        return True, parent
    return False, None


def _filter(
    chunks: Iterable[bytes],
    needed: set[str],
    all_layers: set[str],
    stats: FilterStats,
    order: list[str],
) -> Iterator[bytes]:
    reader = _Reader(chunks)
    parents: dict[str, str | None] = {}  # classic layer folder -> its parent's (None: base)
    pending: list[bytes] = []  # extended headers (PAX, GNU long name) of the next member
    pax: bytes | None = None
    long_name: bytes | None = None

    def out(data: bytes) -> bytes:
        stats.sent += len(data)
        return data

    while not reader.at_end():
        header = reader.read(BLOCK)
        if header == b"\0" * BLOCK:  # the end: two zero blocks (and any padding after them)
            yield out(header)
            for rest in reader.rest():
                yield out(rest)
            return
        kind = header[156:157]
        size = _size(header, None if kind in (b"x", b"L") else pax)
        if kind in (b"x", b"L"):  # belongs to the next member: hold it with that one
            data = reader.read(_padded(size))
            pending += [header, data]
            if kind == b"x":
                pax = data[:size]
            else:
                long_name = data[:size]
            continue
        name = _name(header, pax, long_name)
        lead, pending, pax, long_name = pending, [], None, None
        is_file = kind in (b"0", b"\0", b"7")
        oci_diff = "sha256:" + name[len(_OCI_BLOB) :] if name.startswith(_OCI_BLOB) else None
        folder, _, leaf = name.rpartition("/")
        if is_file and order and leaf == "json" and "/" not in folder and size <= _JSON_MAX:
            data = reader.read(_padded(size))
            readable, parent = _parent(data[:size])
            if readable:
                parents[folder] = parent
            for part in (*lead, header, data):
                yield out(part)
            continue
        # A layer file whose diff ID is known before it is read: by its OCI name, or by its
        # classic folder's depth.
        diff: str | None = None
        if is_file and oci_diff is not None and oci_diff in all_layers:
            diff = oci_diff
        elif is_file and leaf == "layer.tar" and "/" not in folder:
            depth = _depth(folder, parents, len(order))
            diff = order[depth] if depth is not None and depth < len(order) else None
        if diff is not None:
            if diff in all_layers and diff not in needed:
                stats.skipped_layers += 1
                stats.skipped_bytes += size
                for _ in reader.pieces(_padded(size)):
                    pass
                continue
            stats.kept_layers.add(diff)
            for part in (*lead, header):
                yield out(part)
            for piece in reader.pieces(_padded(size)):
                yield out(piece)
            continue
        if is_file and name.endswith("/layer.tar"):
            held = _Held()
            try:
                for piece in reader.pieces(size):
                    held.add(piece)
                padding = reader.read(_padded(size) - size)
                diff = "sha256:" + held.digest.hexdigest()
                if diff in all_layers and diff not in needed:
                    stats.skipped_layers += 1
                    stats.skipped_bytes += size
                    continue
                stats.kept_layers.add(diff)
                for part in (*lead, header):
                    yield out(part)
                for piece in held.replay():
                    yield out(piece)
                yield out(padding)
            finally:
                held.close()
            continue
        for part in (*lead, header):
            yield out(part)
        for piece in reader.pieces(_padded(size)):
            yield out(piece)
