"""Nothing outside a job's own folder is touched, and its secrets do not outlive it (issue 21).

On the real Slurm rig: planted `job.json` files (an id of `../../victim`, other shapes, a folder
whose name differs from its label, a symbolic link) steer no command; a job dir others could
write to or repoint is refused in one line; a job's env file is gone after `scancel`, the time
limit (tests/slurm/test_slurm_cli.py) and a cancel while pending. pyxis cannot be installed
here (not packaged for Debian or PyPI), so its batch script runs with a stand-in `srun`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from radops.executors.base import Executor
from radops.executors.slurm import batch as batch_sh
from radops.executors.slurm import folders, scripts
from tests import slurm_rig
from tests.slurm.conftest import SlurmCLI, wait_until
from tests.slurm.test_slurm_cli import _logs, assert_one_line_error, listed, submit

WARNING = "radops: warning: skipped "


def plant(job_dir: Path, name: str, label: str) -> Path:
    """A job folder as a hostile job would leave it: radops labels, and a record of its end
    (so `prune` would take it)."""
    folder = job_dir / name
    folder.mkdir(mode=0o700, exist_ok=True)
    labels = {
        "dev.radops.job-id": label,
        "dev.radops.executor": "hpc",
        "dev.radops.command": '["true"]',
        "dev.radops.created-at": "2020-01-01T00:00:00",
    }
    (folder / "job.json").write_text(json.dumps({"labels": labels}))
    (folder / "slurm-id").write_text("1\n")
    (folder / "record").write_text("0 2020-01-01T00:00:00Z node1\n")
    return folder


def victim(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "precious.txt").write_text("keep me\n")
    return where


@pytest.fixture
def planted(slurm: slurm_rig.SlurmCluster, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Victims outside the job dir, and the job folders that point at them or lie."""
    tag = uuid.uuid4().hex[:8]
    jobs = slurm.job_dir
    outside = {
        "relative": victim(jobs.parent.parent / f"victim-{tag}"),  # JOB_DIR/../../victim-TAG
        "linked": victim(tmp_path / "linked"),
    }
    made = [
        plant(jobs, "aaaaaaaaaaaa", f"../../victim-{tag}"),  # the reproduced attack
        plant(jobs, "ABCDEF012345", "ABCDEF012345"),  # not radops' id shape
        plant(jobs, "0123456789abc", "0123456789abc"),  # 13 digits
        plant(jobs, "planted", "planted"),
        plant(jobs, "ffffffffffff\nradops:job 000000000000", "ffffffffffff"),
    ]
    fake = jobs / "eeeeeeeeeeee"  # a job.json that would be the list script's refusal
    fake.mkdir(mode=0o700)
    (fake / "job.json").write_text("radops:error 1\nradops:refused symlink\n")
    made.append(fake)
    link = jobs / "cccccccccccc"
    plant(outside["linked"].parent, outside["linked"].name, "cccccccccccc")  # a job's look
    link.symlink_to(outside["linked"])
    made.append(link)
    yield {**outside, **{p.name: p for p in made}}
    for path in made:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(outside["relative"], ignore_errors=True)


