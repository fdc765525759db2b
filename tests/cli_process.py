"""Run the real radops CLI in a subprocess, the way a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

TIMEOUT_S = 120


def radops(
    *args: str,
    input: str | bytes | None = None,
    env: Mapping[str, str | None] | None = None,
    binary: bool = False,
    timeout: float = TIMEOUT_S,
) -> subprocess.CompletedProcess[Any]:
    """`python -m radops ARGS...` with this process's environment, plus `env` (None unsets)."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    if isinstance(input, str) and binary:
        input = input.encode()
    return subprocess.run(
        [sys.executable, "-m", "radops", *args],
        input=input if input is not None else (b"" if binary else ""),
        capture_output=True,
        text=not binary,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -m radops ARGS...` without waiting (stdin closed, output captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", "radops", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def describe(result: Any) -> str:
    """Everything a failing assertion should show about a CLI call."""
    return f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
