"""`--transfer ssh` with an engine that uses the containerd image store, on either side (real
engines: Debian 13's dockerd 26 with the store, the rig's sshd and its 20.10 engine).

Such an engine saves an image as an OCI layout whose blobs are named by their compressed
digest, and refuses to load an archive that lacks a layer's blob even when it has the layer
(checked by hand on dockerd 26: `failed to resolve layers: layer ".../layer.tar" not found`).
So radops sends the whole image there, and says so, and the job runs the new code.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.containerd_engine import containerd_store_engine, docker
from tests.ssh.conftest import CLI

WHOLE_THERE = "uses the containerd image store: sending the whole image"
WHOLE_HERE = "this machine's engine uses the containerd image store: sending the whole image"


@pytest.fixture(scope="module")
def store_engine(remote: rig.RemoteHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The containerd-store engine's DOCKER_HOST (started under the rig's lock, as `remote`)."""
    with containerd_store_engine(tmp_path_factory.mktemp("cd"), ("busybox:1.36",)) as host:
        yield host


def _job(tmp_path: Path, code: str) -> Path:
    folder = tmp_path / f"job-{tmp_path.name.lower()[-20:]}"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY train.py /train.py\n")
    (folder / "train.py").write_text(code)
    return folder


def _run_and_read(cli: CLI, executor: str, folder: Path) -> tuple[str, str]:
    """Submit `cat /train.py` with --transfer ssh; (the job's output, radops' stderr)."""
    result = cli(
        "executors", "run", executor, str(folder), "--transfer", "ssh", "--json",
        "--", "cat", "/train.py",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    job = json.loads(result.stdout)
    logs = cli("executors", "logs", executor, job["job_id"], "--follow")
    assert logs.returncode == 0, logs.stderr.decode()
    return logs.stdout.decode(), result.stderr.decode()


def test_a_remote_with_the_containerd_store_gets_the_whole_image_every_time(
    cli: CLI, trusted: None, store_engine: str, tmp_path: Path
) -> None:
    # The executor's docker is a wrapper that talks to the containerd-store engine.
    wrapper = tmp_path / "docker-cd"
    wrapper.write_text(f'#!/bin/sh\nDOCKER_HOST={store_engine} exec {rig.DOCKER} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    added = cli(
        "executors", "add", "--name", "cdbox", "--hostname", "rigbox", "--docker-path", str(wrapper)
    )  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()

    folder = _job(tmp_path, "version 1\n")
    out, err = _run_and_read(cli, "cdbox", folder)
    assert out == "version 1\n"
    assert f"cdbox {WHOLE_THERE}" in err, err

    (folder / "train.py").write_text("version 2\n")  # busybox's layer is there now, too
    out, err = _run_and_read(cli, "cdbox", folder)
    assert out == "version 2\n"
    assert f"cdbox {WHOLE_THERE}" in err and "layers)" not in err, err
    assert b"radops/" in docker(store_engine, "images").stdout


def test_this_machine_with_the_containerd_store_sends_the_whole_image(
    cli: CLI, box: str, store_engine: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    # radops' local engine is the containerd-store one: it builds there and saves from there.
    here = CLI({**cli.env, "DOCKER_HOST": store_engine}, cli.home)
    folder = _job(tmp_path, "version 1\n")
    out, err = _run_and_read(here, box, folder)
    assert out == "version 1\n"

    (folder / "train.py").write_text("version 2\n")  # box has the first version's layers
    out, err = _run_and_read(here, box, folder)
    assert out == "version 2\n"
    assert WHOLE_HERE in err and "layers)" not in err, err
    # Built by the containerd-store engine, not by the rig's or this machine's usual one.
    assert b"radops/job-" in docker(store_engine, "images").stdout
    assert os.environ.get("DOCKER_HOST") != store_engine
