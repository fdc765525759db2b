"""paramiko loads invoke only when the user's SSH config has a `Match exec` line.

Each case runs in a fresh interpreter with its own HOME, through the real paramiko and invoke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RESOLVE = """
import json, sys
from radops.ssh.config import resolve_target
target = resolve_target("box")
print(json.dumps([target.hostname, target.port, "invoke" in sys.modules]))
"""


def _resolve_box(home: Path) -> tuple[str, int, bool]:
    env = {**os.environ, "HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-c", RESOLVE], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    hostname, port, invoke_loaded = json.loads(result.stdout)
    return hostname, port, invoke_loaded


def _write_config(home: Path, text: str) -> None:
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "config").write_text(text)


def test_without_match_exec_invoke_is_not_loaded(tmp_path: Path) -> None:
    _write_config(tmp_path, "Host box\n  HostName 127.0.0.9\n  Port 2222\n")
    assert _resolve_box(tmp_path) == ("127.0.0.9", 2222, False)


def test_without_an_ssh_config_invoke_is_not_loaded(tmp_path: Path) -> None:
    assert _resolve_box(tmp_path) == ("box", 22, False)


@pytest.mark.parametrize("criterion", ['exec "test -d /"', 'host box exec "true"'])
def test_match_exec_still_works(tmp_path: Path, criterion: str) -> None:
    _write_config(tmp_path, f"Match {criterion}\n  HostName 127.0.0.9\n  Port 2222\n")
    assert _resolve_box(tmp_path) == ("127.0.0.9", 2222, True)


def test_a_failing_match_exec_does_not_apply(tmp_path: Path) -> None:
    _write_config(tmp_path, 'Match exec "false"\n  HostName 127.0.0.9\n')
    assert _resolve_box(tmp_path) == ("box", 22, True)