def test_planted_job_folders_steer_nothing_and_are_skipped_with_a_warning(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], slurm: slurm_rig.SlurmCluster, hpc: str,
    context: Path, planted: dict[str, Path],
) -> None:  # fmt: skip
    real = submit(slurm_cli, slurm_jobs, context, "--", "true")
    assert slurm_cli("executors", "logs", "hpc", real, "-f").returncode == 0
    # A folder whose name differs from its label: it names the real job, and is not it.
    liar = plant(slurm.job_dir, "bbbbbbbbbbbb", real)
    try:
        shown = slurm_cli("executors", "jobs", "hpc", "--json")
        assert shown.returncode == 0, shown.stderr
        ids = [job["job_id"] for job in json.loads(shown.stdout)]
        assert real in ids and ids.count(real) == 1
        assert not {"aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "planted"} & set(ids)
        warnings = [x for x in shown.stderr.splitlines() if x.startswith(WARNING)]
        assert len(warnings) == 7, shown.stderr  # once each, on stderr only
        assert "radops:job" not in shown.stdout and WARNING not in shown.stdout
        named = "\n".join(warnings)
        assert "aaaaaaaaaaaa on hpc: its job.json says it is job '../../victim-" in named
        assert f"bbbbbbbbbbbb on hpc: its job.json says it is job '{real}'" in named
        assert "cccccccccccc on hpc: it is a symbolic link" in named
        assert "ABCDEF012345 on hpc: its name is not a radops job id" in named
        assert "ffffffffffff?radops:job 000000000000 on hpc: its name" in named
        for ref in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "../../victim"):
            for command in (("logs", "hpc", ref), ("stop", "hpc", ref),
                            ("rm", "hpc", ref, "--force")):  # fmt: skip
                result = slurm_cli("executors", *command)
                assert result.returncode == 3, (command, result.stderr)
        pruned = slurm_cli("executors", "prune", "hpc", "--yes")
        assert pruned.returncode == 0, pruned.stderr
        skipped = [x for x in pruned.stderr.splitlines() if x.startswith(WARNING)]
        assert len(skipped) == 7, pruned.stderr  # prune lists twice, warns once
        assert not (slurm.job_dir / real).exists()  # the real ended job was pruned
        for name, path in planted.items():
            assert path.exists() or path.is_symlink(), name
        for outside in ("relative", "linked"):
            assert (planted[outside] / "precious.txt").read_text() == "keep me\n"
        assert (planted["aaaaaaaaaaaa"] / "job.json").exists() and (liar / "job.json").exists()
    finally:
        shutil.rmtree(liar, ignore_errors=True)


def test_the_remove_script_refuses_any_path_but_job_dir_and_an_id(
    slurm_executor: Executor, slurm: slurm_rig.SlurmCluster, tmp_path: Path
) -> None:
    """Defence in depth, on the login node itself: even given a bad id, the script touches
    nothing but JOB_DIR/<12 hex digits>."""
    target = victim(slurm.job_dir.parent / f"victim-{uuid.uuid4().hex[:8]}")
    link = slurm.job_dir / "dddddddddddd"
    link.symlink_to(target)
    conn = slurm_executor.conn  # type: ignore[attr-defined]
    try:
        for bad, why in ((f"../{target.name}", "job-id"), ("dddddddddddd", "job-symlink"),
                         ("", "job-id"), ("0123456789a/", "job-id")):  # fmt: skip
            for argv in (scripts.remove_argv(str(slurm.job_dir), bad, "0", True, 0),
                         scripts.stop_argv(str(slurm.job_dir), bad, "0", 0, 0)):  # fmt: skip
                _, out, _ = conn.run(argv)
                assert out.endswith(f"radops:error 1\nradops:refused {why}\n".encode()), out
        assert (target / "precious.txt").read_text() == "keep me\n" and link.is_symlink()
    finally:
        link.unlink()
        shutil.rmtree(target)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("group-writable", "can be written by other users (drwxrwx---); make it yours alone: "
                           "chmod 700 "),
        ("world-writable", "can be written by other users (drwx---rwx)"),
        ("symlink", "is a symbolic link"),
        ("other-owner", "belongs to another user (uid 65534)"),
    ],
)  # fmt: skip
def test_a_job_dir_others_can_write_or_repoint_is_refused_in_one_line(
    slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster, hpc: str, context: Path, tmp_path: Path,
    kind: str, needle: str,
) -> None:  # fmt: skip
    real = tmp_path / "jobs"
    real.mkdir(mode=0o700)
    job_dir = real
    if kind == "group-writable":
        real.chmod(0o770)
    elif kind == "world-writable":
        real.chmod(0o707)
    elif kind == "symlink":
        job_dir = tmp_path / "jobs-link"
        job_dir.symlink_to(real)
    else:
        os.chown(real, 65534, 65534)
    changed = slurm_cli("executors", "set", "hpc", "--job-dir", str(job_dir))
    assert changed.returncode == 0, changed.stderr
    listing = slurm_cli("executors", "jobs", "hpc")
    assert_one_line_error(listing, f"job folder {job_dir} on hpc", needle)
    assert listing.returncode == 4
    if kind == "group-writable":
        assert f"chmod 700 {job_dir}" in listing.stderr
        run = slurm_cli("executors", "run", "hpc", str(context), "-e", "K=v", "--", "true")
        assert_one_line_error(run, "can be written by other users")
        assert list(real.iterdir()) == []  # no job folder, no env file written there


