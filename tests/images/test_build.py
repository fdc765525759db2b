"""Building on the local engine: one build for concurrent runs of the same content, and a
Dockerfile error shown as the engine's own message. Real local engine, the real CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
