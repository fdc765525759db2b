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


def _stage(home: Path, ctx: Path, base: contexts.Manifest | None, state: str) -> tuple[str, str]:
    """Run STAGE_SCRIPT here (its real sh, tar and cp) as the remote would, with the delta tar."""
    import io
    import os
    import subprocess
    import tarfile

    new = _manifest(ctx)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        contexts.fill(tar, ctx, contexts.delta(new, base))
    env = {**os.environ, "HOME": str(home), "TAR_OPTIONS": "--overwrite"}
    argv = ["sh", "-c", contexts.STAGE_SCRIPT, "radops-context", "k", state]
    out = subprocess.run(argv, input=buf.getvalue(), env=env, capture_output=True, check=True)
    staged = contexts.staged_folder(out.stdout)
    assert staged is not None, out
    return staged


def _keep(home: Path, staged: tuple[str, str], name: str) -> None:
    import os
    import subprocess

    argv = ["sh", "-c", contexts.KEEP_SCRIPT, "radops-context", "k", *staged, name]
    subprocess.run(argv, env={**os.environ, "HOME": str(home)}, check=True)


def test_staging_never_writes_into_a_kept_context_nor_through_its_symlinks(
    tmp_path: Path,
) -> None:
    home, ctx, outside = tmp_path / "home", tmp_path / "ctx", tmp_path / "outside"
    for folder in (home, ctx, outside):
        folder.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "a.txt").write_text("old")
    (ctx / "gone.txt").write_text("gone")
    (ctx / "link").symlink_to(outside)
    first = _manifest(ctx)
    _keep(home, _stage(home, ctx, None, ""), first.name)
    kept = home / ".cache/radops/contexts/k" / first.name
    assert (kept / "a.txt").read_text() == "old"

    (ctx / "a.txt").write_text("new")  # the kept tree's a.txt is hard-linked into the copy
    (ctx / "gone.txt").unlink()
    (ctx / "link").unlink()  # the old symlink is now a folder: its file must not land outside
    (ctx / "link").mkdir()
    (ctx / "link" / "x").write_text("x")
    temp, tree = _stage(home, ctx, first, first.name)  # with TAR_OPTIONS=--overwrite
    assert (kept / "a.txt").read_text() == "old"
    assert (kept / "gone.txt").read_text() == "gone" and (kept / "link").is_symlink()
    assert list(outside.iterdir()) == []
    assert (Path(tree) / "a.txt").read_text() == "new"
    assert not (Path(tree) / "gone.txt").exists()
    assert (Path(tree) / "link" / "x").read_text() == "x"
    assert not (Path(tree) / "link").is_symlink()
    assert Path(temp).is_dir()


def test_two_builds_of_the_same_content_keep_one_tree(tmp_path: Path) -> None:
    home, ctx = tmp_path / "home", tmp_path / "ctx"
    home.mkdir()
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    name = _manifest(ctx).name
    one, two = _stage(home, ctx, None, ""), _stage(home, ctx, None, "")
    _keep(home, one, name)
    _keep(home, two, name)
    kept = home / ".cache/radops/contexts/k" / name
    assert sorted(p.name for p in kept.iterdir()) == ["Dockerfile"]  # not a tree inside it
    folder = kept.parent
    assert sorted(p.name for p in folder.iterdir()) == [name, f"{name}.manifest"]
