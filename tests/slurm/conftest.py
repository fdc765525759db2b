"""Fixtures for the Slurm executor's tests: the real Slurm rig, an executor on it, a CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from radops.api import open_spec as open_executor
from radops.executors.base import Executor
from radops.executors.model import ConnectOptions
from radops.specs import SlurmExecutorSpec
from tests import slurm_rig
from tests.conftest import CONTEXT_PREFIX


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slurm_rig.SlurmCluster]:
    """munge, slurmctld, two slurmd nodes, the login node and the registry: once a session."""
    root = tmp_path_factory.mktemp("radops-slurm-rig")
    with slurm_rig.machine_lock(), slurm_rig.slurm_cluster(root) as cluster:
        yield cluster
        slurm_rig.clean_jobs(cluster)
        _remove_rig_containers(cluster)


def _remove_rig_containers(cluster: slurm_rig.SlurmCluster) -> None:
    """Any container left from this rig's jobs (its registry names their images)."""
    for runtime in ("docker", "podman"):
        listed = subprocess.run(
            [runtime, "ps", "-a", "--format", "{{.Names}} {{.Image}}"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        for line in listed.splitlines():
            name, _, image = line.partition(" ")
            if name.startswith("radops-") and image.startswith(cluster.registry):
                subprocess.run([runtime, "rm", "--force", name], capture_output=True, timeout=60)


def slurm_spec(
    cluster: slurm_rig.SlurmCluster, name: str = "hpc", **fields: object
) -> SlurmExecutorSpec:
    values: dict[str, object] = {
        "name": name, "hostname": "127.0.0.1", "port": cluster.ssh_port, "username": "root",
        "identity_file": str(cluster.client_key), "job_dir": str(cluster.job_dir),
        "registry": cluster.registry, "partition": slurm_rig.PARTITION,
    }  # fmt: skip
    values.update(fields)
    return SlurmExecutorSpec.model_validate(values)


@pytest.fixture
def slurm_executor(
    slurm: slurm_rig.SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Executor]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no personal ssh config or known hosts
    with open_executor(slurm_spec(slurm), ConnectOptions(trust_new_host_key=True)) as executor:
        yield executor


def remove_slurm_job(cluster: slurm_rig.SlurmCluster, job_id: str) -> None:
    """Cancel a job behind radops' back, wait for its containers to go, remove its folder."""
    cluster.slurm("scancel", "--name", f"radops-{job_id}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = cluster.slurm("squeue", "-h", "--name", f"radops-{job_id}", "-o", "%T").stdout
        if not out.strip() or all(s not in out for s in ("RUNNING", "PENDING", "COMPLETING")):
            break
        time.sleep(0.5)
    for runtime in ("docker", "podman"):
        for name in (f"radops-{job_id}", f"radops-{job_id}-0", f"radops-{job_id}-1"):
            subprocess.run([runtime, "rm", "--force", name], capture_output=True, timeout=60)
    folder = cluster.job_dir / job_id
    with contextlib.suppress(FileNotFoundError):
        subprocess.run(["rm", "-rf", str(folder)], check=True)


@pytest.fixture
def slurm_jobs(slurm: slurm_rig.SlurmCluster) -> Iterator[list[str]]:
    """Append the id of every job a test starts: each is cancelled and removed afterwards."""
    ids: list[str] = []
    yield ids
    for job_id in ids:
        remove_slurm_job(slurm, job_id)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


@dataclass
class SlurmCLI:
    env: dict[str, str]

    def __call__(
        self, *args: str, timeout: float = 180, input: bytes = b""
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [sys.executable, "-m", "radops", *args], env=self.env, input=input.decode(),
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"radops {' '.join(args)} still running after {timeout}s; "
                f"stdout: {e.stdout!r}; stderr: {e.stderr!r}"
            ) from None


@pytest.fixture
def slurm_cli(tmp_path: Path, slurm: slurm_rig.SlurmCluster) -> SlurmCLI:
    """`radops` in a subprocess, as a user runs it: own HOME, config and the rig's registry."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "known_hosts").write_text(slurm.known_hosts_line())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADOPS_", "SSH_AUTH", "XDG_"))}
    env.update(
        HOME=str(home),
        RADOPS_CONFIG_DIR=str(tmp_path / "config"),
        RADOPS_SSH_PERSIST="0",
        RADOPS_REGISTRY=slurm.registry,
        PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"),
    )
    return SlurmCLI(env)


def add_args(slurm: slurm_rig.SlurmCluster, name: str, *more: str) -> list[str]:
    """`executors add` of the rig's login node as Slurm executor `name`, then `more`."""
    return [
        "executors", "add", "--kind", "slurm", "--name", name, "--hostname", "127.0.0.1",
        "--port", str(slurm.ssh_port), "--username", "root", "--identity-file",
        str(slurm.client_key), "--job-dir", str(slurm.job_dir), *more,
    ]  # fmt: skip


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A small build context of this test's own."""
    folder = tmp_path / f"{CONTEXT_PREFIX}slurm-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY nonce /nonce\n")
    (folder / "nonce").write_text(uuid.uuid4().hex)
    return folder


@pytest.fixture
def hpc(slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster) -> str:
    """A registered Slurm executor `hpc` (docker runtime), added through the CLI."""
    result = slurm_cli(*add_args(slurm, "hpc", "--partition", "gpu", "--runtime", "docker"))
    assert result.returncode == 0, result.stderr
    return "hpc"
