"""Building on the local engine: one build for concurrent runs of the same content, and a
Dockerfile error shown as the engine's own message. Real local engine, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import describe, radops
from tests.conftest import BASE_IMAGE

RUNS = 5


def test_concurrent_runs_of_the_same_content_build_once(
    make_context: Callable[..., Path], docker_client: Any, job_ids: list[str]
) -> None:
    # A build that takes a while, so the five runs overlap it.
    context = make_context(
        "build-once", {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN sleep 2 && echo built > /b\n"}
    )
    dangling_before = set(docker_client.api.images(filters={"dangling": True}, quiet=True))
    argv = [sys.executable, "-m", "radops", "executors", "run", "local", str(context), "--", "true"]
    runs = [
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RUNS)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        job_ids.append(out.split()[1])  # "Job <id> started on local (image ...)"
    builds = [err for _, err in outputs if "Building radops/" in err]
    assert len(builds) == 1, [err for _, err in outputs]
    assert sum("not rebuilding" in err for _, err in outputs) == RUNS - 1
    dangling_after = set(docker_client.api.images(filters={"dangling": True}, quiet=True))
    assert dangling_after <= dangling_before  # no untagged image left behind


@pytest.mark.usefixtures("docker_client")  # builds on the local engine
def test_a_dockerfile_error_is_the_engines_message(make_context: Callable[..., Path]) -> None:
    context = make_context("syntax", {"Dockerfile": f"FROM {BASE_IMAGE}\nRUNN echo hi\n"})
    result = radops("executors", "run", "local", str(context), "--", "true")
    assert result.returncode == 6, describe(result)
    error = next(line for line in result.stderr.splitlines() if line.startswith("radops: "))
    assert error == (
        "radops: error: docker build failed: dockerfile parse error line 2: unknown "
        "instruction: RUNN"
    ), result.stderr
    assert "http+docker" not in result.stderr and "Client Error" not in result.stderr


MULTI_STAGE = f"""FROM {BASE_IMAGE} AS base
ARG GREETING=hello
RUN echo "$GREETING" > /greeting
FROM base AS test
RUN echo test-stage > /stage
FROM base AS final
RUN echo final-stage > /stage
"""


def _run_and_read(
    context: Path,
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
    *options: str,
) -> tuple[str, str]:
    """Start `cat /greeting /stage` with these options; return (its output, its image)."""
    job_id = start_job(context, "cat", "/greeting", "/stage", options=options)
    assert wait_job(job_id) == 0
    logs = radops("executors", "logs", "local", job_id)
    shown = radops("executors", "jobs", "local", "--json")
    image = next(j["image"] for j in json.loads(shown.stdout) if j["job_id"] == job_id)
    return logs.stdout, image


def test_build_args_and_target_reach_the_build_and_make_their_own_tags(
    make_context: Callable[..., Path],
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
) -> None:
    context = make_context("options", {"Dockerfile": MULTI_STAGE})
    plain, plain_image = _run_and_read(context, start_job, wait_job)
    assert plain == "hello\nfinal-stage\n"
    greeted, greeted_image = _run_and_read(
        context, start_job, wait_job, "--build-arg", "GREETING=bonjour"
    )
    assert greeted == "bonjour\nfinal-stage\n"
    staged, staged_image = _run_and_read(context, start_job, wait_job, "--target", "test")
    assert staged == "hello\ntest-stage\n"
    assert len({plain_image, greeted_image, staged_image}) == 3
    again, again_image = _run_and_read(
        context, start_job, wait_job, "--build-arg", "GREETING=bonjour"
    )
    assert (again, again_image) == (greeted, greeted_image)  # the same options: reused


def test_no_cache_builds_again_from_scratch(
    make_context: Callable[..., Path],
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
) -> None:
    stamp = f"FROM {BASE_IMAGE}\nRUN head -c 8 /dev/urandom | od -An -tx1 > /stamp\n"
    context = make_context("no-cache", {"Dockerfile": stamp})
    first = start_job(context, "cat", "/stamp")
    cached = start_job(context, "cat", "/stamp")
    fresh = start_job(context, "cat", "/stamp", options=("--no-cache",))
    outputs = []
    for job_id in (first, cached, fresh):
        assert wait_job(job_id) == 0
        outputs.append(radops("executors", "logs", "local", job_id).stdout)
    assert outputs[0] == outputs[1]  # unchanged: not rebuilt
    assert outputs[2] != outputs[0]  # --no-cache: the RUN step ran again


def test_a_bad_build_arg_is_refused_before_anything_is_built(
    make_context: Callable[..., Path],
) -> None:
    context = make_context("bad-arg", {"Dockerfile": MULTI_STAGE})
    for arg, message in (("=x", "invalid --build-arg '=x'"), ("UNSET_ANYWHERE", "is not set")):
        result = radops(
            "executors", "run", "local", str(context), "--build-arg", arg, "--", "true",
            env={"UNSET_ANYWHERE": None},
        )  # fmt: skip
        assert result.returncode == 2, describe(result)
        assert message in result.stderr and "Building" not in result.stderr