def test_a_job_dir_not_made_yet_lists_no_jobs(
    slurm_cli: SlurmCLI, slurm: slurm_rig.SlurmCluster, hpc: str, tmp_path: Path
) -> None:
    changed = slurm_cli("executors", "set", "hpc", "--job-dir", str(tmp_path / "new" / "jobs"))
    assert changed.returncode == 0, changed.stderr
    listing = slurm_cli("executors", "jobs", "hpc", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == []


def test_the_env_file_is_gone_after_scancel_of_a_running_job(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], slurm: slurm_rig.SlurmCluster, hpc: str,
    context: Path,
) -> None:  # fmt: skip
    job = submit(slurm_cli, slurm_jobs, context, "-e", "RADOPS_TEST_SECRET=s3cret", "--",
                 "sh", "-c", 'echo "up $RADOPS_TEST_SECRET"; sleep 300')  # fmt: skip
    wait_until(lambda: _logs(slurm_cli, job) == b"up s3cret\n", "the job running")
    env = slurm.job_dir / job / "env"
    assert env.read_text() == "RADOPS_TEST_SECRET=s3cret\n"  # there while the job runs
    cancelled = slurm.slurm("scancel", "--name", f"radops-{job}")  # behind radops' back
    assert cancelled.returncode == 0, cancelled.stderr
    wait_until(lambda: (slurm.job_dir / job / "record").exists(), "the job's record")
    assert not env.exists()


def test_the_env_file_is_gone_after_stop_of_a_pending_job(
    slurm_cli: SlurmCLI, slurm_jobs: list[str], slurm: slurm_rig.SlurmCluster, hpc: str,
    context: Path,
) -> None:  # fmt: skip
    job = submit(slurm_cli, slurm_jobs, context, "-e", "RADOPS_TEST_SECRET=s3cret",
                 "--slurm-arg=--hold", "--", "true")  # fmt: skip
    assert listed(slurm_cli)[job]["status"] == "pending"
    env = slurm.job_dir / job / "env"
    assert env.read_text() == "RADOPS_TEST_SECRET=s3cret\n"
    stopped = slurm_cli("executors", "stop", "hpc", job)
    assert stopped.returncode == 0, stopped.stderr
    assert not env.exists()  # its batch script never ran: stop removed it
    assert (slurm.job_dir / job / "job.json").exists()  # the rest stays until rm/prune
    assert listed(slurm_cli)[job]["status"] == "cancelled"


# pyxis: its batch script with a stand-in srun (real sh) ---------------------------------------


