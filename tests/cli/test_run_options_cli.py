"""`run`'s container options through the real CLI on the local engine: checked before anything is
built, `--env-file` read here, and the options shown by `jobs --json`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_process import describe, radops
from tests.conftest import BASE_IMAGE


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-v", "./data:/data"], "invalid --volume './data:/data': './data' is a relative path"),
        (["--shm-size", "huge"], "invalid --shm-size 'huge'"),
        (["-p", "99999:80"], "invalid --publish '99999:80'"),
        (["--env-file", "/nonexistent/job.env"], "cannot read --env-file '/nonexistent/job.env'"),
        (["--label", "dev.radops.job-id=x"], "invalid --label 'dev.radops.job-id=x'"),
        (["--mount", "type=tmpfs,target=/t,tmpfs-size=abc"], "invalid --mount"),
        (["--mount", "type=tmpfs,target=/t,tmpfs-size=-5"], "invalid --mount"),
        (["--cpus", "inf"], "invalid --cpus 'inf'"),
        (["--cpus", "1e400"], "invalid --cpus '1e400'"),
        (["--cpus", "1e-12"], "invalid --cpus '1e-12'"),
        # Bytes that are not UTF-8 (a Linux argv can hold any): refused, never turned to U+FFFD.
        (["-e", "ODD=caf\udce9"], "the value of -e 'ODD' is not UTF-8 text (byte 0xe9 at"),
        (["--label", "k=caf\udce9"], "--label 'k' is not UTF-8 text (byte 0xe9 at"),
        (["--", "echo", "caf\udce9"], "argument 2 of the command is not UTF-8 text (byte 0xe9"),
    ],
)
def test_a_bad_option_fails_before_anything_is_built(
    make_context: Callable[..., Path], options: list[str], message: str
) -> None:
    # A Dockerfile that has never been built: "Building" would show if the check came late.
    context = make_context("bad-option", {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo unbuilt\n"})
    result = radops("executors", "run", "local", str(context), *options, "--", "true")
    assert result.returncode == 2, describe(result)
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"radops: error: {message}")
    assert "Building" not in result.stderr and "Traceback" not in result.stderr


def test_env_file_values_reach_the_job_and_options_show_in_jobs_json(
    tmp_path: Path,
    tools_context: Path,
    job_ids: list[str],
    wait_job: Callable[[str], int],
) -> None:
    env_file = tmp_path / "job.env"
    env_file.write_text("# keys for the job\nWANDB_API_KEY=secret-value\nEPOCHS=3\n")
    result = radops(
        "executors", "run", "local", str(tools_context), "--env-file", str(env_file),
        "-e", "EPOCHS=10", "--shm-size", "1g", "-w", "/tmp", "-q", "--",
        "sh", "-c", 'echo "$WANDB_API_KEY $EPOCHS $(pwd)"',
    )  # fmt: skip
    assert result.returncode == 0, describe(result)
    job_id = result.stdout.strip()
    job_ids.append(job_id)
    assert wait_job(job_id) == 0
    logs = radops("executors", "logs", "local", job_id)
    assert logs.stdout == "secret-value 10 /tmp\n"  # -e wins over the file
    listed = json.loads(radops("executors", "jobs", "local", "--json").stdout)
    job = next(j for j in listed if j["job_id"] == job_id)
    assert job["options"] == {"shm_size": "1g", "workdir": "/tmp"}
    assert "secret-value" not in json.dumps(job)  # values are not options, nor labels
