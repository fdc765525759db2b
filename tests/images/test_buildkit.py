"""BuildKit builds on the real local engine, through the real docker CLI radops finds here
(Debian's docker 20.10 client, BuildKit built in): cache, secret and ssh mounts, the legacy
builder when no client has BuildKit, and a tag that is never put on other content than it names."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.errors import BuildError
from radops.images import builder as builder_module
from radops.images.builder import BUILTIN, LEGACY, Builder, detect, find_builder
from radops.images.service import LocalImages
from tests.cli_process import describe, radops
from tests.conftest import BASE_IMAGE

DEBIAN_DOCKER = "/usr/bin/docker"  # docker.io 20.10: BuildKit built in
NEWER_DOCKER = "/usr/local/bin/docker"  # 28.x without the buildx plugin: no BuildKit


def _logs(job_id: str) -> str:
    result = radops("executors", "logs", "local", job_id)
    assert result.returncode == 0, describe(result)
    return str(result.stdout)


@pytest.mark.engine  # the docker CLIs bootstrap installs
def test_this_machine_builds_with_buildkit() -> None:
    # The bootstrap's promise: a fresh machine of this kind builds RUN --mount.
    found = find_builder()
    assert found.buildkit, found.describe()


@pytest.mark.engine  # runs the docker CLIs bootstrap installs (each pings the engine)
def test_each_docker_client_is_asked_what_it_can_do() -> None:
    assert detect([DEBIAN_DOCKER]) == Builder(BUILTIN, DEBIAN_DOCKER)
    newer = detect([NEWER_DOCKER])
    assert newer.kind == LEGACY and "buildx" in newer.why
    assert detect([NEWER_DOCKER, DEBIAN_DOCKER]) == Builder(BUILTIN, DEBIAN_DOCKER)  # PATH order
    assert detect([]).why == "no docker CLI on PATH"


@pytest.mark.engine  # runs the docker CLIs bootstrap installs (each pings the engine)
def test_the_builder_is_found_once_and_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = find_builder()
    calls: list[list[str]] = []

    def counting_detect(clients: list[str]) -> Builder:
        calls.append(clients)
        return detect(clients)

    monkeypatch.setattr(builder_module, "detect", counting_detect)
    assert find_builder() == first and calls == []  # remembered
    only = tmp_path / "bin"
    only.mkdir()
    (only / "docker").symlink_to(NEWER_DOCKER)
    monkeypatch.setenv("PATH", str(only))
    assert find_builder().kind == LEGACY and len(calls) == 1  # PATH changed: asked again
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    assert "DOCKER_BUILDKIT=0" in find_builder().why


def test_a_cache_mount_is_reused_by_the_next_build(
    make_context: Callable[..., Path], start_job: Callable[..., str], wait_job: Callable[[str], int]
) -> None:
    cache_id = "radops-test-" + secrets.token_hex(6)  # a cache no earlier run has filled
    dockerfile = (
        f"FROM {BASE_IMAGE}\nCOPY marker.txt /marker.txt\n"
        f"RUN --mount=type=cache,id={cache_id},target=/cache "
        "sh -c 'cat /cache/seen > /before 2>/dev/null; cat /marker.txt >> /cache/seen'\n"
    )
    context = make_context("cache-mount", {"Dockerfile": dockerfile, "marker.txt": "first\n"})
    first = start_job(context, "cat", "/before")
    (context / "marker.txt").write_text("second\n")  # another image: the RUN step runs again
    second = start_job(context, "cat", "/before")
    assert wait_job(first) == 0 and wait_job(second) == 0
    assert _logs(first) == ""  # the cache was empty
    assert _logs(second) == "first\n"  # ... and kept what the first build put there


def test_a_secret_reaches_the_build_but_not_the_image_or_its_tag(
    tmp_path: Path,
    make_context: Callable[..., Path],
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
    docker_client: Any,
) -> None:
    token = "radops-secret-" + secrets.token_hex(12)
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(token)
    # A new RUN line each run: an earlier image, or BuildKit's cache of the step (which does not
    # look at secrets), would hold an earlier token's hash.
    dockerfile = (
        f"FROM {BASE_IMAGE}\nRUN --mount=type=secret,id=tok : {secrets.token_hex(8)} && "
        "sha256sum /run/secrets/tok | cut -c1-64 > /seen\n"
    )
    context = make_context("secret", {"Dockerfile": dockerfile})
    job = start_job(context, "cat", "/seen", options=("--secret", f"id=tok,src={secret_file}"))
    assert wait_job(job) == 0
    assert _logs(job).strip() == hashlib.sha256(token.encode()).hexdigest()
    image = docker_client.api.inspect_container(f"radops-{job}")["Config"]["Image"]
    saved = tmp_path / "image.tar"
    with saved.open("wb") as f:
        for chunk in docker_client.api.get_image(image):
            f.write(chunk)
    assert token.encode() not in _all_bytes(saved)  # not in any layer, config or history
    assert token not in image
    # Another secret value is not another image: secrets are not part of the tag.
    secret_file.write_text("another-value")
    again = radops(
        "executors", "run", "local", str(context), "--secret", f"id=tok,src={secret_file}",
        "--json", "--", "true",
    )  # fmt: skip
    assert again.returncode == 0, describe(again)
    assert "not rebuilding" in again.stderr and image in again.stdout


def _all_bytes(saved: Path) -> bytes:
    """Every member of a `docker save` archive, nested layer archives opened too."""
    out = []
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member)
            out.append(data.read() if data else b"")
    return b"".join(out)


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[str]:
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert socket.exists(), "ssh-agent did not start"
        yield str(socket)
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_ssh_forwards_the_agent_to_the_build(
    ssh_agent: str,
    make_context: Callable[..., Path],
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
) -> None:
    dockerfile = (
        f"FROM {BASE_IMAGE}\nRUN --mount=type=ssh "
        "sh -c 'test -S \"$SSH_AUTH_SOCK\" && echo agent-socket > /agent'\n"
    )
    context = make_context("ssh-mount", {"Dockerfile": dockerfile})
    missing = radops(
        "executors", "run", "local", str(context), "--ssh", "default", "--", "true",
        env={"SSH_AUTH_SOCK": None},
    )  # fmt: skip
    assert missing.returncode == 2 and "SSH_AUTH_SOCK is not set" in missing.stderr
    job = start_job(context, "cat", "/agent", options=("--ssh", f"default={ssh_agent}"))
    assert wait_job(job) == 0 and _logs(job) == "agent-socket\n"


def _path_with_only(folder: Path, docker: str) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "docker").symlink_to(docker)
    return str(folder)


def test_without_buildkit_the_legacy_builder_builds_and_says_so(
    tmp_path: Path,
    make_context: Callable[..., Path],
    job_ids: list[str],
    wait_job: Callable[[str], int],
) -> None:
    env = {"PATH": _path_with_only(tmp_path / "bin", NEWER_DOCKER)}
    context = make_context("legacy", {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo built > /b\n"})
    secret = radops(
        "executors", "run", "local", str(context), "--secret", f"id=x,src={context}/Dockerfile",
        "--", "true", env=env,
    )  # fmt: skip
    assert secret.returncode == 2, describe(secret)
    assert "--secret needs BuildKit" in secret.stderr and "buildx" in secret.stderr
    assert "Building" not in secret.stderr  # refused before anything was built
    result = radops("executors", "run", "local", str(context), "--json", "--", "cat", "/b", env=env)
    assert result.returncode == 0, describe(result)
    job_ids.append(json.loads(result.stdout)["job_id"])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "legacy builder" in warnings[0], result.stderr
    assert wait_job(job_ids[-1]) == 0 and _logs(job_ids[-1]) == "built\n"


def test_an_edit_during_the_build_is_never_tagged_with_the_old_content(
    make_context: Callable[..., Path], docker_client: Any
) -> None:
    # The edit happens from the build's own progress: after the hash, before the build ends.
    context = make_context(
        "edit-during-build",
        {"Dockerfile": f"FROM {BASE_IMAGE}\nCOPY . /app\n", "train.py": "print('old')\n"},
    )
    images = LocalImages()
    plan = images.plan(context, "Dockerfile")
    dangling_before = set(docker_client.api.images(filters={"dangling": True}, quiet=True))
    edited: list[str] = []

    def edit_once(line: str) -> None:
        if not edited:
            (context / "train.py").write_text("print('new')\n")
            edited.append(line)

    try:
        with pytest.raises(BuildError, match=r"'train\.py' in .* changed while the image was"):
            images.ensure(plan, edit_once)
        assert edited
        assert not docker_client.api.images(name=plan.tag)  # the old tag names nothing
        dangling_after = set(docker_client.api.images(filters={"dangling": True}, quiet=True))
        assert dangling_after <= dangling_before  # and the image it built is gone
        # Run again: the new content gets its own tag, and that image holds the new content.
        fresh = images.plan(context, "Dockerfile")
        assert fresh.tag != plan.tag
        images.ensure(fresh, lambda line: None)
        out = docker_client.containers.run(fresh.tag, ["cat", "/app/train.py"], remove=True)
        assert out == b"print('new')\n"
    finally:
        images.close()


def test_chmod_of_a_file_rebuilds_the_image(
    make_context: Callable[..., Path], start_job: Callable[..., str], wait_job: Callable[[str], int]
) -> None:
    dockerfile = f"FROM {BASE_IMAGE}\nCOPY cfg.txt /cfg.txt\nUSER 65534\n"
    context = make_context("chmod", {"Dockerfile": dockerfile, "cfg.txt": "lr=3e-4\n"})
    os.chmod(context / "cfg.txt", 0o600)
    denied = start_job(context, "cat", "/cfg.txt")
    assert wait_job(denied) != 0  # root's 0600 file, read as nobody
    os.chmod(context / "cfg.txt", 0o644)
    readable = start_job(context, "cat", "/cfg.txt")
    assert wait_job(readable) == 0 and _logs(readable) == "lr=3e-4\n"


@pytest.mark.usefixtures("docker_client")  # asks the local engine for its runtimes
def test_gpus_without_the_nvidia_runtime_says_what_to_install(
    make_context: Callable[..., Path],
) -> None:
    context = make_context("gpus", {"Dockerfile": f"FROM {BASE_IMAGE}\n"})
    result = radops("executors", "run", "local", str(context), "--gpus", "all", "--", "true")
    assert result.returncode == 1, describe(result)
    lines = [line for line in result.stderr.splitlines() if line.startswith(("radops:", "hint:"))]
    assert "no NVIDIA runtime" in lines[0] and "nvidia-ctk runtime configure" in lines[1]
    assert "Traceback" not in result.stderr
