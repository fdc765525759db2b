"""`prune`'s question on a real terminal, against the local engine: "n" removes nothing and
exits 0, as docker's prompts do (nothing was asked to fail)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli_process import describe, radops
from tests.terminal import Terminal


def test_answering_no_removes_nothing_and_exits_0(
    tools_context: Path,
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
    docker_client: Any,
) -> None:
    ended = start_job(tools_context, "true")
    assert wait_job(ended) == 0
    term = Terminal(
        [sys.executable, "-m", "radops", "executors", "prune", "local"], dict(os.environ)
    )
    term.expect("[y/N]")
    term.send("n")
    assert term.wait() == 0, term.text
    assert "error" not in term.text and "Removed" not in term.text, term.text
    assert docker_client.api.inspect_container(f"radops-{ended}")["State"]["Status"] == "exited"
    listed = radops("executors", "jobs", "local", "--json")
    assert ended in listed.stdout, describe(listed)
