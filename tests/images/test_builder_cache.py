"""builder.json names a `docker` radops runs: it is used only from a folder and file that are
the user's alone, and only if it names a `docker` on PATH that only root or the user can
change; otherwise the builder is found again, and the file replaced only where that is safe.

Real files, owners and modes (the tests run as root: another uid is given with os.chown), and
the real docker clients of this machine for the detection that follows a refusal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from radops.images import builder as builder_module
from radops.images.builder import BUILTIN, Builder, docker_clients, find_builder

OTHER_UID = 54321  # no one's: a file or folder that is not this user's
DEBIAN_DOCKER = "/usr/bin/docker"  # docker.io 20.10: BuildKit built in


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """builder.json's path; PATH holds a fake `docker` (not Docker's CLI: detection skips
    it), then the real one, so a planted answer naming the fake one is told apart."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(DEBIAN_DOCKER).parent}")
    path = Path(tmp_path / "cache" / "radops" / "builder.json")
    path.parent.mkdir(parents=True, mode=0o700)
    return path


def _fake_docker(cache: Path) -> Path:
    return cache.parents[2] / "bin" / "docker"


def _plant(cache: Path, mode: int = 0o600, uid: int | None = None) -> Builder:
    """A cache answer that detection would never give: BuildKit through the fake docker."""
    planted = Builder(BUILTIN, str(_fake_docker(cache)))
    fingerprint = builder_module._fingerprint(docker_clients())
    cache.write_text(json.dumps({"fingerprint": fingerprint, **planted.__dict__}))
    cache.chmod(mode)
    if uid is not None:
        os.chown(cache, uid, -1)
    return planted


def test_a_private_answer_is_used(cache: Path) -> None:
    planted = _plant(cache)
    assert find_builder() == planted  # remembered: detection would pick /usr/bin/docker


def test_a_fresh_answer_is_private(cache: Path) -> None:
    cache.parent.rmdir()
    found = find_builder()
    assert found == Builder(BUILTIN, DEBIAN_DOCKER)
    assert cache.parent.stat().st_mode & 0o777 == 0o700
    assert cache.stat().st_mode & 0o777 == 0o600 and cache.stat().st_uid == os.getuid()
    assert find_builder() == found


@pytest.mark.parametrize(
    ("mode", "uid"), [(0o600, OTHER_UID), (0o620, None), (0o602, None), (0o666, None)]
)
def test_a_file_others_could_write_is_ignored_and_replaced(
    cache: Path, mode: int, uid: int | None
) -> None:
    _plant(cache, mode, uid)
    assert find_builder() == Builder(BUILTIN, DEBIAN_DOCKER)  # found again
    info = cache.stat()
    assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o600
    assert json.loads(cache.read_text())["docker"] == DEBIAN_DOCKER
    assert sorted(p.name for p in cache.parent.iterdir()) == ["builder.json"]


def test_a_link_in_place_of_the_file_is_not_followed(cache: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    _plant(cache)
    cache.rename(elsewhere)
    cache.symlink_to(elsewhere)
    assert find_builder() == Builder(BUILTIN, DEBIAN_DOCKER)
    assert not cache.is_symlink() and elsewhere.exists()  # replaced, the target untouched


@pytest.mark.parametrize(("mode", "uid"), [(0o700, OTHER_UID), (0o770, None), (0o777, None)])
def test_a_folder_others_could_write_is_neither_read_nor_written(
    cache: Path, mode: int, uid: int | None
) -> None:
    planted = _plant(cache)
    before = cache.read_bytes()
    cache.parent.chmod(mode)
    if uid is not None:
        os.chown(cache.parent, uid, -1)
    assert find_builder() == Builder(BUILTIN, DEBIAN_DOCKER)
    assert cache.read_bytes() == before  # nothing written where others could swap it
    os.chown(cache.parent, os.getuid(), -1)
    cache.parent.chmod(0o700)
    assert find_builder() == planted  # the same file, once the folder is private again


@pytest.mark.parametrize(("mode", "uid"), [(0o755, OTHER_UID), (0o775, None), (0o757, None)])
def test_a_docker_others_could_change_is_not_run_from_the_cache(
    cache: Path, mode: int, uid: int | None
) -> None:
    planted = _plant(cache)
    fake = _fake_docker(cache)
    fake.chmod(mode)
    if uid is not None:
        os.chown(fake, uid, -1)
    fingerprint = builder_module._fingerprint(docker_clients())
    record = json.loads(cache.read_text())
    cache.write_text(json.dumps({**record, "fingerprint": fingerprint}))  # same PATH state
    assert find_builder() == Builder(BUILTIN, DEBIAN_DOCKER)
    os.chown(fake, os.getuid(), -1)
    fake.chmod(0o755)
    _plant(cache)
    assert find_builder() == planted


def test_a_docker_no_longer_on_path_is_not_run_from_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-docker"
    outside.write_text("#!/bin/sh\nexit 1\n")
    outside.chmod(0o755)
    fingerprint = builder_module._fingerprint(docker_clients())
    record = {"fingerprint": fingerprint, **Builder(BUILTIN, str(outside)).__dict__}
    cache.write_text(json.dumps(record))
    cache.chmod(0o600)
    assert find_builder() == Builder(BUILTIN, DEBIAN_DOCKER)
