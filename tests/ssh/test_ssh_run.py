"""Jobs on the SSH executor, end to end: build here, ship through the registry or SSH, run there."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
import uuid
from pathlib import Path

from radops.progress import PLAIN_EVERY_S
from tests import rig
from tests.ssh.conftest import CLI


def _run(cli: CLI, *args: str) -> str:
    result = cli("executors", "run", "--quiet", *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def _logs(cli: CLI, executor: str, job: str, *flags: str) -> bytes:
    result = cli("executors", "logs", executor, job, *flags)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def _catalog(remote: rig.RemoteHost) -> list[str]:
    with urllib.request.urlopen(f"http://{remote.registry}/v2/_catalog", timeout=10) as r:
        repos: list[str] = json.load(r)["repositories"]
    return repos


def test_image_travels_through_the_registry_then_is_not_shipped_again(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    started = time.monotonic()
    first = cli("executors", "run", box, str(job_context), "sh /job/args.sh hello", "--json")
    took = time.monotonic() - started
    assert first.returncode == 0, first.stderr.decode()
    job = json.loads(first.stdout)
    assert job["image"].startswith(f"{remote.registry}/radops/{job_context.name}:")
    err = first.stderr.decode()
    assert "Pushing" in err and "Pulling" in err
    # Transfer progress, as plain lines off a terminal: the push's bytes, the pull's layers.
    assert re.search(rf"Pushing {re.escape(job['image'])}: [\d.]+ [kMG]?B( in \d+s)?\n", err), err
    assert re.search(r"box pulled (\d+) of \1 layers of \S+", err), err
    # At most one pull line every 5 s, and the last: not one per layer event.
    pulls = re.findall(r"box pulled \d+ of \d+ layers", err)
    assert 1 <= len(pulls) <= 2 + took // PLAIN_EVERY_S, (took, err)
    assert f"radops/{job_context.name}" in _catalog(remote)
    assert remote.docker("image", "inspect", job["image"]).returncode == 0
    assert _logs(cli, box, job["job_id"], "--follow") == b"<hello>\n"

    again = cli("executors", "run", box, str(job_context), "sh /job/args.sh again")
    assert again.returncode == 0, again.stderr.decode()
    err = again.stderr.decode()
    assert "nothing to ship" in err and "Pushing" not in err and "Pulling" not in err


def test_transfer_over_ssh_needs_no_registry(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    result = cli(
        "executors",
        "run",
        box,
        str(job_context),
        "sh /job/args.sh x",
        "--transfer",
        "ssh",
        "--json",
    )
    assert result.returncode == 0, result.stderr.decode()
    image = json.loads(result.stdout)["image"]
    assert image.startswith(f"radops/{job_context.name}:")
    assert remote.docker("image", "inspect", image).returncode == 0
    assert f"radops/{job_context.name}" not in _catalog(remote)


def test_command_reaches_the_container_verbatim_and_runs_nothing_on_the_host(
    cli: CLI, box: str, job_context: Path, tmp_path: Path
) -> None:
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    command = (
        f"sh /job/args.sh 'a;b' ';touch {marker}' '$(touch {marker})' '`touch {marker}`' \"it's\""
    )
    job = _run(cli, box, str(job_context), command)
    out = _logs(cli, box, job, "--follow").decode()
    assert out.splitlines() == [
        "<a;b>", f"<;touch {marker}>", f"<$(touch {marker})>", f"<`touch {marker}`>", "<it's>",
    ]  # fmt: skip
    assert not marker.exists()


def test_logs_are_byte_for_byte_with_streams_kept_apart(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    script = r"printf '[bold]x[/bold]\n\377\376'; printf 'to stderr\n' >&2; printf 'no newline'"
    job = _run(cli, box, str(job_context), "--", "sh", "-c", script)
    result = cli("executors", "logs", box, job, "--follow")
    assert result.returncode == 0
    # Jobs use Docker's `local` log driver, which keeps bytes that are not UTF-8 as they are.
    assert result.stdout == b"[bold]x[/bold]\n\xff\xfeno newline"
    assert result.stdout == remote.docker_bytes("logs", f"radops-{job}").stdout
    assert result.stderr == b"to stderr\n"


def test_follow_exits_with_the_job_exit_code_and_env_arrives(
    cli: CLI, box: str, job_context: Path
) -> None:
    result = cli(
        "executors", "run", box, str(job_context), "--follow", "-e", "GREETING=hi there",
        "--", "sh", "-c", 'echo "$GREETING"; exit 3',
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout == b"hi there\n"


def test_jobs_and_stop(cli: CLI, box: str, job_context: Path) -> None:
    job = _run(cli, box, str(job_context), "sleep 300")
    listed = cli("executors", "jobs", box, "--json")
    assert listed.returncode == 0, listed.stderr.decode()
    mine = [j for j in json.loads(listed.stdout) if j["job_id"] == job]
    assert mine and mine[0]["status"] == "running" and mine[0]["command"] == ["sleep", "300"]
    stopped = cli("executors", "stop", box, job[:6], "--timeout", "1", "--json")
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert json.loads(stopped.stdout)["status"] == "exited"


def test_job_survives_the_client_being_killed_mid_follow(
    cli: CLI, box: str, job_context: Path
) -> None:
    job = _run(
        cli,
        box,
        str(job_context),
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done",
    )
    follower = cli.popen("executors", "logs", box, job, "--follow")
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"line 1\n"
    follower.send_signal(signal.SIGKILL)
    follower.wait(timeout=10)
    listed = json.loads(cli("executors", "jobs", box, "--json").stdout)
    assert [j["status"] for j in listed if j["job_id"] == job] == ["running"]
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline and cli("executors", "logs", box, job).stdout.count(b"\n") < 6
    ):
        time.sleep(0.5)
    assert _logs(cli, box, job) == b"".join(b"line %d\n" % i for i in range(1, 7))


def test_unknown_job_on_ssh_executor(cli: CLI, box: str) -> None:
    result = cli("executors", "logs", box, "0123456789ab")
    assert result.returncode == 3
    assert "no job '0123456789ab' on executor 'box'" in result.stderr.decode()


def test_a_job_that_cannot_start_is_reported_and_left_nowhere(
    cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    result = cli("executors", "run", box, str(job_context), "no-such-program --flag")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "starting the job on box" in err and "docker not found" not in err
    listed = remote.docker(
        "ps", "--all", "--filter", "label=dev.radops.job-id", "--format", "{{.Command}}"
    )
    assert "no-such-program" not in listed.stdout


def test_logs_with_a_wrong_docker_path_say_so(cli: CLI, trusted: None) -> None:
    added = cli(
        *("executors", "add", "--name", "bad", "--hostname", "rigbox", "--no-check"),
        *("--docker-path", "/opt/nowhere/docker"),
    )
    assert added.returncode == 0, added.stderr.decode()
    result = cli("executors", "logs", "bad", "0123456789ab")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().startswith(
        "radops: error: docker not found at /opt/nowhere/docker"
    )
