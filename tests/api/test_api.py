"""radops.api: the Python API the CLI is a thin layer over, used as a script would use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import radops.api as radops
from radops.api.kinds import KINDS, executor_class
from radops.errors import UsageError
from radops.executors.features import Feature
from radops.specs import SlurmExecutorSpec, SSHExecutorSpec
from radops.store import ExecutorStore
from tests.rig import free_port

ROOT = Path(__file__).resolve().parents[2]


def no_questions(value: str | None, prompt: str, flag: str, default: str | None) -> str:
    """A script's `ask`: the value given, else the default; nothing to ask anyone."""
    if value is None and default is None:
        raise AssertionError(f"asked {prompt!r}")
    return value if value is not None else str(default)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_names_itself_its_settings_and_its_features(kind: str) -> None:
    cls = executor_class(kind)
    assert cls.kind == kind
    assert cls.spec_type.model_fields["kind"].default == kind
    assert cls.features <= frozenset(Feature)
    assert cls.title


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="invalid --kind 'k8s': use one of gcp, local, slurm, ssh"):
        executor_class("k8s")


def unreachable_ssh(name: str = "nowhere") -> None:
    """An SSH executor on a loopback port nothing listens on: any connection fails."""
    spec = SSHExecutorSpec.model_validate(
        {"name": name, "hostname": "127.0.0.1", "port": free_port(), "username": "me"}
    )
    ExecutorStore().add(spec)


def test_a_request_the_kind_cannot_honour_is_refused_before_connecting(tmp_path: Path) -> None:
    unreachable_ssh()
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.36\n")
    request = radops.job_request(tmp_path, "true", nodes=2, time="1:00:00")
    with radops.open_session("nowhere") as session, pytest.raises(UsageError) as refused:
        session.run(request)
    assert refused.value.message == (
        "--nodes, --time: only for executors with a queue (Slurm); nowhere is ssh"
    )


def test_features_a_kind_lacks_are_refused_by_name_before_connecting() -> None:
    spec = SlurmExecutorSpec.model_validate(
        {"name": "hpc", "hostname": "127.0.0.1", "port": free_port(), "job_dir": "/jobs"}
    )
    ExecutorStore().add(spec)
    with radops.open_session("hpc") as session:
        for call, message in (
            (lambda: b"".join(session.copy_from("0123456789ab", "/out")), "cp is not available"),
            (lambda: session.top(), "top is not available"),
            (lambda: list(session.logs("x", timestamps=True)), "logs --timestamps is not"),
        ):
            with pytest.raises(UsageError, match=message):
                call()
    with radops.open_session("local") as session, pytest.raises(UsageError) as refused:
        session.shell().__enter__()
    assert (
        refused.value.message == "executor 'local' is this machine; there is nothing to connect to"
    )


def test_a_setting_the_kind_does_not_have_is_refused_by_its_flag() -> None:
    with pytest.raises(UsageError, match=r"^--job-dir, --runtime: not a setting of ssh executors"):
        radops.add_executor(
            "ssh", {"name": "a", "hostname": "h", "job_dir": "/j", "runtime": "podman"},
            no_questions,
        )  # fmt: skip
    radops.add_executor("ssh", {"name": "a", "hostname": "h"}, no_questions, check=False)
    assert ExecutorStore().get("a").ssh.hostname == "h"  # type: ignore[union-attr]
    with pytest.raises(UsageError, match=r"^--partition: not a setting of ssh executors"):
        radops.update_executor("a", {"partition": "gpu"})
    with pytest.raises(UsageError, match=r"^--docker-path cannot be empty"):
        radops.update_executor("a", {"docker_path": ""})
    changed: Any = radops.update_executor("a", {"username": "ana", "registry": "ghcr.io/x"})
    assert (changed.ssh.username, changed.registry) == ("ana", "ghcr.io/x")


def test_job_request_checks_every_value_before_anything_is_built(tmp_path: Path) -> None:
    for options, message in (
        ({"shm_size": "lots"}, "invalid --shm-size"),
        ({"env": ["=x"]}, "invalid"),
        ({"transfer": "carrier-pigeon"}, "invalid --transfer"),
        ({"workdir": "relative"}, "invalid --workdir"),
    ):
        with pytest.raises(UsageError, match=message):
            radops.job_request(tmp_path, "true", **options)
    request = radops.job_request(tmp_path, "python train.py --lr '3e-4 x'", gpus="1")
    assert request.command == ["python", "train.py", "--lr", "3e-4 x"]
    assert radops.job_request(tmp_path, ["a b", "c"]).command == ["a b", "c"]


def test_the_sweep_demo_runs_three_jobs_and_waits_for_them(docker_client: Any) -> None:
    """demos/api/sweep.py, as docs/api.md shows it, on the local engine."""
    result = subprocess.run(
        [sys.executable, "demos/api/sweep.py", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    started = [line.split()[-1] for line in result.stdout.splitlines() if ": job " in line]
    try:
        assert result.returncode == 0, result
        assert len(started) == 3
        for rate in ("1e-3", "3e-4", "1e-4"):
            assert f"lr={rate}: exit 0: --lr {rate}\n" in result.stdout
    finally:
        for job_id in started:
            docker_client.api.remove_container(f"radops-{job_id}", force=True)
