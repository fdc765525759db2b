"""Run the real radops CLI in a subprocess, the way a user's shell would (or, where a process
of its own adds nothing, in this one)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def radops_here(
    *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
) -> Ran:
    """`radops ARGS...` as `radops()` runs it (stdin `input` or empty, this process's environment
    plus `env`), but in this process: no interpreter start-up (~0.3 s) for a test of exit codes and
    text. An exception that escapes the CLI is raised here, so it fails the test."""
    from radops.cli import main

    out, err = _text_buffer(), _text_buffer()
    code = 0
    with (
        _environment(env),
        _stdin(input or ""),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
    return Ran(code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode())


def _text_buffer() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None] | None) -> Iterator[None]:
    saved = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8")
    try:
        yield
    finally:
        sys.stdin = saved


_LOADED = """
import json, sys
from radops.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
sys.stderr.write('\\nLOADED=' + json.dumps([code, loaded]) + '\\n')
"""


def modules_after(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S
) -> tuple[Any, set[str], str]:
    """Run `radops ARGS` in a fresh interpreter: its exit code, every module it had loaded by
    the end, and its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, *args],
        capture_output=True, text=True, check=False, env=env, timeout=timeout,
    )  # fmt: skip
    code, modules = json.loads(result.stderr.rsplit("LOADED=", 1)[1])
    return code, set(modules), result.stderr
