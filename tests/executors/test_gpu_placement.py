"""GPU placement's rule, pure: which GPUs a `--gpus` request gets on a machine's state. The
same rule runs on real engines in tests/ssh/test_ssh_gpus.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from radops.errors import UsageError
from radops.executors.docker.gpus import (
    GpusBusy,
    GpuState,
    Placement,
    device_request,
    docker_gpus_value,
    gpu_labels,
    job_gpus,
    parse_apps,
    parse_inventory,
    place,
    sharing_notice,
    until_free,
)
from radops.executors.docker.options import parse_gpus
from radops.executors.model import Gpu, Job

FOUR = parse_inventory(
    "0, GPU-aaaa\n1, GPU-bbbb\n2, GPU-cccc\n3, GPU-dddd\nNo devices were found\n"
)


def _job(job_id: str, indexes: list[int], status: str = "running", name: str = "") -> Job:
    gpus = [g for g in FOUR if g.index in indexes]
    return Job(job_id, "box", status, None, None, [], "img", name or None, user="ann@box",
               gpus=gpus)  # fmt: skip


def _place(asked: str, jobs: list[Job] = (), busy: frozenset[str] = frozenset()) -> list[int]:  # type: ignore[assignment]
    placement = place(asked, parse_gpus(asked), GpuState(FOUR, list(jobs), busy), "box")
    return [g.index for g in placement.devices]


def test_nvidia_smi_output_is_read_as_indexes_and_uuids() -> None:
    assert FOUR[2] == Gpu(2, "GPU-cccc") and len(FOUR) == 4
    assert parse_apps("GPU-bbbb, 4242\nNo running processes found\n") == {"GPU-bbbb"}


def test_a_count_takes_the_lowest_gpus_no_running_job_holds() -> None:
    assert _place("1") == [0]
    assert _place("1", [_job("a" * 12, [0])]) == [1]
    assert _place("2", [_job("a" * 12, [0]), _job("b" * 12, [2])]) == [1, 3]
    # An ended job holds nothing; a restarting one keeps its GPUs.
    assert _place("1", [_job("a" * 12, [0], "exited")]) == [0]
    assert _place("1", [_job("a" * 12, [0], "restarting")]) == [1]


def test_gpus_busy_with_other_processes_count_as_taken_unless_named() -> None:
    assert _place("1", busy=frozenset({"GPU-aaaa"})) == [1]
    assert _place("device=0", busy=frozenset({"GPU-aaaa"})) == [0]


def test_all_needs_every_gpu_free() -> None:
    assert _place("all") == [0, 1, 2, 3]
    with pytest.raises(GpusBusy):
        _place("all", [_job("a" * 12, [3])])


def test_too_few_free_gpus_is_refused_naming_the_holders() -> None:
    jobs = [_job("a" * 12, [0, 1], name="sweep-1"), _job("b" * 12, [2])]
    with pytest.raises(GpusBusy) as refused:
        _place("2", jobs, frozenset({"GPU-dddd"}))
    message = refused.value.message
    assert message.startswith("--gpus 2: 0 of 4 GPUs free on box, 2 needed")
    assert f"GPU 0: job {'a' * 12} (sweep-1) of ann@box" in message
    assert "GPU 3: a process radops did not start" in message and "\n" not in message
    assert "--wait" in (refused.value.hint or "")


def test_named_devices_run_and_say_which_jobs_share_them() -> None:
    holder = _job("a" * 12, [2], name="train")
    placement = place("device=2,3", parse_gpus("device=2,3"), GpuState(FOUR, [holder],
                      frozenset()), "box")  # fmt: skip
    assert [g.index for g in placement.devices] == [2, 3]
    assert sharing_notice(placement) == (
        f"GPU 2,3 already in use by job {'a' * 12} (train) of ann@box; starting anyway"
    )
    by_uuid = place("device=GPU-dddd", parse_gpus("device=GPU-dddd"), GpuState(FOUR, [],
                    frozenset()), "box")  # fmt: skip
    assert by_uuid.devices == [Gpu(3, "GPU-dddd")]


def test_a_device_or_count_the_machine_lacks_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no GPU '7' on box"):
        _place("device=7")
    with pytest.raises(UsageError, match="box has 4 GPUs"):
        _place("5")


def test_the_engine_gets_explicit_devices_never_a_count() -> None:
    request = parse_gpus("2")
    placement = place("2", request, GpuState(FOUR, [_job("a" * 12, [0])], frozenset()), "box")
    assert device_request(request, placement)["DeviceIDs"] == ["1", "2"]
    assert device_request(request, placement)["Count"] == 0
    assert docker_gpus_value(request, placement, "2") == '"device=1,2"'
    caps = parse_gpus('2,"capabilities=compute,utility"')
    assert docker_gpus_value(caps, placement, "") == '"device=1,2","capabilities=compute,utility"'
    assert docker_gpus_value(request, None, "2") == "2"  # no nvidia-smi: docker decides


def test_labels_carry_the_placement_and_read_back() -> None:
    placement = place("2", parse_gpus("2"), GpuState(FOUR, [], frozenset()), "box")
    labels = gpu_labels(placement)
    assert labels == {"dev.radops.gpus": "0,1", "dev.radops.gpu-uuids": "GPU-aaaa,GPU-bbbb"}
    assert job_gpus(labels) == [Gpu(0, "GPU-aaaa"), Gpu(1, "GPU-bbbb")]
    assert job_gpus({}) == []


def test_waiting_tries_again_until_the_gpus_are_free() -> None:
    tries: list[int] = []
    said: list[str] = []

    def attempt() -> str:
        tries.append(1)
        if len(tries) < 3:
            _place("all", [_job("a" * 12, [1])])
        return "started"

    assert until_free(attempt, float("inf"), said.append, poll_s=0) == "started"
    assert len(tries) == 3 and said[0].startswith("waiting for GPUs: 3 of 4 GPUs free")
    with pytest.raises(GpusBusy, match=r"\(waited 0s\)"):
        until_free(lambda: _place("all", [_job("a" * 12, [1])]), 0, said.append, poll_s=0)
    with pytest.raises(GpusBusy):  # no --wait: refused at once
        until_free(lambda: _place("all", [_job("a" * 12, [1])]), None, said.append)


def test_unquoted_device_lists_are_read_as_meant() -> None:
    assert parse_gpus("device=2,3")["DeviceIDs"] == ["2", "3"]
    assert parse_gpus("device=GPU-aaaa,GPU-bbbb")["DeviceIDs"] == ["GPU-aaaa", "GPU-bbbb"]


@pytest.mark.parametrize("policy", ["on-failure", "on-failure:3", "always"])
def test_slurm_refuses_restart_policies_it_has_no_meaning_for(policy: str) -> None:
    from radops.executors.model import JobRequest
    from radops.executors.run_options import parse_run_options
    from radops.executors.slurm.executor import SlurmExecutor

    request = JobRequest(Path("."), [], options=parse_run_options(restart=policy))
    with pytest.raises(UsageError, match=f"--restart {policy} does not apply to 'hpc'"):
        SlurmExecutor.check_request(request, "hpc")
    requeue = JobRequest(Path("."), [], options=parse_run_options(restart="unless-stopped"))
    SlurmExecutor.check_request(requeue, "hpc")  # Slurm's requeue
    with pytest.raises(UsageError, match="--wait does not apply"):
        SlurmExecutor.check_request(JobRequest(Path("."), [], gpus="1", gpu_wait=60), "hpc")


def test_restart_values_are_dockers() -> None:
    from radops.executors.run_options import parse_run_options, restart_policy

    for good in ("no", "always", "unless-stopped", "on-failure", "on-failure:5"):
        assert parse_run_options(restart=good).docker_argv() == ["--restart", good]
    assert restart_policy("on-failure:5") == {"Name": "on-failure", "MaximumRetryCount": 5}
    with pytest.raises(UsageError, match="invalid --restart 'sometimes'"):
        parse_run_options(restart="sometimes")


def test_the_ssh_guard_runs_only_on_gpus_still_free_under_the_lock(tmp_path: Path) -> None:
    """GUARD_SCRIPT with real sh and flock(1), a stand-in docker that lists the GPUs held."""
    import os
    import subprocess

    from radops.executors.ssh.gpus import gpus_taken, guard_argv

    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho 0,1\necho 3\n")  # `docker ps`: jobs on GPUs 0,1 and 3
    docker.chmod(0o755)
    lock = tmp_path / "gpus.lock"

    def guarded(asked: str, devices: list[int]) -> subprocess.CompletedProcess[bytes]:
        placement = Placement([g for g in FOUR if g.index in devices], [])
        argv = guard_argv(str(docker), parse_gpus(asked), placement, ["echo", "started"])
        argv[argv.index("/tmp/radops-gpus.lock")] = str(lock)
        return subprocess.run(argv, capture_output=True, check=False)

    free = guarded("1", [2])
    assert free.returncode == 0 and free.stdout == b"started\n"
    assert os.stat(lock).st_mode & 0o777 == 0o666  # every user's radops can take it
    taken = guarded("1", [1])
    assert taken.returncode == 125 and gpus_taken(taken.stderr) and not taken.stdout
    named = guarded("device=1", [1])  # the user's own choice: runs, shared or not
    assert named.returncode == 0 and named.stdout == b"started\n"

    # A link planted at the lock's path (another user's, dangling or not) is never written
    # through: the run is refused in one line, the link's target neither made nor changed.
    lock.unlink()
    victim = tmp_path / "victim"
    lock.symlink_to(victim)
    planted = guarded("1", [2])
    assert planted.returncode == 125 and not planted.stdout
    assert b"is not a regular file" in planted.stderr, planted.stderr
    assert not victim.exists()
    victim.write_text("precious")
    assert guarded("1", [2]).returncode == 125 and victim.read_text() == "precious"


def test_the_local_gpu_lock_never_follows_a_planted_link(tmp_path: Path) -> None:
    """The local lock: made 0666 when missing; a link at its path is a one-line refusal."""
    import os

    from radops.errors import RadopsError
    from radops.executors.local.gpus import machine_gpu_lock

    lock = tmp_path / "gpus.lock"
    with machine_gpu_lock(str(lock)):
        assert os.stat(lock).st_mode & 0o777 == 0o666
    planted = tmp_path / "planted.lock"
    victim = tmp_path / "victim"
    planted.symlink_to(victim)
    with (
        pytest.raises(RadopsError, match="cannot open the GPU lock"),
        machine_gpu_lock(str(planted)),
    ):
        pass
    assert not victim.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--wait", "2h", "python", "x"], ["--wait=2h", "python", "x"]),
        (["--wait", "90", "python"], ["--wait=90", "python"]),
        (["--wait", "python", "x"], ["--wait=forever", "python", "x"]),
        (["--wait"], ["--wait=forever"]),
        (["--wait=10m", "x"], ["--wait=10m", "x"]),
        (["--", "--wait", "3"], ["--", "--wait", "3"]),  # the job's own arguments
    ],
)
def test_a_bare_wait_takes_a_following_time_as_its_value(
    argv: list[str], expected: list[str]
) -> None:
    """`--wait 2h` means `--wait=2h`, not `--wait` forever with `2h` as the job's command."""
    from radops.cli import _optional_values

    head = ["executors", "run", "box", "./f", "--gpus", "1"]
    assert _optional_values([*head, *argv]) == [*head, *expected]
