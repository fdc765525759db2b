"""GPU placement end to end, on the rig's engine: a dockerd with the stand-in NVIDIA hook on its
PATH (so it registers its `nvidia` device driver and sets NVIDIA_VISIBLE_DEVICES as on a GPU
machine) and the stand-in nvidia-smi of a four-GPU box on the sessions' PATH (tests/rig.py).
Jobs print NVIDIA_VISIBLE_DEVICES, which dockerd set from the devices radops gave it.

Both kinds that place GPUs run each test: `ssh` (the rig host `box`) and `local` (this
machine's CLI pointed at the same engine with DOCKER_HOST, the stand-in nvidia-smi on PATH)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.ssh.conftest import CLI

SHOW = "echo gpus=$NVIDIA_VISIBLE_DEVICES; exec sleep 600"
APPS = Path("/tmp/radops-gpu-standin-apps")  # the stand-in's compute apps (see its header)


def _gpu_jobs(remote: rig.RemoteHost) -> list[str]:
    out = remote.docker("ps", "-aq", "--filter", "label=dev.radops.job-id").stdout
    return out.split()


def _clean(remote: rig.RemoteHost) -> None:
    if ids := _gpu_jobs(remote):
        remote.docker("rm", "--force", *ids)
    APPS.unlink(missing_ok=True)


@pytest.fixture
def clean_gpus(remote: rig.RemoteHost) -> Iterator[None]:
    """No radops job on the rig's engine before and after: each test starts with 4 free GPUs."""
    _clean(remote)
    yield
    _clean(remote)


@pytest.fixture
def base_on_rig(remote: rig.RemoteHost) -> None:
    """The jobs' base image on the rig's engine, for the local kind, which builds there."""
    if remote.docker("image", "inspect", "busybox:1.36").returncode == 0:
        return
    save = subprocess.Popen(["docker", "save", "busybox:1.36"], stdout=subprocess.PIPE)
    env = {**os.environ, "DOCKER_HOST": remote.docker_host}
    subprocess.run([rig.DOCKER, "load", "-q"], stdin=save.stdout, env=env, check=True,
                   capture_output=True)  # fmt: skip
    assert save.wait() == 0


@pytest.fixture(params=["ssh", "local"])
def gpu_box(request: pytest.FixtureRequest, cli: CLI, remote: rig.RemoteHost) -> str:
    """An executor on the four-GPU stand-in machine: `box` over SSH, or `local` there."""
    if request.param == "local":
        request.getfixturevalue("base_on_rig")
        cli.env.update(DOCKER_HOST=remote.docker_host, PATH=rig.standin_path())
        return "local"
    return str(request.getfixturevalue("box"))


def _run_args(executor: str, context: Path, *flags: str) -> list[str]:
    return ["executors", "run", "--quiet", executor, str(context), *flags, "--", "sh", "-c", SHOW]


def _start(cli: CLI, executor: str, *args: Path | str) -> subprocess.CompletedProcess[bytes]:
    context, *flags = args
    return cli(*_run_args(executor, Path(context), *map(str, flags)))