def _stand_in(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _pyxis_job(tmp_path: Path, env: str) -> tuple[Path, str]:
    folder = tmp_path / "job dir" / "0123456789ab"
    folder.mkdir(parents=True)
    (folder / "env").write_text(env)
    (folder / "env").chmod(0o600)
    job = batch_sh.BatchJob(
        job_id="0123456789ab", folder=str(folder), runtime="pyxis", runtime_path="srun",
        image="127.0.0.1:5000/radops/x:abc", run_args=[], command=["sh", "-c", "echo $PATH"],
        has_env=True,
    )  # fmt: skip
    return folder, batch_sh.batch_script(job)


def test_pyxis_exports_the_env_to_the_step_only(tmp_path: Path) -> None:
    """`-e PATH=EVIL`: the stand-in srun (found on the batch shell's PATH) runs and its step
    gets PATH=EVIL; nothing in EVIL runs, not srun, nor the shell's own date, rm and mv."""
    evil = tmp_path / "evil"
    for tool in ("srun", "date", "rm", "mv", "sh"):
        _stand_in(evil / tool, f"touch {tmp_path}/evil-ran\n")
    seen = tmp_path / "srun.out"
    shows = 'printf "%s\\n" "PATH=$PATH" "SECRET=$RADOPS_TEST_SECRET" "$@"'
    _stand_in(tmp_path / "bin" / "srun", f"{shows} >{seen}\nexit 3\n")
    folder, script = _pyxis_job(tmp_path, f"PATH={evil}\nRADOPS_TEST_SECRET=s3 cret\n")
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    done = subprocess.run(["/bin/sh", "-c", script], env={"PATH": path}, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 3, done.stderr
    lines = seen.read_text().splitlines()
    assert lines[:2] == [f"PATH={evil}", "SECRET=s3 cret"]  # the step's environment
    assert lines[-3:] == ["sh", "-c", "echo $PATH"]
    assert "--container-image=127.0.0.1:5000#radops/x:abc" in lines
    assert not (tmp_path / "evil-ran").exists()
    assert (folder / "record").read_text().startswith("3 20")  # the shell's own date and mv
    assert not (folder / "env").exists()


def test_pyxis_batch_shell_outlives_term_and_removes_the_env_file(tmp_path: Path) -> None:
    """Slurm's TERM (scancel, the time limit) goes to every process of the job: the step
    ends, and the batch shell removes the env file and records the end."""
    started = tmp_path / "srun-started"
    _stand_in(tmp_path / "bin" / "srun",
              f"trap 'exit 143' TERM\ntouch {started}\nwhile :; do sleep 0.1; done\n")  # fmt: skip
    folder, script = _pyxis_job(tmp_path, "RADOPS_TEST_SECRET=s3cret\n")
    proc = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True,
                            env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})  # fmt: skip
    try:
        wait_until(started.exists, "the stand-in srun running", 20)
        assert (folder / "env").exists()
        os.killpg(proc.pid, signal.SIGTERM)  # as slurmstepd signals the whole batch step
        assert proc.wait(timeout=20) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (folder / "env").exists()
    assert (folder / "record").read_text().startswith("143 ")


# what the list script printed, read back (pure logic beside the rig tests) ---------------------


def test_a_planted_file_cannot_fake_a_listing_line() -> None:
    """Lines split at `\\n` only (a `\\r` in a job.json starts none), and squeue's rows come
    after the script's last marker, not after one a job.json holds."""
    good = b'{"labels": {"dev.radops.job-id": "cccccccccccc"}}'
    out = (
        b"radops:job aaaaaaaaaaaa\n{}\rradops:job 000000000000\r" + good + b"\n"
        b"radops:slurm-id 12\n"
        b"radops:job bbbbbbbbbbbb\nradops:squeue 0\n"  # a job.json that is a squeue marker
        b"radops:job cccccccccccc\n" + good + b"\nradops:slurm-id 12\n"
        b"radops:squeue 0\n12|RUNNING|None|node1\n"
    )  # fmt: skip
    entries, status, _, rows = folders.parse_jobs(out)
    assert [e.name for e in entries] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]
    assert status == 0 and list(rows) == ["12"]
    jobs, skipped = folders.read_folders(entries, rows, "hpc")
    assert [(j.id, j.status) for j in jobs] == [("cccccccccccc", "running")] and skipped == []


@pytest.mark.parametrize("slurm_id", ["--me", "-u root", "12 13", "1e3", ""])
def test_a_slurm_id_that_is_no_number_never_reaches_scancel(slurm_id: str) -> None:
    entry = folders.FolderEntry(
        "aaaaaaaaaaaa", {"labels": {"dev.radops.job-id": "aaaaaaaaaaaa"}}, {"slurm-id": slurm_id}
    )
    job = folders.folder_job(entry, {}, "hpc")
    assert job.queue is not None and job.queue.job_id == ""
