"""Hostile `docker cp JOB:SRC -` streams through `radops.copying.download`, the function `cp`
calls with what the executor streams: every entry radops must not write is refused with one
line naming it, nothing lands outside DEST or through a link, and DEST is left as it was.

Real files on a real filesystem; the remote is the only thing played (by crafted archives). The
same refusals end to end over SSH, from a fake remote `docker`: tests/ssh/test_ssh_cp_safety.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from radops.copying import download
from radops.errors import RadopsError, UsageError
from tests.copying.archives import archive, tree


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A user's home with files a hostile remote would like to reach."""
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / ".bashrc").write_text("mine\n")
    (folder / "victim.txt").write_text("victim\n")
    return folder


def refused(home: Path, data: bytes, source: str, dest: Path, *names: str) -> str:
    """Unpack `data`; it must fail with one line naming the entry, changing nothing in home."""
    before = tree(home)
    with pytest.raises(RadopsError) as caught:
        download(iter([data]), source, str(dest))
    message = caught.value.message
    assert "\n" not in message and any(repr(name) in message for name in names), message
    assert tree(home) == before  # nothing written, nothing left over (no .radops-cp-*)
    return message


def test_an_entry_outside_the_root_is_refused_whatever_dest_is(home: Path) -> None:
    # The case: `cp JOB:/x ~/out` answered with `out/../.bashrc`.
    for dest in (home / "out", home / "victim.txt", home):
        evil = archive(("out/../.bashrc", "file", "owned\n"))
        message = refused(home, evil, "/x", dest, "out/../.bashrc")
        assert message.endswith("not under 'x'")
    for dest in (home / "out", home):
        dotdot = archive(("x", "dir", ""), ("x/../.bashrc", "file", "owned\n"))
        assert refused(home, dotdot, "/x", dest, "x/../.bashrc").endswith("'..' component")
    # A name that only starts with the root's characters is not under it.
    prefix = archive(("x", "dir", ""), ("xevil/.bashrc", "file", "owned\n"))
    refused(home, prefix, "/x", home / "out", "xevil/.bashrc")
    absolute = archive(("x", "dir", ""), ("/etc/cron.d/evil", "file", "owned\n"))
    assert refused(home, absolute, "/x", home / "out", "/etc/cron.d/evil").endswith("absolute name")


def test_the_root_must_come_first_and_be_what_src_names(home: Path) -> None:
    refused(home, archive(("other", "file", "x")), "/out/model.pt", home / "m", "other")
    refused(home, archive(("out/a", "file", "x")), "/out", home / "o", "out/a")
    # `SRC/.` is a folder's contents: a root that is a file is refused.
    refused(home, archive((".", "file", "x")), "/out/.", home / "o", ".")


def test_nothing_is_written_through_a_link_the_archive_made(home: Path) -> None:
    for target in ("..", str(home), "../..", "sub/../.."):
        evil = archive(
            ("out", "dir", ""),
            ("out/x", "sym", target),
            ("out/x/.bashrc", "file", "owned\n"),
        )
        message = refused(home, evil, "/out", home / "dest", "out/x/.bashrc")
        assert message.endswith("written through the link 'x'")
    # A parent the archive never listed is made as a folder; a link there is still refused.
    deep = archive(("out", "dir", ""), ("out/a/b", "sym", "/"), ("out/a/b/etc/f", "file", "x"))
    refused(home, deep, "/out", home / "dest", "out/a/b/etc/f")


def test_a_file_never_replaces_a_link_made_before_it(home: Path) -> None:
    # tar would unlink the link and write the file; a tar that did not would write the target.
    evil = archive(
        ("out", "dir", ""),
        ("out/model.pt", "sym", str(home / "victim.txt")),
        ("out/model.pt", "file", "owned\n"),
    )
    assert refused(home, evil, "/out", home / "dest", "out/model.pt").endswith("twice")


def test_the_cve_2025_4517_shape_is_refused(home: Path) -> None:
    """The published bypass of Python's `data` filter (fixed in 3.11.13): links through long
    folder names make realpath() give up before PATH_MAX, so the filter sees a path inside the
    destination while the kernel resolves it outside. radops never resolves: any entry below a
    link is refused, and the links themselves are only data."""
    name = "d" * 200
    steps = "abcdefghijklmnop"
    entries: list[tuple[str, str, str | bytes]] = [("out", "dir", "")]
    path = "out"
    for step in steps:
        entries += [(f"{path}/{name}", "dir", ""), (f"{path}/{step}", "sym", name)]
        path = f"{path}/{name}"
    link = "out/" + "/".join(steps)
    entries += [
        (f"{link}/l", "sym", "../" * len(steps)),
        ("out/escape", "sym", f"{link}/l/../../.."),
        ("out/escape/.bashrc", "file", "owned\n"),
    ]
    refused(home, archive(*entries), "/out", home / "dest", f"{link}/l", "out/escape/.bashrc")


