"""Run radops with its SSH traffic counted and its main steps timed (diagnosis, never timed).

    python benchmarks/_trace.py OUT.json executors run bench ./folder true -q

writes {"connections": N, "commands": [[argv...], ...], "spans": [[name, start, end], ...],
"cli_start": s, "end": s} to OUT.json (times in seconds since this process started Python
code), prints a one-line summary of it to stderr, then exits as radops does. Each span is one
call of a wrapped radops function; functions that no longer exist are skipped, so this stays
usable as the code changes.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
_spans: list[tuple[str, float, float]] = []
_commands: list[list[str]] = []
_connections = 0
_shared = 0  # remote commands sent through a shared connection

# (module, attribute path, label): the steps worth seeing in a breakdown.
WRAPPED = (
    ("radops.store", "ExecutorStore.load", "config load"),
    ("radops.store", "ExecutorStore.open_entry", "config read"),
    ("radops.images.engine", "LocalEngine.platform", "local engine platform"),
    ("radops.images.service", "LocalImages.ensure", "local image check/build"),
    ("radops.executors.local.executor", "LocalExecutor.jobs", "list containers"),
    ("radops.images.context", "tag_for_context", "context hash"),
    ("radops.ssh.connection", "DirectConnection._connect_one", "SSH connect"),
    ("radops.ssh.remote", "SSHConnection.run", "remote command"),
    ("radops.ssh.remote", "SSHConnection.stream", "remote stream"),
    ("radops.ssh.remote", "SSHConnection.run_with_input", "remote command with input"),
    ("radops.images.service", "LocalImages.push", "push"),
    ("radops.executors.ssh.shipping", "SSHStream.ship_and_run", "docker save | load over SSH, run"),
    ("radops.cli.render", "print_table", "render table"),
    ("radops.cli.render", "write_output", "write output"),
)


def _now() -> float:
    return time.perf_counter() - T0


def _wrap(module_name: str, path: str, label: str) -> None:
    try:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)
    except (ImportError, AttributeError):
        return
    if name == "stream":  # a generator: the span lasts until it is exhausted

        @functools.wraps(original)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            start = _now()
            try:
                yield from original(*args, **kwargs)
            finally:
                _spans.append((label, start, _now()))

        setattr(owner, name, gen_wrapper)
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _connections
        start = _now()
        if label == "SSH connect":
            _connections += 1
        try:
            return original(*args, **kwargs)
        finally:
            _spans.append((label, start, _now()))

    setattr(owner, name, wrapper)


def _record_channel() -> None:
    """Every remote command radops runs (SSHConnection.execute is the one place), and whether
    it went through a shared connection (radops.ssh.mux) rather than one of its own."""
    try:
        from radops.ssh.remote import SSHConnection
    except ImportError:
        return
    original = SSHConnection.execute

    def execute(self: Any, argv: Any, stdin: Any = None) -> Any:
        global _shared
        _commands.append([str(a) for a in argv])
        result = original(self, argv, stdin)
        _shared += bool(getattr(self, "_shared_live", False) and not self.direct.connected)
        return result

    SSHConnection.execute = execute  # type: ignore[method-assign]


def main() -> None:
    out = sys.argv[1]
    for module_name, path, label in WRAPPED:
        _wrap(module_name, path, label)
    _record_channel()
    from radops.cli import main as radops_main

    cli_start = _now()

    def dump() -> None:
        data = {
            "connections": _connections,
            "shared": _shared,
            "commands": _commands,
            "spans": _spans,
            "cli_start": cli_start,
            "end": _now(),
        }
        with open(out, "w") as f:
            json.dump(data, f)
        sys.stderr.write(f"[trace] {describe(data)}\n")

    atexit.register(dump)
    sys.argv = ["radops", *sys.argv[2:]]
    radops_main()


def trace(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 300, keep_stdout: bool = True
) -> dict[str, Any]:
    """Run `radops ARGS` under this tracer; its trace, plus "returncode" and "stdout".

    keep_stdout=False sends stdout to /dev/null (a big output would grow this process, and a
    child's max RSS counts its parent's memory at fork time).
    """
    fd, out = tempfile.mkstemp(suffix=".json", prefix="radops-trace-")
    os.close(fd)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, out, *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        text = Path(out).read_text()
    finally:
        os.unlink(out)
    data: dict[str, Any] = json.loads(text) if text else {"spans": [], "commands": []}
    data["returncode"] = proc.returncode
    data["stdout"] = (proc.stdout or b"").decode(errors="replace")
    return data


def _command_name(argv: list[str]) -> str:
    if argv[:2] == ["sh", "-c"] and len(argv) > 6:  # a two-step script: first step, then this
        first = "docker pull && " if argv[3] == "radops-run" else ""
        return first + "docker " + argv[6]
    words = [a for a in argv[1:3] if not a.startswith("-")]
    return "docker " + words[0] if words else " ".join(argv[:2])


def describe(data: Mapping[str, Any]) -> str:
    """One line: SSH connections and remote commands, then where the wall-clock time went."""
    spans = sorted(data.get("spans", []), key=lambda s: (s[1], -s[2]))
    commands = [_command_name(c) for c in data.get("commands", [])]
    top: list[tuple[str, float, float, list[str]]] = []
    remote_index = 0
    for label, start, end in spans:
        if top and start >= top[-1][1] and end <= top[-1][2]:
            top[-1][3].append(f"{label} {end - start:.3f} s")
            continue
        if label.startswith("remote") and remote_index < len(commands):
            label = f"{label} `{commands[remote_index]}`"
            remote_index += 1
        top.append((label, start, end, []))
    parts = [
        f"{label} {end - start:.3f} s" + (f" (in it: {', '.join(inner)})" if inner else "")
        for label, start, end, inner in top
    ]
    cli_start, end = float(data.get("cli_start", 0)), float(data.get("end", 0))
    other = end - cli_start - sum(e - s for _, s, e, _ in top)
    shared = int(data.get("shared", 0))
    ssh = (
        f"{data.get('connections', 0)} SSH connection(s) of its own, {len(commands)} remote "
        f"command(s){f' ({shared} through the shared connection)' if shared else ''}"
        + (f" ({', '.join(f'`{c}`' for c in commands)})" if commands else "")
        + "; "
        if data.get("connections") or commands
        else ""
    )
    return (
        f"{ssh}imports until the CLI is ready {cli_start:.3f} s, then "
        + ", ".join([*parts, f"other (argument parsing, lazy imports, output) {other:.3f} s"])
        + f"; {end:.3f} s in all"
    )


if __name__ == "__main__":
    main()
