"""`--build remote` sends only what changed in the build context since the last build of this
folder on that executor (rsync's idea, with the content hashes radops already has).

The executor keeps the last contexts of each folder under `~/.cache/radops/contexts/<key>/`
(the key: this machine and the folder), each a tree named by the digest of its manifest (every
path with the digest of its hash token: type, mode, content), with the manifest beside it. A
build asks for the newest one's manifest (one round trip), sends a tar of the entries that
differ and the names that went away, and the executor makes the new tree from the old one with
hard links (`cp -al`), removes from it every name that changed, and copies the changes in
(unpacked first into a folder of their own): the old tree is never written. It builds from
it. The tree becomes a kept context only once its image is built and tagged; the three newest
are kept. A remote that lacks `cp -al` or `tar`, or any failure of the staging,
falls back to sending the whole context on stdin, as before.

What comes back from the remote (the state's name, its manifest) is only compared with what is
here; the state name is checked to be hex before it goes back as an argument.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

from radops.images.context import Snapshot

_HEX = re.compile(r"^[0-9a-f]{24}$")
_TEMP = re.compile(r"^/.+/tmp\.[A-Za-z0-9]+$")
KEEP = 3

# The newest kept context of `key`: its name, then its manifest (nothing if none).
STATE_SCRIPT = (
    'dir="$HOME/.cache/radops/contexts/$1"; '
    'm=$(ls -t "$dir" 2>/dev/null | grep "^[0-9a-f]*\\.manifest$" | head -n 1); '
    '[ -n "$m" ] && [ -d "$dir/${m%.manifest}" ] && echo "${m%.manifest}" && cat "$dir/$m"; exit 0'
)
# Make a new tree from kept context $2 (none: empty) and the tar on stdin (`ctl/remove`: names
# to drop, NUL-separated; `files/...`: what changed); print `radops:ok` and its folder. Trees
# that an interrupted build left for more than a day go.
STAGE_SCRIPT = (
    'key=$1 base=$2; top="$HOME/.cache/radops/contexts"; dir="$top/$key"; '
    'mkdir -p "$dir" && chmod 700 "$top" || exit 1; '
    'find "$dir" -maxdepth 1 -name "tmp.*" -mmin +1440 -exec rm -rf {} + 2>/dev/null; '
    't=$(mktemp -d "$dir/tmp.XXXXXXXX") || exit 1; '
    # The tar goes into a folder of its own first (fresh files: nothing it writes is shared),
    # without TAR_OPTIONS (GNU tar's --overwrite would write into existing files in place).
    'env -u TAR_OPTIONS tar -xf - -C "$t" || { rm -rf "$t"; exit 1; }; '
    'mkdir -p "$t/files" && mv "$t/files" "$t/delta" || { rm -rf "$t"; exit 1; }; '
    'if [ -n "$base" ]; then cp -al "$dir/$base" "$t/files" || { rm -rf "$t"; exit 1; }; '
    'else mkdir "$t/files"; fi; '
    'if [ -s "$t/ctl/remove" ]; then (cd "$t/files" && xargs -0 rm -rf -- <../ctl/remove) '
    '|| { rm -rf "$t"; exit 1; }; fi; '
    # Every changed name leaves the copy (parents first: an old symlink goes before anything
    # under its name is looked at) unless both are folders; then the changes are copied in,
    # so nothing is written into a file hard-linked to a kept context.
    '(cd "$t/delta" && find . ! -name . -exec sh -c \'f=$1; shift; for p; do '
    'if [ -d "$p" ] && [ ! -L "$p" ] && [ -d "$f/$p" ] && [ ! -L "$f/$p" ]; then :; '
    'else rm -rf "$f/$p" || exit 1; fi; done\' sh "$t/files" {} +) '
    '&& cp -a "$t/delta/." "$t/files/" && rm -rf "$t/delta" || { rm -rf "$t"; exit 1; }; '
    'tree="$t/files"; '
    # The build reads a folder of a fixed name when it can (one build of the folder at a time:
    # the lock is a folder), so BuildKit's context sync, keyed by the path, sends it only the
    # files that changed since the last build from there.
    'find "$dir" -maxdepth 1 -name "work.lock" -mmin +1440 -exec rm -rf {} "$dir/work" \\; '
    '2>/dev/null; if mkdir "$dir/work.lock" 2>/dev/null; then rm -rf "$dir/work"; '
    'mv "$t/files" "$dir/work" && tree="$dir/work" || rmdir "$dir/work.lock"; fi; '
    'printf "radops:ok\\n%s\\n%s\\n" "$t" "$tree"'
)
# After the build: keep tree $2 as context $3 (or drop it: `-`), and only the KEEP newest.
KEEP_SCRIPT = (
    'dir="$HOME/.cache/radops/contexts/$1" t=$2 tree=$3 new=$4; '
    # `mv -T` renames the tree to that name only if nothing is there yet (or fails): two
    # builds of the same content at once keep one tree, never one inside the other.
    'if [ "$new" != - ] && [ ! -e "$dir/$new" ] && mv -T "$tree" "$dir/$new" 2>/dev/null; '
    'then mv "$t/ctl/manifest" "$dir/$new.manifest"; fi; rm -rf "$t"; '
    '[ "$new" = - ] || touch -c "$dir/$new.manifest" 2>/dev/null; '
    'if [ "$tree" = "$dir/work" ]; then rm -rf "$dir/work"; rmdir "$dir/work.lock"; fi; '
    f'ls -t "$dir" | grep "^[0-9a-f]*\\.manifest$" | tail -n +{KEEP + 1} | '
    'while read -r m; do rm -rf "$dir/${m%.manifest}" "$dir/$m"; done; exit 0'
)


def key(snapshot: Snapshot) -> str:
    """Which folder's contexts: this machine and the folder (and its Dockerfile)."""
    ident = f"{socket.gethostname()}\0{snapshot.context}\0{snapshot.dockerfile}"
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:24]


