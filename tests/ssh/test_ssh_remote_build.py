"""`run --build remote`: the build context travels, the executor's engine builds (real sshd, the
rig's second engine with the BuildKit of its docker CLI); no local engine involved."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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
    # Its summary: the archive's length, as the total said (tar records included) - the size
    # of the context archive, 10,240 bytes for these few small files.
    assert re.search(r"^Sending the build context to box: 10\.2 kB( in \d+s.*)?$", err, re.M), err
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


# Leftovers on the executor ----------------------------------------------------------------------
# The rig's remote is this machine: its processes and its TMPDIR (sshd's sessions set none: /tmp)
# are seen here.
REMOTE_TMP = Path("/tmp")


def _processes(text: str) -> list[str]:
    """The command lines of this machine's processes that contain `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(cmdline.decode(errors="replace"))
    return found


def _build_folders() -> set[Path]:
    """Temporary folders holding a build's `iid`, as a remote build script kept them."""
    return {p.parent for p in REMOTE_TMP.glob("tmp.*/iid")}


def _dangling(remote: rig.RemoteHost) -> set[str]:
    out = remote.docker("images", "--quiet", "--no-trunc", "--filter", "dangling=true").stdout
    return set(out.split())


def _names(remote: rig.RemoteHost, repository: str) -> list[str]:
    out = remote.docker("images", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout
    return out.split()


def _until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still {what} after {timeout:.0f} s")
        time.sleep(0.25)


@pytest.fixture
def shared_runtime(tmp_path: Path) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR for shared connections; their servers are ended afterwards."""
    runtime = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    yield runtime
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        mine = f"XDG_RUNTIME_DIR={runtime}".encode() in environ
        if mine and b"radops.ssh.mux.server" in cmdline:
            os.kill(int(entry.name), signal.SIGKILL)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.parametrize(
    ("how", "sig"),
    [
        ("ctrl-c", signal.SIGINT),
        ("killed", signal.SIGKILL),
        ("killed, shared connection", signal.SIGKILL),  # the connection outlives radops
    ],
)
def test_an_interrupted_remote_build_leaves_nothing_on_the_executor(
    no_local_engine: CLI,
    box: str,
    tmp_path: Path,
    remote: rig.RemoteHost,
    shared_runtime: Path,
    how: str,
    sig: signal.Signals,
) -> None:
    cli = no_local_engine
    if "shared" in how:
        cli.env.update(RADOPS_SSH_PERSIST="600", XDG_RUNTIME_DIR=str(shared_runtime))
        listed = cli("executors", "jobs", box)  # starts the shared connection the run will use
        assert listed.returncode == 0, listed.stderr.decode()
    step = f"sleep {7_000_000 + secrets.randbelow(1_000_000)}"  # this build's own RUN step
    folder = _context(tmp_path, f"FROM busybox:1.36\nRUN echo building && {step}\n")
    repository = f"radops/{folder.name}"
    dangling, folders = _dangling(remote), _build_folders()

    process = cli.popen("executors", "run", box, str(folder), "--build", "remote", "true")
    try:
        _until(lambda: bool(_processes(step)) or process.poll() is not None, "not building")
        assert process.poll() is None, process.communicate()[1].decode()
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "Traceback" not in err.decode(), err.decode()

    # The build stops (its RUN step, the docker CLI, the script), and takes its image along.
    _until(lambda: not _processes(step), "running the build's RUN step")
    _until(lambda: not _processes(f"{repository}:build-"), "running the docker CLI's build")
    _until(lambda: not _processes("radops-build"), "running the build script")
    assert _names(remote, repository) == []
    assert _dangling(remote) <= dangling
    assert _build_folders() <= folders
    assert not _processes(f"{repository}:")  # nothing else of this build runs either


def test_no_cache_on_the_executor_leaves_no_untagged_image(
    no_local_engine: CLI, box: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    cli = no_local_engine
    folder = _context(tmp_path, "FROM busybox:1.36\nRUN date +%s%N > /stamp\n")
    repository = f"radops/{folder.name}"
    dangling = _dangling(remote)

    def run(*flags: str) -> tuple[str, str]:
        """(job id, the id of the image it runs)"""
        result = cli("executors", "run", box, str(folder), "--build", "remote", *flags,
                     "--json", "true")  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        job = json.loads(result.stdout)
        image = remote.docker("image", "inspect", "--format", "{{.Id}}", job["image"])
        return job["job_id"], image.stdout.strip()

    def names(image_id: str) -> list[str]:
        out = remote.docker("image", "inspect", "--format", "{{json .RepoTags}}", image_id)
        return list(json.loads(out.stdout)) if out.returncode == 0 else ["(gone)"]

    first_job, first = run()
    second_job, second = run("--no-cache")
    assert second != first
    # The first job still uses its image: radops names it, for `prune --images` to remove later.
    assert names(first) == [f"{repository}:old-{first.removeprefix('sha256:')[:12]}"]
    assert len(names(second)) == 1 and _dangling(remote) <= dangling
    for job_id in (first_job, second_job):
        removed = cli("executors", "rm", box, job_id, "--force")
        assert removed.returncode == 0, removed.stderr.decode()

    _, third = run("--no-cache")  # nothing uses the second image now: removed
    assert third not in (first, second) and names(second) == ["(gone)"]
    assert _dangling(remote) <= dangling
    assert not [n for n in _names(remote, repository) if ":build-" in n]

    pruned = cli("executors", "prune", box, "--images", "--yes")
    assert pruned.returncode == 0, pruned.stderr.decode()
    assert names(first) == ["(gone)"] and names(third) == ["(gone)"]  # its job went too
    assert _dangling(remote) <= dangling


def test_prune_images_removes_what_a_killed_build_left_and_nothing_of_the_users(
    no_local_engine: CLI, box: str, remote: rig.RemoteHost
) -> None:
    nonce = secrets.token_hex(6)
    # An image a remote build made before radops, killed, could tag it; the user's own names
    # on it and beside it, and a dangling image of the user's.
    built = subprocess.run(
        [rig.DOCKER, "build", "--quiet", "-"], capture_output=True, timeout=120,
        input=f"FROM busybox:1.36\nLABEL nonce={nonce}\n".encode(),
        env={**os.environ, "DOCKER_HOST": remote.docker_host, "DOCKER_BUILDKIT": "0"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    image = built.stdout.decode().strip()
    held, users = f"radops/rb-{nonce}:build-{nonce}", f"myteam/tool:build-{nonce}"
    assert remote.docker("tag", image, held).returncode == 0
    assert remote.docker("tag", "busybox:1.36", users).returncode == 0
    mine = subprocess.run(
        [rig.DOCKER, "build", "--quiet", "-"], capture_output=True, timeout=120,
        input=f"FROM busybox:1.36\nLABEL mine={nonce}\n".encode(),
        env={**os.environ, "DOCKER_HOST": remote.docker_host, "DOCKER_BUILDKIT": "0"},
    ).stdout.decode().strip()  # fmt: skip
    assert mine in _dangling(remote)

    pruned = no_local_engine("executors", "prune", box, "--images", "--yes")
    assert pruned.returncode == 0, pruned.stderr.decode()
    assert remote.docker("image", "inspect", image).returncode != 0
    for kept in (users, "busybox:1.36", mine):
        assert remote.docker("image", "inspect", kept).returncode == 0, kept
    remote.docker("rmi", users, mine)
