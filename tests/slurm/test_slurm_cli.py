"""The Slurm executor as a user drives it, on the real Slurm rig: radops in a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import slurm_rig
from tests.slurm.conftest import SlurmCLI, add_args, wait_until


def submit(cli: SlurmCLI, jobs: list[str], context: Path, *args: str) -> str:
    result = cli("executors", "run", "hpc", str(context), "-q", *args)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    jobs.append(job_id)
    return job_id


def listed(cli: SlurmCLI) -> dict[str, dict[str, object]]:
    result = cli("executors", "jobs", "hpc", "--json")
    assert result.returncode == 0, result.stderr
    return {job["job_id"]: job for job in json.loads(result.stdout)}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("radops: error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], result.stderr


def no_containers(runtime: str, job_id: str) -> bool:
    out = subprocess.run(
        [runtime, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=60
    ).stdout
    return not [name for name in out.split() if name.startswith(f"radops-{job_id}")]


def test_add_reports_slurm_partitions_gpus_and_runtime(
    slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster
) -> None:
    result = slurm_cli(*add_args(slurm, "hpc", "--partition", "gpu"))
    assert result.returncode == 0, result.stderr
    assert "hpc: Slurm 22.05" in result.stderr
    assert "gpu (2 node(s), gpu:fake:2)" in result.stderr
    assert "runtime docker" in result.stderr  # found on the login node
    shown = json.loads(slurm_cli("executors", "show", "hpc", "--json").stdout)
    assert shown["kind"] == "slurm" and shown["runtime"] == "docker"
    assert shown["job_dir"] == str(slurm.job_dir) and shown["partition"] == "gpu"
    check = slurm_cli("executors", "check", "hpc", "--json")
    assert check.returncode == 0, check.stderr
    assert {p["name"] for p in json.loads(check.stdout)["partitions"]} == {"gpu", "cpu"}


def test_an_unknown_partition_is_a_one_line_error(
    slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster, hpc: str, context: Path
) -> None:
    result = slurm_cli(*add_args(slurm, "bad", "--partition", "nope"))
    assert_one_line_error(result, "no partition 'nope'", "gpu, cpu")
    assert "bad" not in slurm_cli("executors", "list").stdout
    run = slurm_cli("executors", "run", "hpc", str(context), "--partition", "nope", "--", "true")
    assert_one_line_error(run, "Invalid partition name specified")


def test_the_login_node_unreachable_is_a_one_line_error(
    slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster
) -> None:
    closed = slurm_rig.free_port()
    result = slurm_cli(
        "executors", "add", "--kind", "slurm", "--name", "gone", "--hostname", "127.0.0.1",
        "--port", str(closed), "--username", "root", "--identity-file",
        str(slurm.client_key), "--job-dir", "/tmp/x",
    )  # fmt: skip
    assert_one_line_error(result, "cannot connect to", "connection refused")


def test_munge_down_is_a_one_line_error(
    slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster, hpc: str
) -> None:
    slurm.stop_process("munged")
    try:
        result = slurm_cli("executors", "jobs", "hpc")
        assert_one_line_error(result, "munge")
        assert result.returncode == 5
    finally:
        slurm.start_munge()
    wait_until(lambda: slurm.slurm("sinfo").returncode == 0, "Slurm answering again")


@pytest.mark.parametrize(
    ("gpus", "needles"),
    [("all", ("--gpus all is not available on Slurm",)), ("two", ("invalid --gpus 'two'",))],
)
def test_gpus_all_or_nonsense_is_refused_before_building(
    slurm_cli: SlurmCLI, hpc: str, context: Path, gpus: str, needles: tuple[str, ...]
) -> None:
    result = slurm_cli("executors", "run", "hpc", str(context), "--gpus", gpus, "--", "true")
    assert_one_line_error(result, *needles)
    assert "Building" not in result.stderr


def test_more_gpus_than_a_node_has_is_refused_at_submit(
    slurm_cli: SlurmCLI, hpc: str, context: Path
) -> None:
    result = slurm_cli("executors", "run", "hpc", str(context), "--gpus", "3", "--", "true")
    assert_one_line_error(result, "submitting the job", "Requested node configuration")


def test_queue_flags_on_a_docker_executor_are_refused(slurm_cli: SlurmCLI, context: Path) -> None:
    result = slurm_cli("executors", "run", "local", str(context), "--time", "1:00", "--", "true")
    assert_one_line_error(result, "--time: only for executors with a queue (Slurm); local is local")


def test_a_third_two_gpu_job_waits_for_resources_then_runs(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], hpc: str, context: Path, tmp_path: Path
) -> None:
    script = 'echo "gpus=$RADOPS_SLURM_GPUS"; while [ ! -e "/signal/$N" ]; do sleep 0.2; done'
    signal = tmp_path / "signal"
    signal.mkdir(mode=0o777)
    holders = [
        submit(
            slurm_cli,
            slurm_jobs,
            context,
            "--gpus",
            "2",
            "-v",
            f"{signal}:/signal",
            "-e",
            f"N={n}",
            "--",
            "sh",
            "-c",
            script,
        )
        for n in range(2)
    ]
    waiter = submit(slurm_cli, slurm_jobs, context, "--gpus", "fake:2", "--", "echo", "my turn")
    wait_until(lambda: listed(slurm_cli)[waiter]["queue"]["reason"] == "Resources",  # type: ignore[index]
               "the third job pending for Resources")  # fmt: skip
    jobs = listed(slurm_cli)
    assert [jobs[h]["status"] for h in holders] == ["running", "running"]
    assert jobs[waiter]["status"] == "pending"
    table = slurm_cli("executors", "jobs", "hpc").stdout
    assert "PENDING (Resources)" in table and "RUNNING on node" in table
    follow = subprocess.Popen(
        [*_cli_argv(), "executors", "logs", "hpc", waiter, "-f"], env=slurm_cli.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Each holder got both GPUs of its node: the nodes' GRES, not all of the machine's.
    for holder in holders:
        wait_until(lambda h=holder: b"gpus=" in _logs(slurm_cli, h), "holder's output")
        assert _logs(slurm_cli, holder) == b"gpus=0,1\n"
    nodes = {listed(slurm_cli)[h]["queue"]["nodes"] for h in holders}  # type: ignore[index]
    assert nodes == {"node1", "node2"}
    (signal / "0").touch()  # release the first holder only
    out, err = follow.communicate(timeout=120)
    assert follow.returncode == 0, err
    assert out == "my turn\n"
    assert f"Job {waiter} is PENDING (Resources)" in err  # status on stderr, never in the output
    done = listed(slurm_cli)
    assert (done[waiter]["status"], done[waiter]["exit_code"]) == ("exited", 0)
    assert done[holders[1]]["status"] == "running"


def _cli_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "radops"]


def _logs(cli: SlurmCLI, job_id: str) -> bytes:
    result = subprocess.run(
        [*_cli_argv(), "executors", "logs", "hpc", job_id], env=cli.env, capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_stop_cancels_the_job_and_leaves_no_container(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], hpc: str, context: Path, runtime: str
) -> None:
    if runtime == "podman":
        changed = slurm_cli("executors", "set", "hpc", "--runtime", "podman", "--docker-path",
                            "/usr/bin/podman")  # fmt: skip
        assert changed.returncode == 0, changed.stderr
    # node1: podman there pulls from this machine's loopback registry address.
    job = submit(slurm_cli, slurm_jobs, context, "--slurm-arg=--nodelist=node1", "--",
                 "sh", "-c", "echo up; trap '' TERM; sleep 300")  # fmt: skip
    wait_until(lambda: _logs(slurm_cli, job) == b"up\n", "the job's container running")
    assert not no_containers(runtime, job)
    result = slurm_cli("executors", "stop", "hpc", job, "--timeout", "2")
    assert result.returncode == 0, result.stderr
    assert f"Stopped job {job}" in result.stderr
    # The container ignores TERM: stop's timeout, then it is killed, and --rm removes it.
    assert no_containers(runtime, job)
    ended = listed(slurm_cli)[job]
    assert (ended["status"], ended["exit_code"]) == ("exited", 137)  # the container's SIGKILL
    again = slurm_cli("executors", "stop", "hpc", job)
    assert again.returncode == 0 and "was not running" in again.stderr


def test_a_two_node_job_runs_a_container_per_node_with_its_rank(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], hpc: str, context: Path
) -> None:
    script = 'echo "rank $NODE_RANK of $WORLD_SIZE/$NNODES master $MASTER_ADDR:$MASTER_PORT"'
    job = submit(slurm_cli, slurm_jobs, context, "--nodes", "2", "--", "sh", "-c", script)
    follow = slurm_cli("executors", "logs", "hpc", job, "-f")
    assert follow.returncode == 0, follow.stderr
    lines = sorted(follow.stdout.splitlines())
    assert len(lines) == 2 and lines[0].startswith("rank 0 of 2/2 master 198.18.0.1:")
    assert lines[1].startswith("rank 1 of 2/2 master 198.18.0.1:")
    assert lines[0].split()[-1] == lines[1].split()[-1]  # one MASTER_PORT for both
    job_json = listed(slurm_cli)[job]
    assert job_json["exit_code"] == 0 and job_json["queue"]["nodes"] == "node[1-2]"  # type: ignore[index]


def test_options_reach_sbatch_and_a_time_limit_ends_the_job(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], slurm: slurm_rig.SlurmCluster, hpc: str,
    context: Path,
) -> None:  # fmt: skip
    job = submit(slurm_cli, slurm_jobs, context, "--time", "1", "--cpus", "2", "--memory",
                 "200m", "--partition", "cpu", "--slurm-arg=--comment=radops-test",
                 "-e", "RADOPS_TEST_SECRET=s3cret", "--", "sleep", "300")  # fmt: skip
    slurm_id = listed(slurm_cli)[job]["queue"]["slurm_job_id"]  # type: ignore[index]
    shown = slurm.slurm("scontrol", "show", "job", str(slurm_id)).stdout
    for field in ("TimeLimit=00:01:00", "Partition=cpu", "MinMemoryNode=200M", "NumCPUs=2",
                  "Comment=radops-test"):  # fmt: skip
        assert field in shown, shown
    env = slurm.job_dir / job / "env"
    wait_until(lambda: listed(slurm_cli)[job]["status"] == "running", "the job starting")
    assert env.read_text() == "RADOPS_TEST_SECRET=s3cret\n"
    wait_until(lambda: listed(slurm_cli)[job]["status"] == "exited", "the time limit", 240)
    assert no_containers("docker", job)
    assert not env.exists()  # the secrets went with the job (issue 21)


def test_a_finished_job_keeps_its_state_after_squeue_forgets_it(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], slurm: slurm_rig.SlurmCluster, hpc: str,
    context: Path,
) -> None:  # fmt: skip
    job = submit(slurm_cli, slurm_jobs, context, "--", "sh", "-c", "exit 7")
    slurm_id = listed(slurm_cli)[job]["queue"]["slurm_job_id"]  # type: ignore[index]

    def forgotten() -> bool:
        out = slurm.slurm("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()
        return str(slurm_id) not in out

    wait_until(forgotten, "squeue forgetting the job (MinJobAge)", 240)
    gone = listed(slurm_cli)[job]
    assert (gone["status"], gone["exit_code"]) == ("exited", 7)
    wait = slurm_cli("executors", "logs", "hpc", job, "-f")
    assert wait.returncode == 0


def test_restart_unless_stopped_is_slurms_requeue_and_the_rest_is_refused(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], slurm: slurm_rig.SlurmCluster, hpc: str,
    context: Path,
) -> None:  # fmt: skip
    job = submit(slurm_cli, slurm_jobs, context, "--restart", "unless-stopped", "--", "sleep",
                 "300")  # fmt: skip
    slurm_id = listed(slurm_cli)[job]["queue"]["slurm_job_id"]  # type: ignore[index]
    shown = slurm.slurm("scontrol", "show", "job", str(slurm_id)).stdout
    assert "Requeue=1" in shown, shown
    once = submit(slurm_cli, slurm_jobs, context, "--restart", "no", "--", "true")
    slurm_id = listed(slurm_cli)[once]["queue"]["slurm_job_id"]  # type: ignore[index]
    shown = slurm.slurm("scontrol", "show", "job", str(slurm_id)).stdout
    assert "Requeue=0" in shown, shown  # (this cluster requeues by default: JobRequeue=1)
    refused = slurm_cli("executors", "run", "hpc", str(context), "--restart", "on-failure:3",
                        "--", "true")  # fmt: skip
    assert_one_line_error(refused, "--restart on-failure:3 does not apply to 'hpc'")
    assert "Building" not in refused.stderr
    waiting = slurm_cli("executors", "run", "hpc", str(context), "--gpus", "1", "--wait",
                        "--", "true")  # fmt: skip
    assert_one_line_error(waiting, "--wait does not apply to 'hpc': Slurm queues the job")