def _devices(cli: CLI, executor: str, job: str) -> str:
    """What dockerd set NVIDIA_VISIBLE_DEVICES to in the job."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = cli("executors", "logs", executor, job).stdout.decode()
        if out.startswith("gpus="):
            return out.split("\n")[0].removeprefix("gpus=")
        time.sleep(0.3)
    raise AssertionError(f"job {job} printed no devices")


def _parallel(cli: CLI, executor: str, context: Path, n: int, *flags: str) -> list[str]:
    procs = [cli.popen(*_run_args(executor, context, *flags)) for _ in range(n)]
    jobs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
        jobs.append(out.decode().strip())
    return jobs


def _warm(cli: CLI, executor: str, context: Path) -> None:
    """The image built and on the engine once, so parallel runs race for GPUs, not builds."""
    result = cli("executors", "run", "--quiet", executor, str(context), "true")
    assert result.returncode == 0, result.stderr.decode()
    removed = cli("executors", "rm", executor, result.stdout.decode().strip())
    assert removed.returncode == 0, removed.stderr.decode()


@pytest.mark.usefixtures("clean_gpus")
def test_four_parallel_runs_get_four_gpus_and_a_fifth_is_refused(
    cli: CLI, gpu_box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    _warm(cli, gpu_box, job_context)
    jobs = _parallel(cli, gpu_box, job_context, 4, "--gpus", "1")
    devices = {job: _devices(cli, gpu_box, job) for job in jobs}
    assert sorted(devices.values()) == ["0", "1", "2", "3"], devices

    listed = json.loads(cli("executors", "jobs", gpu_box, "--json").stdout)
    placed = {j["job_id"]: j["gpus"] for j in listed if j["job_id"] in devices}
    for job, device in devices.items():
        assert [g["index"] for g in placed[job]] == [int(device)]
        assert placed[job][0]["uuid"].startswith(f"GPU-5ad0000{device}-")
    table = cli("executors", "jobs", gpu_box).stdout.decode()
    assert "GPUS" in table.splitlines()[0]
    checked = cli("executors", "check", gpu_box, "--json")
    assert json.loads(checked.stdout)["gpus_free"] == 0, checked.stderr.decode()
    top = json.loads(cli("executors", "top", gpu_box, "--json").stdout)
    assert {g["index"]: g["jobs"] for g in top["gpus"]} == {
        int(device): [job] for job, device in devices.items()
    }

    before = set(_gpu_jobs(remote))
    fifth = _start(cli, gpu_box, job_context, "--gpus", "1")
    assert fifth.returncode == 1
    lines = fifth.stderr.decode().strip().splitlines()
    assert lines[-2].startswith("radops: error: --gpus 1: 0 of 4 GPUs free"), lines
    assert all(job in lines[-2] for job in jobs) and "--wait" in lines[-1]
    assert "Traceback" not in fifth.stderr.decode()
    assert set(_gpu_jobs(remote)) == before  # nothing left behind


@pytest.mark.usefixtures("clean_gpus")
def test_pairs_are_disjoint_and_named_devices_share_with_a_notice(
    cli: CLI, gpu_box: str, job_context: Path
) -> None:
    _warm(cli, gpu_box, job_context)
    pairs = _parallel(cli, gpu_box, job_context, 2, "--gpus", "2")
    got = sorted(_devices(cli, gpu_box, job) for job in pairs)
    assert got == ["0,1", "2,3"], got
    shared = _start(cli, gpu_box, job_context, "--gpus", "device=1,2")
    assert shared.returncode == 0, shared.stderr.decode()
    job = shared.stdout.decode().strip()
    assert _devices(cli, gpu_box, job) == "1,2"
    err = shared.stderr.decode()
    assert "GPU 1,2 already in use by job" in err and all(p in err for p in pairs), err
    refused = _start(cli, gpu_box, job_context, "--gpus", "all")
    assert refused.returncode == 1 and "0 of 4 GPUs free" in refused.stderr.decode()


@pytest.mark.usefixtures("clean_gpus")
def test_a_gpu_busy_with_another_process_is_skipped_unless_named(
    cli: CLI, gpu_box: str, job_context: Path
) -> None:
    _warm(cli, gpu_box, job_context)
    APPS.write_text("GPU-5ad00000-0000-4000-8000-000000000000, 4242\n")
    first = _start(cli, gpu_box, job_context, "--gpus", "1")
    assert first.returncode == 0, first.stderr.decode()
    assert _devices(cli, gpu_box, first.stdout.decode().strip()) == "1"
    named = _start(cli, gpu_box, job_context, "--gpus", "device=0")
    assert named.returncode == 0, named.stderr.decode()
    assert _devices(cli, gpu_box, named.stdout.decode().strip()) == "0"


@pytest.mark.usefixtures("clean_gpus")
def test_wait_starts_the_job_on_the_gpu_a_stopped_job_frees(
    cli: CLI, gpu_box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    _warm(cli, gpu_box, job_context)
    jobs = _parallel(cli, gpu_box, job_context, 4, "--gpus", "1")
    devices = {job: _devices(cli, gpu_box, job) for job in jobs}
    args = _run_args(gpu_box, job_context, "--gpus", "1", "--wait=120")
    waiting = cli.popen(*[a for a in args if a != "--quiet"][:3], "--json", *args[4:])
    interrupted = cli.popen(*args)
    time.sleep(5)
    assert waiting.poll() is None and interrupted.poll() is None  # still waiting: no GPU free
    before = set(_gpu_jobs(remote))
    interrupted.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = interrupted.communicate(timeout=30)
    assert interrupted.returncode == 130 and "Traceback" not in err.decode(), err.decode()
    assert set(_gpu_jobs(remote)) == before  # it left nothing behind
    freed = next(job for job, device in devices.items() if device == "2")
    assert cli("executors", "stop", gpu_box, freed, "--timeout", "1").returncode == 0
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err.decode()
    said = [line for line in err.decode().splitlines() if "waiting for GPUs" in line]
    assert len(said) == 1 and said[0].endswith(
        "waiting for GPUs: 0 of 4 GPUs free, 1 needed: "
        + "; ".join(
            f"GPU {d}: job {j} of {json.loads(out)['user']}"
            for j, d in sorted(devices.items(), key=lambda i: i[1])
        )
    ), said
    started = json.loads(out)
    assert started["gpus"][0]["index"] == 2
    assert _devices(cli, gpu_box, started["job_id"]) == "2"


@pytest.mark.usefixtures("clean_gpus")
def test_two_users_of_one_machine_never_share_a_gpu(
    cli: CLI, box: str, job_context: Path, ssh_home: Path, remote: rig.RemoteHost
) -> None:
    """Root and another user of the machine (in its docker group), starting at once."""
    config = ssh_home / ".ssh" / "config"
    config.write_text(
        config.read_text()
        + f"Host gpubox\n  HostName 127.0.0.1\n  Port {remote.ssh_port}\n  User {rig.GPU_USER}\n"
        f"  IdentityFile {remote.client_key}\n"
    )
    _open_to_docker_group(remote)
    added = cli("executors", "add", "--name", "other", "--hostname", "gpubox",
                "--docker-path", "/usr/bin/docker")  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    _warm(cli, box, job_context)
    _warm(cli, "other", job_context)
    procs = [
        cli.popen(*_run_args(executor, job_context, "--gpus", "1"))
        for executor in ("box", "other", "box", "other")
    ]
    jobs = []
    for proc, executor in zip(procs, ("box", "other", "box", "other"), strict=True):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
        jobs.append((executor, out.decode().strip()))
    assert sorted(_devices(cli, e, j) for e, j in jobs) == ["0", "1", "2", "3"]
    assert os.stat("/tmp/radops-gpus.lock").st_mode & 0o777 == 0o666


def _open_to_docker_group(remote: rig.RemoteHost) -> None:
    """The rig engine's socket (root:docker, 0660) reachable by the docker group: its folders,
    under this session's private temporary folder, made traversable (not readable) by all."""
    folder = Path(remote.docker_host.removeprefix("unix://")).parent
    for parent in [folder, *folder.parents]:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)


