"""Context snapshots: the stat cache that makes an unchanged context cheap to hash, its racy
timestamps, and `changed()`, which decides whether a build may be tagged. Real files only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from radops.images import context as context_module
from radops.images import statcache
from radops.images.context import hash_context, snapshot


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files whose content the hash reads (the stat cache spares the others)."""
    seen: list[str] = []
    real = context_module._file_digest

    def counting(path: Path) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(context_module, "_file_digest", counting)
    return seen


def _age(path: Path, seconds: float = 60) -> None:
    """Make a file look written `seconds` ago (its ctime moves to now, so wait that out)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def _settled_context(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A context whose files are all older than the racy window."""
    folder = root / "ctx"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY . /app\n")
    for i in range(20):
        (folder / f"f{i}.py").write_text(f"print({i})\n")
    # ctime cannot be set back: shrink the racy window instead of sleeping 2 s.
    monkeypatch.setattr(statcache, "RACY_NS", 0)
    time.sleep(0.05)
    return folder


def test_an_unchanged_context_is_hashed_by_stat_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    folder = _settled_context(tmp_path, monkeypatch)
    first = snapshot(folder, "Dockerfile")
    assert len(reads) == 21  # every file read once
    reads.clear()
    again = snapshot(folder, "Dockerfile")
    assert again.tag == first.tag and reads == []  # nothing read: the stat cache answered
    assert first.digest == hash_context(folder, first.files, "Dockerfile")  # the same digest


def test_an_edit_is_read_again_even_with_the_old_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    folder = _settled_context(tmp_path, monkeypatch)
    before = snapshot(folder, "Dockerfile")
    target = folder / "f3.py"
    st = target.stat()
    target.write_text("print(9)\n")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime put back
    reads.clear()
    after = snapshot(folder, "Dockerfile")
    assert reads == ["f3.py"]  # its ctime moved: read again, and only it
    assert after.tag != before.tag


def test_files_in_the_racy_window_are_always_read(tmp_path: Path, reads: list[str]) -> None:
    folder = tmp_path / "ctx"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM busybox:1.36\n")
    (folder / "fresh.py").write_text("x = 1\n")  # written just now: its timestamps are racy
    snapshot(folder, "Dockerfile")
    reads.clear()
    snapshot(folder, "Dockerfile")
    assert sorted(reads) == ["Dockerfile", "fresh.py"]  # not trusted to the cache yet
    assert statcache.load(folder) == {}


def test_changed_names_what_moved_since_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _settled_context(tmp_path, monkeypatch)
    snap = snapshot(folder, "Dockerfile")
    assert snap.changed() is None
    (folder / "f5.py").write_text("print('edited')\n")
    assert snap.changed() == "f5.py"
    (folder / "f5.py").write_text("print(5)\n")  # the same bytes again: the same content
    assert snap.changed() is None
    (folder / "new.py").write_text("")
    assert snap.changed() == "new.py"
    (folder / "new.py").unlink()
    (folder / "f7.py").chmod(0o600)
    assert snap.changed() == "f7.py"


def test_a_corrupt_cache_is_only_a_slower_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    folder = _settled_context(tmp_path, monkeypatch)
    first = snapshot(folder, "Dockerfile")
    cache_file = next((tmp_path / "cache").rglob("*.json"))
    assert cache_file.stat().st_mode & 0o777 == 0o600
    cache_file.write_text("{not json")
    reads.clear()
    assert snapshot(folder, "Dockerfile").tag == first.tag and len(reads) == 21
