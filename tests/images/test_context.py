"""Build contexts: checks, .dockerignore, and the content hash that names each image."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from radops.errors import UsageError
from radops.images.context import check_context, context_files, image_tag, tag_for_context
from tests import rig

TAG_RE = re.compile(r"^radops/[a-z0-9-]+:[0-9a-f]{16}$")


def context(root: Path, name: str = "app", **files: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY . /app\n")
    for rel, text in files.items():
        path = folder / rel.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def tag(folder: Path, dockerfile: str = "Dockerfile") -> str:
    return tag_for_context(folder, dockerfile)


def test_tag_is_named_after_the_folder_and_the_content(tmp_path: Path) -> None:
    folder = context(tmp_path, "My Train_Job", main="print(1)\n")
    value = tag(folder)
    assert TAG_RE.match(value), value
    assert value.startswith("radops/my-train-job:")


def test_same_content_same_tag_even_elsewhere(tmp_path: Path) -> None:
    a = context(tmp_path / "one", "app", main="x\n", lib__util="y\n")
    b = context(tmp_path / "two", "app", main="x\n", lib__util="y\n")
    assert tag(a) == tag(b)


def test_changing_a_file_changes_the_tag(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    before = tag(folder)
    (folder / "main").write_text("x changed\n")
    assert tag(folder) != before


def test_adding_renaming_or_chmodding_a_file_changes_the_tag(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    seen = {tag(folder)}
    (folder / "extra").write_text("")
    seen.add(tag(folder))
    (folder / "extra").rename(folder / "renamed")
    seen.add(tag(folder))
    os.chmod(folder / "renamed", 0o755)
    seen.add(tag(folder))
    assert len(seen) == 4


def test_changing_the_dockerfile_changes_the_tag(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    before = tag(folder)
    (folder / "Dockerfile").write_text("FROM busybox:1.36\n")
    assert tag(folder) != before


def test_files_matched_by_dockerignore_do_not_count(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    (folder / ".dockerignore").write_text("# comment\n*.log\ndata/\n")
    before = tag(folder)
    (folder / "run.log").write_text("noise")
    (folder / "data").mkdir()
    (folder / "data" / "big.bin").write_text("0" * 1000)
    assert tag(folder) == before
    files = context_files(folder, "Dockerfile")
    assert "main" in files and "Dockerfile" in files
    assert not any(f.endswith(".log") or f.startswith("data") for f in files)
    (folder / "main").write_text("y\n")
    assert tag(folder) != before


def test_dockerignore_cannot_hide_the_dockerfile(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    (folder / ".dockerignore").write_text("Dockerfile\n")
    before = tag(folder)
    (folder / "Dockerfile").write_text('FROM busybox:1.36\nCMD ["true"]\n')
    assert tag(folder) != before


def test_another_dockerfile_name(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    (folder / "gpu.Dockerfile").write_text('FROM busybox:1.36\nCMD ["gpu"]\n')
    assert tag(folder, "gpu.Dockerfile") != tag(folder)


def test_image_tag_slug_is_never_empty(tmp_path: Path) -> None:
    assert image_tag(tmp_path / "___", "ab" * 32) == "radops/job:" + "ab" * 8


def test_check_context_accepts_a_folder_with_a_dockerfile(tmp_path: Path) -> None:
    folder = context(tmp_path)
    assert check_context(folder, None) == (folder.resolve(), "Dockerfile")


def test_check_context_rejects_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_context(tmp_path / "absent", None)


def test_check_context_rejects_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(UsageError, match="not a folder"):
        check_context(file, None)


def test_check_context_rejects_a_folder_without_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no Dockerfile") as info:
        check_context(tmp_path, None)
    assert info.value.hint and "--file" in info.value.hint
    with pytest.raises(UsageError):
        check_context(context(tmp_path), "Other.Dockerfile")


def test_a_socket_in_the_context_is_hashed_by_kind_not_read(tmp_path: Path) -> None:
    import socket

    from radops.images.context import context_files, hash_context

    (tmp_path / "Dockerfile").write_text("FROM busybox:1.36\n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "agent.sock"))
    try:
        files = context_files(tmp_path, "Dockerfile")
        assert "agent.sock" in files
        assert len(hash_context(tmp_path, files, "Dockerfile")) == 64
    finally:
        sock.close()


def test_any_mode_change_changes_the_tag(tmp_path: Path) -> None:
    # COPY keeps the whole mode: a job running as another user sees 0600 vs 0644.
    folder = context(tmp_path, main="x\n")
    os.chmod(folder / "main", 0o600)
    before = tag(folder)
    os.chmod(folder / "main", 0o644)
    assert tag(folder) != before


def test_every_spelling_of_the_same_dockerfile_gives_one_tag(tmp_path: Path) -> None:
    folder = context(tmp_path, main="x\n")
    spellings = ["Dockerfile", "./Dockerfile", str(folder / "Dockerfile"), "sub/../Dockerfile"]
    (folder / "sub").mkdir()
    tags = set()
    for spelling in spellings:
        checked, name = check_context(folder, spelling)
        assert name == "Dockerfile"
        tags.add(tag_for_context(checked, name))
    assert len(tags) == 1


@pytest.mark.root  # adds a user and becomes it
@pytest.mark.parametrize("dockerignore", [None, "*.log\n"])
def test_an_unreadable_folder_is_named_in_a_usage_error(dockerignore: str | None) -> None:
    """As another user (the tests run as root, who reads everything): effective uid only, so
    this process gets root back at the end."""
    uid = rig.ensure_user(rig.OTHER_USER)
    top = Path(tempfile.mkdtemp(prefix="radops-unreadable-", dir="/tmp"))
    try:
        top.chmod(0o755)
        folder = context(top, main="x\n")
        if dockerignore is not None:
            (folder / ".dockerignore").write_text(dockerignore)
        secret = folder / "private"
        secret.mkdir(mode=0o700)  # root's: the other user cannot list it
        os.seteuid(uid)
        try:
            with pytest.raises(UsageError) as caught:
                tag(folder)
        finally:
            os.seteuid(0)
        assert caught.value.message == (
            f"cannot read {str(secret)!r} in the build context: Permission denied"
        )
        assert caught.value.hint and ".dockerignore" in caught.value.hint
    finally:
        shutil.rmtree(top, ignore_errors=True)