def _job(cli: CLI, executor: str, job: str) -> dict[str, object]:
    listed = json.loads(cli("executors", "jobs", executor, "--json").stdout)
    found: dict[str, object] = next(j for j in listed if j["job_id"] == job)
    return found


@pytest.mark.usefixtures("clean_gpus")
def test_a_restarting_job_keeps_its_gpu_and_every_run_is_logged(
    cli: CLI, gpu_box: str, job_context: Path
) -> None:
    _warm(cli, gpu_box, job_context)
    flaky = cli("executors", "run", "--quiet", gpu_box, str(job_context), "--gpus", "1",
                "--restart", "on-failure:3", "--", "sh", "-c",
                "echo gpus=$NVIDIA_VISIBLE_DEVICES; sleep 2; exit 3")  # fmt: skip
    assert flaky.returncode == 0, flaky.stderr.decode()
    job = flaky.stdout.decode().strip()
    assert _devices(cli, gpu_box, job) == "0"
    deadline = time.monotonic() + 60
    while _job(cli, gpu_box, job)["restarts"] in (None, 0):
        assert time.monotonic() < deadline, "the job was not restarted"
        time.sleep(0.5)
    # Placement treats its GPU as held, running or between two runs.
    other = _start(cli, gpu_box, job_context, "--gpus", "1")
    assert other.returncode == 0, other.stderr.decode()
    assert _devices(cli, gpu_box, other.stdout.decode().strip()) == "1"
    while (state := _job(cli, gpu_box, job))["status"] != "exited":
        assert time.monotonic() < deadline + 60, f"the job still runs: {state}"
        time.sleep(0.5)
    assert state["exit_code"] == 3
    logs = cli("executors", "logs", gpu_box, job).stdout.decode()
    assert logs.count("gpus=0\n") == 4, logs  # the first run and three restarts, all on GPU 0
    final = _job(cli, gpu_box, job)
    assert final["restarts"] == 3 and final["options"] == {"restart": "on-failure:3"}
    table = cli("executors", "jobs", gpu_box).stdout.decode()
    assert "RESTARTS" in table and "3 (on-failure:3)" in table


@pytest.mark.usefixtures("clean_gpus")
def test_an_unless_stopped_job_comes_back_after_the_engine_restarts(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    _warm(cli, box, job_context)
    first = _start(cli, box, job_context, "--gpus", "1")
    kept = _start(cli, box, job_context, "--gpus", "1", "--restart", "unless-stopped")
    assert first.returncode == 0 and kept.returncode == 0, kept.stderr.decode()
    job = kept.stdout.decode().strip()
    assert _devices(cli, box, job) == "1"
    remote.restart_engine()
    deadline = time.monotonic() + 60
    while _job(cli, box, job)["status"] != "running":
        assert time.monotonic() < deadline, "the job did not come back"
        time.sleep(0.5)
    logs = cli("executors", "logs", box, job).stdout.decode()
    assert logs.count("gpus=1\n") == 2, logs  # its first run's output kept, then the new one
    gone = first.stdout.decode().strip()
    assert _job(cli, box, gone)["status"] == "exited"  # no policy: stays down
    # Its GPU is still its own; the one of the job that stayed down is free again.
    again = _start(cli, box, job_context, "--gpus", "1")
    assert _devices(cli, box, again.stdout.decode().strip()) == "0"