@dataclass(frozen=True)
class Manifest:
    """Every path of a context with the digest of its hash token."""

    entries: dict[str, str]

    def encode(self) -> bytes:
        return json.dumps(self.entries, sort_keys=True, separators=(",", ":")).encode()

    @property
    def name(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()[:24]


def manifest(snapshot: Snapshot, names: list[str]) -> Manifest:
    """The manifest of the context's `names` (as `context_archive` sends them): a name outside
    the hashed files (the Dockerfile or .dockerignore, always sent) by its content."""
    tokens = snapshot.hashed.tokens
    entries: dict[str, str] = {}
    for rel in names:
        token = tokens.get(rel)
        if token is None:
            try:
                token = b"A" + (snapshot.context / rel).read_bytes()
            except OSError:
                token = b"?"
        entries[rel] = hashlib.sha256(token).hexdigest()[:32]
    return Manifest(entries)


def parse_state(out: bytes) -> tuple[str, Manifest] | None:
    """STATE_SCRIPT's answer: the kept context's name and manifest, if any (checked)."""
    name, _, rest = out.partition(b"\n")
    text = name.decode(errors="replace").strip()
    if not _HEX.match(text):
        return None
    try:
        data = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return None
    return text, Manifest(data)


def staged_folder(out: bytes) -> tuple[str, str] | None:
    """STAGE_SCRIPT's answer: its temporary folder and the tree to build from (checked: the
    tree is in that folder or the fixed `work` beside it), or None if it failed."""
    lines = out.decode(errors="replace").splitlines()
    if len(lines) < 3 or lines[-3] != "radops:ok" or not _TEMP.match(lines[-2]):
        return None
    temp, tree = lines[-2], lines[-1]
    if tree not in (f"{temp}/files", f"{temp.rpartition('/')[0]}/work"):
        return None
    return temp, tree


@dataclass
class Delta:
    """What to send: the entries that differ from the kept context, and the names gone."""

    changed: list[str]
    removed: list[str]
    new: Manifest


def delta(new: Manifest, old: Manifest | None) -> Delta:
    before = old.entries if old is not None else {}
    changed = [rel for rel, d in new.entries.items() if before.get(rel) != d]
    removed = sorted(rel for rel in before if rel not in new.entries)
    return Delta(changed, removed, new)


def fill(tar: tarfile.TarFile, root: Path, d: Delta) -> None:
    """Write the delta tar: `ctl/manifest`, `ctl/remove`, then `files/<rel>` for each change."""
    import io

    from radops.images.archive import as_root

    for name, data in (
        ("ctl/manifest", d.new.encode()),
        ("ctl/remove", b"".join(r.encode("utf-8", "surrogateescape") + b"\0" for r in d.removed)),
    ):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(data))
    for rel in d.changed:
        tar.add(str(root / rel), arcname="files/" + rel, recursive=False, filter=as_root)
