"""The pure logic of `--build remote`'s kept contexts (radops.executors.ssh.contexts); the
end-to-end behaviour is in tests/ssh/test_ssh_remote_context.py."""

from __future__ import annotations

from pathlib import Path

from radops.executors.ssh import contexts
from radops.images import context
from radops.images.archive import context_names


def _manifest(folder: Path) -> contexts.Manifest:
    snap = context.snapshot(folder, "Dockerfile")
    return contexts.manifest(snap, context_names(snap))


def test_the_delta_is_what_changed_and_what_went_away(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    before = _manifest(tmp_path)
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "b.txt").unlink()
    (tmp_path / "c.txt").write_text("c")
    (tmp_path / "Dockerfile").chmod(0o600)  # a mode is content too
    after = _manifest(tmp_path)
    d = contexts.delta(after, before)
    assert sorted(d.changed) == ["Dockerfile", "a.txt", "c.txt"]
    assert d.removed == ["b.txt"]
    assert contexts.delta(after, None).changed == list(after.entries)
    assert after.name != before.name and len(after.name) == 24


def test_what_the_remote_says_is_checked_before_use() -> None:
    good = b"0123456789abcdef01234567\n" + b'{"a.txt": "ff"}'
    assert contexts.parse_state(good) == (
        "0123456789abcdef01234567",
        contexts.Manifest({"a.txt": "ff"}),
    )
    assert contexts.parse_state(b"") is None
    assert contexts.parse_state(b"../../etc\n{}") is None  # never a path of the remote's choosing
    assert contexts.parse_state(b"0123456789abcdef01234567\n[1]") is None
    temp = "/root/.cache/radops/contexts/k/tmp.AbC123"
    for tree in (f"{temp}/files", "/root/.cache/radops/contexts/k/work"):
        answer = f"radops:ok\n{temp}\n{tree}\n".encode()
        assert contexts.staged_folder(answer) == (temp, tree)
    assert contexts.staged_folder(f"radops:ok\n{temp}\n/etc\n".encode()) is None
    assert contexts.staged_folder(b"radops:ok\n/etc; rm -rf /\n/etc\n") is None
    assert contexts.staged_folder(b"tar: error\n") is None
