"""`run --build remote`: the build context travels, the executor's engine builds (real sshd, the
rig's second engine with the BuildKit of its docker CLI); no local engine involved."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import rig
from tests.ssh.conftest import CLI

NOWHERE = "unix:///nonexistent/docker.sock"  # no local engine for radops to lean on


@pytest.fixture
def no_local_engine(cli: CLI, remote: rig.RemoteHost) -> CLI:
    """radops with DOCKER_HOST pointing nowhere; the remote engine has the base image (as a
    machine that pulled it once would: nothing can be pulled here)."""
    if remote.docker("image", "inspect", "busybox:1.36").returncode != 0:
        save = subprocess.Popen([rig.DOCKER, "save", "busybox:1.36"], stdout=subprocess.PIPE)
        load = subprocess.run(
            [rig.DOCKER, "load", "-q"], stdin=save.stdout, capture_output=True, timeout=120,
            env={**os.environ, "DOCKER_HOST": remote.docker_host},
        )  # fmt: skip
        assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr
    cli.env["DOCKER_HOST"] = NOWHERE
    return cli


def _context(tmp_path: Path, dockerfile: str) -> Path:
    folder = tmp_path / f"rb-{uuid.uuid4().hex[:8]}"
    (folder / "data").mkdir(parents=True)
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "train.py").write_text("print('v1')\n")
    (folder / "data" / "big.bin").write_bytes(b"x" * 1000)
    (folder / "notes.secret").write_text("do not send\n")
    (folder / ".dockerignore").write_text("data/\n*.secret\n")
    return folder


CACHE_DOCKERFILE = (
    "FROM busybox:1.36\n"
    "COPY train.py /tmp/\n"
    # A BuildKit cache mount: what the first build leaves there, the second one sees.
    "RUN --mount=type=cache,target=/cache ls /cache > /seen; date +%s%N > /cache/$(date +%s%N)\n"
    "COPY . /app/\n"
)


def _local_has(image: str) -> bool:
    found = subprocess.run([rig.DOCKER, "image", "inspect", image], capture_output=True, timeout=60)
    return found.returncode == 0


def test_remote_build_sends_the_context_not_an_image(
    no_local_engine: CLI, box: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    cli = no_local_engine
    folder = _context(tmp_path, CACHE_DOCKERFILE)
    first = cli(
        "executors", "run", box, str(folder), "--build", "remote", "--json",
        "--", "sh", "-c", "ls -A /app; wc -l < /seen",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr.decode()
    err = first.stderr.decode()
    assert f"Building radops/{folder.name}:" in err and "Sending the build context to box" in err
    assert "RUN --mount=type=cache" in err, err  # BuildKit's own output, streamed back
    job = json.loads(first.stdout)
    assert remote.docker("image", "inspect", job["image"]).returncode == 0
    assert not _local_has(job["image"])
    logs = cli("executors", "logs", box, job["job_id"], "--follow")
    # .dockerignore honoured: no data/ nor *.secret; the Dockerfile and ignore file are sent
    assert logs.stdout.decode().split() == [".dockerignore", "Dockerfile", "train.py", "0"]

    unchanged = cli("executors", "run", box, str(folder), "--build", "remote", "true")
    assert unchanged.returncode == 0, unchanged.stderr.decode()
    assert "nothing to ship" in unchanged.stderr.decode()
    assert "Building" not in unchanged.stderr.decode()

    (folder / "train.py").write_text("print('v2')\n")  # the RUN step runs again
    second = cli(
        "executors", "run", box, str(folder), "--build", "remote", "--json", "--",
        "sh", "-c", "cat /app/train.py; wc -l < /seen",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr.decode()
    logs = cli("executors", "logs", box, json.loads(second.stdout)["job_id"], "--follow")
    # the new code, and the cache mount kept what the first build put in it
    lines = logs.stdout.decode().split("\n")
    assert lines[0] == "print('v2')" and int(lines[1]) >= 1, logs.stdout


def test_the_executor_default_and_the_errors(
    no_local_engine: CLI, box: str, tmp_path: Path
) -> None:
    cli = no_local_engine
    folder = _context(tmp_path, "FROM busybox:1.36\nRUNN echo typo\n")
    changed = cli("executors", "set", box, "--build", "remote")
    assert changed.returncode == 0, changed.stderr.decode()
    failed = cli("executors", "run", box, str(folder), "true")  # remote by default now
    err = failed.stderr.decode()
    assert failed.returncode != 0 and "Traceback" not in err
    assert "docker build failed: dockerfile parse error line 2: unknown instruction: RUNN" in err

    secret = tmp_path / "token"
    secret.write_text("s3cret")
    for args, message in (
        (["--secret", f"id=t,src={secret}"], "--secret cannot be used with --build remote"),
        (["--file", str(secret)], "--build remote needs the Dockerfile inside the build folder"),
        (["--transfer", "ssh"], "--transfer ssh does not apply with --build remote"),
        (["--build", "elsewhere"], "invalid --build 'elsewhere': use local or remote"),
    ):
        result = cli("executors", "run", box, str(folder), *args, "true")
        text = result.stderr.decode()
        assert result.returncode == 2 and message in text and "Traceback" not in text, text

    local = cli("executors", "run", "local", str(folder), "--build", "remote", "true")
    assert local.returncode == 2
    assert "--build remote does not apply to 'local'" in local.stderr.decode()


def test_build_args_and_names_reach_the_remote_build_as_they_are(
    no_local_engine: CLI, box: str, tmp_path: Path
) -> None:
    cli = no_local_engine
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    folder = _context(tmp_path, "FROM busybox:1.36\nARG NOTE\nRUN printf '%s' \"$NOTE\" > /note\n")
    (folder / "Dockerfile").rename(folder / "my docker;file")
    value = f'$(touch {marker}) `touch {marker}`; it\'s "quoted"'
    result = cli(
        "executors", "run", box, str(folder), "--build", "remote", "--file", "my docker;file",
        "--build-arg", f"NOTE={value}", "--json", "--", "cat", "/note",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    logs = cli("executors", "logs", box, json.loads(result.stdout)["job_id"], "--follow")
    assert logs.stdout.decode() == value
    assert not marker.exists()
