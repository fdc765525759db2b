"""The SSH executor's first try of a `--transfer ssh` job: one remote command that runs the job,
or, when the engine lacks the image, also lists the layers the transfer needs next (the round
trip a first submit used to pay on its own). Run here with `sh` and the real local engine: the
same script and argv the SSH executor sends."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from radops.executors.ssh import layers
from radops.executors.ssh.scripts import (
    LAYERS_END,
    LAYERS_MARK,
    layers_argv,
    run_or_layers_argv,
)

BASE = "busybox:1.36"


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=120, check=False)


def test_a_missing_image_fails_the_run_and_lists_the_layers_in_the_same_command(
    docker_client: Any,
) -> None:
    missing = f"radops-test/missing-{uuid.uuid4().hex[:8]}:1"
    odd_base = "no-such-base:$(touch /tmp/radops-pwned)"  # data, never shell text
    repository = missing.rpartition(":")[0]  # no earlier versions: the base's layers only
    run = ["docker", "run", "--detach", "--pull", "never", missing, "true"]
    folded = _run(run_or_layers_argv("docker", repository, [BASE, odd_base], run))
    alone = _run(layers_argv("docker", repository, [BASE, odd_base]))

    assert folded.returncode == 125 and b"No such image" in folded.stderr, folded
    before, mark, listing = folded.stdout.partition(LAYERS_MARK)
    assert (before, mark) == (b"", LAYERS_MARK)
    assert listing == alone.stdout  # what the separate look would have said
    busybox = docker_client.api.inspect_image(BASE)["RootFS"]["Layers"]
    remote = layers.parse_remote_layers(listing)
    assert remote.needed(busybox) == set() and remote.partial_ok
    lines = listing.splitlines()
    assert lines[-1] == LAYERS_END  # the listing was not cut short
    assert [json.loads(line) for line in lines[1:-1]] == [busybox]


def test_a_present_image_runs_and_lists_nothing(docker_client: Any) -> None:
    name = f"radops-test-{uuid.uuid4().hex[:10]}"
    run = ["docker", "run", "--detach", "--pull", "never", "--name", name, BASE, "true"]
    try:
        result = _run(run_or_layers_argv("docker", "radops/job1", [BASE], run))
        assert result.returncode == 0, result.stderr
        container = docker_client.api.inspect_container(name)
        assert result.stdout.decode().strip() == container["Id"]  # docker run's own output
        assert LAYERS_MARK not in result.stdout
    finally:
        docker_client.api.remove_container(name, force=True)


def test_another_failure_keeps_its_status_and_message_and_lists_nothing(
    docker_client: Any,
) -> None:
    run = ["docker", "run", "--detach", "--pull", "never", "--memory", "nonsense", BASE, "true"]
    result = _run(run_or_layers_argv("docker", "radops/job1", [], run))
    direct = _run(run)
    assert result.returncode == direct.returncode != 0
    assert result.stderr.strip() == direct.stderr.strip()
    assert result.stdout == b""