def test_hard_links_only_to_files_of_the_same_copy(home: Path) -> None:
    outside = archive(("out", "dir", ""), ("out/h", "lnk", str(home / "victim.txt")))
    refused(home, outside, "/out", home / "dest", "out/h")
    up = archive(("out", "dir", ""), ("out/h", "lnk", "out/../victim.txt"))
    refused(home, up, "/out", home / "dest", "out/h")
    # CVE-2025-4138's shape: a hard link to a link inside, pointing out; then a write to it.
    to_link = archive(
        ("out", "dir", ""),
        ("out/s", "sym", str(home / "victim.txt")),
        ("out/h", "lnk", "out/s"),
        ("out/h", "file", "owned\n"),
    )
    assert refused(home, to_link, "/out", home / "dest", "out/h").endswith(
        "not a file of this copy"
    )
    # A hard link to a file the copy wrote is kept, as tar keeps it.
    fine = archive(("out", "dir", ""), ("out/a", "file", "A"), ("out/b", "lnk", "out/a"))
    download(iter([fine]), "/out", str(home / "dest"))
    assert os.stat(home / "dest" / "a").st_ino == os.stat(home / "dest" / "b").st_ino


def test_device_files_and_pipes_are_refused_and_set_uid_bits_dropped(home: Path) -> None:
    for kind in ("chr", "fifo"):
        evil = archive(("out", "dir", ""), ("out/dev", kind, ""))
        assert refused(home, evil, "/out", home / "dest", "out/dev").endswith("special file")
    suid = archive(("tool", "file", "#!/bin/sh\n"), mode=0o6777)
    download(iter([suid]), "/bin/tool", str(home / "tool"))
    assert stat.S_IMODE(os.stat(home / "tool").st_mode) == 0o755


def test_a_stream_cut_short_leaves_dest_as_it_was(home: Path) -> None:
    dest = home / "precious.bin"
    dest.write_bytes(b"old" * 1000)
    whole = archive(("precious.bin", "file", os.urandom(100_000)))
    for cut in (whole[:50_000], archive(("precious.bin", "file", b"n" * 100), end=False)):
        message = refused(home, cut, "/out/precious.bin", dest, "/out/precious.bin")
        assert "cut short" in message and message.endswith(f"{str(dest)!r} is unchanged")
    assert dest.read_bytes() == b"old" * 1000


def test_links_come_as_links_absolute_ones_too(home: Path) -> None:
    ckpt = archive(
        ("ckpt", "dir", ""),
        ("ckpt/epoch3.pt", "file", "3"),
        ("ckpt/latest", "sym", "/out/ckpt/epoch3.pt"),
        ("ckpt/up", "sym", "../.."),
    )
    download(iter([ckpt]), "/out/ckpt", str(home / "ckpt"))
    assert tree(home / "ckpt") == {
        "epoch3.pt": "file:3", "latest": "link:/out/ckpt/epoch3.pt", "up": "link:../..",
    }  # fmt: skip


def test_a_link_at_dest_is_never_followed(home: Path) -> None:
    (home / "model.pt").symlink_to("victim.txt")  # left by an earlier cp of a job's link
    model = archive(("model.pt", "file", "weights"))
    download(iter([model]), "/out/model.pt", str(home / "model.pt"))
    assert (home / "model.pt").read_text() == "weights" and not (home / "model.pt").is_symlink()
    assert (home / "victim.txt").read_text() == "victim\n"
    # ... and inside a folder DEST names.
    (home / "d").mkdir()
    (home / "d" / "model.pt").symlink_to("../victim.txt")
    download(iter([model]), "/out/model.pt", str(home / "d"))
    assert (home / "d" / "model.pt").read_text() == "weights"
    assert (home / "victim.txt").read_text() == "victim\n"
    # A link to a folder at DEST, or any link for a folder: refused, not followed.
    (home / "elsewhere").mkdir()
    (home / "to-folder").symlink_to("elsewhere")
    folder = archive(("out", "dir", ""), ("out/f", "file", "x"))
    (home / "d" / "link").symlink_to("../victim.txt")
    for data, source, dest in (
        (model, "/out/model.pt", "to-folder"),
        (model, "/out/model.pt", "to-folder/"),
        (folder, "/out", "to-folder"),
        (folder, "/out", "d/link"),
    ):
        with pytest.raises(UsageError, match="refusing to write through the symbolic link"):
            download(iter([data]), source, str(home / dest))
    assert tree(home / "elsewhere") == {} and (home / "victim.txt").read_text() == "victim\n"


def test_a_merge_is_all_or_nothing(home: Path) -> None:
    dest = home / "dest"
    (dest / "b").mkdir(parents=True)
    (dest / "b" / "keep").write_text("keep")
    (dest / "x").symlink_to("..")  # left by an earlier `cp JOB:/out/. dest`
    before = tree(home)
    clash = archive((".", "dir", ""), ("./a", "file", "A"), ("./b", "file", "B"))
    with pytest.raises(UsageError, match="cannot overwrite folder"):
        download(iter([clash]), "/out/.", str(dest))
    # The issue's `x -> ..` then a folder `x/`: the folder does not go through the link.
    through = archive((".", "dir", ""), ("./a", "file", "A"), ("./x", "dir", ""),
                      ("./x/.bashrc", "file", "owned\n"))  # fmt: skip
    with pytest.raises(UsageError, match="cannot overwrite symbolic link"):
        download(iter([through]), "/out/.", str(dest))
    assert tree(home) == before
    fine = archive((".", "dir", ""), ("./a", "file", "A"), ("./b", "dir", ""),
                   ("./b/new", "file", "N"), ("./x", "sym", "elsewhere"))  # fmt: skip
    download(iter([fine]), "/out/.", str(dest))
    assert tree(dest) == {
        "a": "file:A", "b": "dir", "b/keep": "file:keep", "b/new": "file:N",
        "x": "link:elsewhere",
    }  # fmt: skip
