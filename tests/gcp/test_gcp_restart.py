"""A spot VM that was preempted and started again brings its `--restart unless-stopped` jobs
back on their GPUs: the real GCP client against the fake Compute Engine, whose VM is the rig's
engine (with the four-GPU stand-in). Preemption takes the machine down: the rig's dockerd
stops with its containers, and starts again, as the VM's docker.service does at boot."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.gce_fake import FakeGCE
from tests.ssh.conftest import CLI

SHOW = "echo gpus=$NVIDIA_VISIBLE_DEVICES; exec sleep 600"


def _ok(result: object) -> str:
    assert result.returncode == 0, result.stderr.decode()  # type: ignore[attr-defined]
    return str(result.stdout.decode())  # type: ignore[attr-defined]


def _clean(remote: rig.RemoteHost) -> None:
    ids = remote.docker("ps", "-aq", "--filter", "label=dev.radops.job-id").stdout.split()
    if ids:
        remote.docker("rm", "--force", *ids)


@pytest.fixture
def no_jobs(remote: rig.RemoteHost) -> Iterator[None]:
    _clean(remote)
    yield
    _clean(remote)


@pytest.mark.usefixtures("no_jobs")
def test_a_preempted_then_started_spot_vm_brings_its_restart_jobs_back(
    gcli: CLI, fake: FakeGCE, job_context: Path, remote: rig.RemoteHost
) -> None:
    _ok(gcli("executors", "gcp", "create", "cpu-small", "vm1", "--spot", "--timeout", "90",
             timeout=180))  # fmt: skip
    run = ["executors", "run", "--quiet", "vm1", str(job_context), "--gpus", "1"]
    plain = _ok(gcli(*run, "--", "sh", "-c", SHOW)).strip()
    kept = _ok(gcli(*run, "--restart", "unless-stopped", "--", "sh", "-c", SHOW)).strip()

    fake.preempt("vm1")
    deadline = time.monotonic() + 10
    while fake.instances()["vm1"]["status"] != "TERMINATED":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    listed = gcli("executors", "gcp", "list")
    assert "--restart unless-stopped or always come back with it" in listed.stderr.decode()
    remote.restart_engine()  # the machine went down with its VM, and boots with it

    started = gcli("executors", "gcp", "start", "vm1")
    _ok(started)
    err = started.stderr.decode()
    assert f"Job {kept} is back on GPU 1 (--restart unless-stopped)" in err, err
    assert plain not in err
    jobs = {j["job_id"]: j for j in json.loads(_ok(gcli("executors", "jobs", "vm1", "--json")))}
    assert jobs[kept]["status"] == "running" and jobs[kept]["gpus"][0]["index"] == 1
    assert jobs[plain]["status"] == "exited"
    table = _ok(gcli("executors", "jobs", "vm1"))
    assert "RESTARTS" in table and "(unless-stopped)" in table
    logs = _ok(gcli("executors", "logs", "vm1", kept))
    assert logs.count("gpus=1\n") == 2, logs  # the run before and the run after
    _ok(gcli("executors", "gcp", "delete", "vm1", "--yes"))
