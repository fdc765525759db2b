"""Compute Engine out of reach (offline, a closed endpoint): the real google-cloud-compute client
pointed at a loopback port where nothing listens gives one line and exit 5, and leaves nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gcp.conftest import gcp_cli
from tests.ssh.conftest import CLI


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held (bound, never listening): a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def offline_cli(tmp_path: Path, closed_port: int) -> CLI:
    return gcp_cli(tmp_path, f"http://127.0.0.1:{closed_port}")


@pytest.mark.parametrize(
    "args",
    [
        ("create", "cpu-small", "vm1"),
        ("list-templates",),
        ("list",),
        ("delete", "vm1", "--yes"),
    ],
)
def test_an_unreachable_compute_engine_is_one_line(offline_cli: CLI, args: tuple[str, ...]) -> None:
    result = offline_cli("executors", "gcp", *args)
    err = result.stderr.decode()
    assert result.returncode == 5, err
    lines = err.splitlines()
    assert lines[0] == "radops: error: cannot reach Compute Engine: Connection refused", err
    assert len(lines) == 2 and lines[1].startswith("hint: Check this machine's network"), err
    config = Path(offline_cli.env["RADOPS_CONFIG_DIR"]) / "config.json"
    if config.exists():  # nothing pending, nothing registered
        data = json.loads(config.read_text())
        assert not data.get("executors") and not data.get("gcp_pending"), data
