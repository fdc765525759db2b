"""Archive entry names of a `docker cp JOB:SRC -` stream, checked against the root SRC names."""

from __future__ import annotations

import posixpath

from radops.errors import RadopsError

# The roots under which an archive holds a folder's contents, not the folder: `SRC/.` and `/`.
CONTENTS_ROOTS = (".", "/")


def root_of(source: str) -> str:
    """The top-level entry name docker gives the archive of `source` in the container: its base
    name after cleaning (`/out/`, `/x/../out` -> `out`); `.` for `SRC/.`; `/` for the root."""
    path = source or "/"
    trimmed = path.rstrip("/") or "/"
    if trimmed == "." or trimmed.endswith("/."):
        return "."
    clean = posixpath.normpath(posixpath.join("/", trimmed))  # relative: from the container's /
    return posixpath.basename(clean) or "/"


def parts_under(name: str, root: str) -> list[str]:
    """The path components of entry `name` below `root` ([] for the root itself). Refuses, naming
    the entry, a name not under the root, an absolute one, and one with a `..` component."""
    if root == "/":  # the folder `/` itself is "" once tarfile strips a folder's trailing /
        rest = name[1:] if name.startswith("/") else ("" if name == "" else None)
    elif root == ".":
        rest = name[1:] if name == "." or name.startswith("./") else None
    else:
        rest = name[len(root) :] if name == root or name.startswith(root + "/") else None
    if rest is None:
        reason = "an absolute name" if name.startswith("/") else f"not under {root!r}"
        raise refused(name, reason)
    parts = [part for part in rest.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise refused(name, "it has a '..' component")
    return parts


def refused(name: str, reason: str) -> RadopsError:
    """The error for an archive entry radops will not write."""
    return RadopsError(
        f"refusing to unpack {name!r}: {reason}",
        "Nothing was copied: the destination is as it was.",
    )
