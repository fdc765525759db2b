"""How job commands resolve the job they name over SSH (real sshd, the rig's second engine): a whole
id, then a --name, then an id prefix, and `run` refusing, in its own round trip, a name a job id
starts with. One job of each colliding pair is started on the engine by hand, with radops' labels.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radops.executors.docker.labels import job_labels
from radops.executors.model import LABEL_NAME, JobRequest
from tests import rig
from tests.ssh.conftest import CLI

BASE = "busybox:1.36"


@pytest.fixture
def planted(remote: rig.RemoteHost) -> Iterator[list[str]]:
    """Start jobs on the remote engine by hand; they are removed afterwards."""
    if remote.docker("image", "inspect", BASE).returncode != 0:
        save = subprocess.Popen([rig.DOCKER, "save", BASE], stdout=subprocess.PIPE)
        load = subprocess.run(
            [rig.DOCKER, "load", "-q"], stdin=save.stdout, capture_output=True, timeout=120,
            env={**os.environ, "DOCKER_HOST": remote.docker_host},
        )  # fmt: skip
        assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr
    ids: list[str] = []
    yield ids
    for job_id in ids:
        remote.docker("rm", "--force", f"radops-{job_id}")


def plant(remote: rig.RemoteHost, ids: list[str], job_id: str, name: str, script: str) -> None:
    request = JobRequest(context=Path("."), command=["sh", "-c", script])
    labels = {**job_labels(job_id, "box", BASE, request), LABEL_NAME: name}
    flags = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    started = remote.docker("run", "-d", "--name", f"radops-{job_id}", *flags, BASE,
                            "sh", "-c", script)  # fmt: skip
    assert started.returncode == 0, started.stderr
    ids.append(job_id)


def inspected(cli: CLI, ref: str) -> dict[str, Any]:
    result = cli("executors", "inspect", "box", ref, "--json")
    assert result.returncode == 0, result.stderr.decode()
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_rm_of_a_name_removes_the_named_job_never_the_one_whose_id_starts_with_it(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost, planted: list[str]
) -> None:
    prefix = secrets.token_hex(3)
    run = cli("executors", "run", box, str(job_context), "--name", prefix, "--json",
              "--", "sh", "-c", "echo named; sleep 300")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    named = json.loads(run.stdout)["job_id"]
    planted.append(named)
    important = prefix + secrets.token_hex(3)
    plant(remote, planted, important, "important-training", "echo important; sleep 300")

    assert inspected(cli, prefix)["job_id"] == named
    assert inspected(cli, important[:8])["job_id"] == important

    again = cli("executors", "run", box, str(job_context), "--name", prefix, "true")
    err = again.stderr.decode()
    assert again.returncode == 2 and "Traceback" not in err, err
    assert f"--name '{prefix}' is the start of the id of job {important} on 'box'" in err
    listed = json.loads(cli("executors", "jobs", box, "--json").stdout)
    assert [job["job_id"] for job in listed if job["name"] == prefix] == [named]

    removed = cli("executors", "rm", box, prefix, "--force")
    assert removed.returncode == 0 and f"Removed job {named}" in removed.stderr.decode()
    running = remote.docker("inspect", "--format", "{{.State.Running}}", f"radops-{important}")
    assert running.stdout.strip() == "true"
    logs = cli("executors", "logs", box, important)
    assert logs.returncode == 0 and logs.stdout == b"important\n", logs.stderr.decode()


def test_a_whole_id_beats_a_job_named_like_it(
    cli: CLI, box: str, remote: rig.RemoteHost, planted: list[str]
) -> None:
    first, legacy = secrets.token_hex(6), secrets.token_hex(6)
    plant(remote, planted, first, "first", "sleep 300")
    plant(remote, planted, legacy, first, "sleep 300")  # named like the other's id
    assert inspected(cli, first)["job_id"] == first
    stopped = cli("executors", "stop", box, first, "--timeout", "0", "--json")
    assert stopped.returncode == 0 and json.loads(stopped.stdout)["job_id"] == first
    running = remote.docker("inspect", "--format", "{{.State.Running}}", f"radops-{legacy}")
    assert running.stdout.strip() == "true"
    removed = cli("executors", "rm", box, first)
    assert removed.returncode == 0 and f"Removed job {first}" in removed.stderr.decode()
