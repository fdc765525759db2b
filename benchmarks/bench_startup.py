"""Start-up: `radops executors --help` and `radops executors run --help` against a bare Typer app.

The bare app, `bare_app.py`, is written at the start of each run by `_bare_app.write_bare_app()`
from radops' own command tree: the same commands, parameters, help texts and epilogs, no logic,
and no import from radops. Both run the same way, `python -m MODULE ARGS` with this interpreter,
so the interpreter's own start-up is in both. Also checks with `-X importtime` that `--help`
imports none of docker, paramiko, google and pydantic, and lists what costs most.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from _bare_app import MODULE as BARE_APP
from _bare_app import write_bare_app
from _timing import Result, Row, compare, ratio_row, run_once

GOAL = 1.3
COMMANDS = (("executors", "--help"), ("executors", "run", "--help"))
FORBIDDEN = ("docker", "paramiko", "google", "pydantic")
IMPORT_RUNS = 3


def _env(bare_dir: Path) -> dict[str, str]:
    """The environment of both commands; `bare_dir`, which holds bare_app.py, first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(bare_dir), env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "100"  # the same help layout for both, terminal or not
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _argv(module: str, args: tuple[str, ...], *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", module, *args]


def _output(module: str, args: tuple[str, ...], cwd: Path) -> bytes:
    return subprocess.run(
        _argv(module, args), env=_env(cwd), cwd=cwd, capture_output=True, check=True, timeout=60
    ).stdout


def import_times(module: str, args: tuple[str, ...], cwd: Path) -> dict[str, tuple[int, int, int]]:
    """{module: (self µs, cumulative µs, depth)}: medians over IMPORT_RUNS `-X importtime` runs."""
    samples: dict[str, list[tuple[int, int]]] = defaultdict(list)
    depth: dict[str, int] = {}
    for _ in range(IMPORT_RUNS):
        stderr = subprocess.run(
            _argv(module, args, "-X", "importtime"),
            env=_env(cwd),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stderr
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = line[len("import time:") :].split("|")
            stripped = name.strip()
            # Each level of nesting indents the name by two more spaces after the first one.
            depth[stripped] = (len(name) - len(name.lstrip()) - 1) // 2
            samples[stripped].append((int(self_us), int(cumulative_us)))
    return {
        name: (
            int(statistics.median(s for s, _ in values)),
            int(statistics.median(c for _, c in values)),
            depth[name],
        )
        for name, values in samples.items()
    }


def _is_forbidden(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in FORBIDDEN)


def _params(command: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (
            p.name,
            tuple(p.opts),
            tuple(p.secondary_opts),
            p.required,
            p.multiple,
            p.nargs,
            p.param_type_name,
            getattr(p, "help", None),
        )
        for p in command.params
    )


def _tree(command: Any, path: str = "") -> dict[str, Any]:
    """{command path: (params, help, epilog)} for a click command and all its sub-commands."""
    tree = {path or "(root)": (_params(command), command.help, command.epilog)}
    for name, sub in getattr(command, "commands", {}).items():
        tree.update(_tree(sub, f"{path} {name}".strip()))
    return tree


def _load_bare_app(directory: Path) -> Any:
    """The bare app module written in `directory`, loaded from its file (not from sys.path)."""
    spec = importlib.util.spec_from_file_location(BARE_APP, directory / f"{BARE_APP}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_shape(bare_dir: Path | None = None) -> list[str]:
    """Differences between radops' command tree and the bare app's; empty when they match.

    The bare app is the one written in `bare_dir`, or a fresh one when none is given. It is
    generated from radops' tree, so a difference means the generator missed something.
    """
    import typer

    from radops.cli import app as radops_app

    if bare_dir is None:
        with tempfile.TemporaryDirectory(prefix="radops-bench-") as tmp:
            write_bare_app(Path(tmp))
            bare_app = _load_bare_app(Path(tmp))
    else:
        bare_app = _load_bare_app(bare_dir)
    ours = _tree(typer.main.get_command(radops_app))
    bare = _tree(typer.main.get_command(bare_app.app))
    problems = [f"`{p}` only in radops" for p in sorted(ours.keys() - bare.keys())]
    problems += [f"`{p}` only in bare_app" for p in sorted(bare.keys() - ours.keys())]
    for path in sorted(ours.keys() & bare.keys()):
        for part, a, b in zip(
            ("parameters", "help", "epilog"), ours[path], bare[path], strict=True
        ):
            if a != b:
                problems.append(f"`{path}`: {part} differ")
    return problems


def run(quick: bool) -> Result:
    runs = 5 if quick else 15
    result = Result("Start-up")
    with tempfile.TemporaryDirectory(prefix="radops-bench-") as tmp:
        cwd = Path(tmp)
        write_bare_app(cwd)  # bare_app.py from radops' command tree, as it is now
        problems = check_shape(cwd)
        env = _env(cwd)
        for args in COMMANDS:
            label = "radops " + " ".join(args)

            def timed(module: str, args: tuple[str, ...] = args) -> Any:
                return lambda: run_once(_argv(module, args), env=env, cwd=cwd)

            ours, bare = compare(timed("radops"), timed(BARE_APP), runs=runs)
            result.rows.append(
                ratio_row(f"start-up: `{label}`", ours, bare, GOAL, baseline_name="bare Typer")
            )
            same = _output("radops", args, cwd) == _output(BARE_APP, args, cwd)
            result.notes.append(
                f"- `{label}`: {runs} runs each, alternating; help text "
                + ("identical to the bare app's." if same else "**differs** from the bare app's.")
            )

        forbidden_found: set[str] = set()
        for args in COMMANDS:
            label = "radops " + " ".join(args)
            ours_imports = import_times("radops", args, cwd)
            bare_imports = import_times(BARE_APP, args, cwd)
            forbidden_found |= {n.split(".")[0] for n in ours_imports if _is_forbidden(n)}
            top = sorted(
                ((c, n) for n, (_, c, d) in ours_imports.items() if d == 0),
                reverse=True,
            )[:5]
            extra = {n: v for n, v in ours_imports.items() if n not in bare_imports}
            extra_self_ms = sum(s for s, _, _ in extra.values()) / 1000
            extra_top = sorted(((s, n) for n, (s, _, _) in extra.items()), reverse=True)[:5]
            result.notes.append(
                f"- `{label}` imports {len(ours_imports)} modules (bare app: "
                f"{len(bare_imports)}). Top 5 top-level imports by cumulative time (median of "
                f"{IMPORT_RUNS} `-X importtime` runs): "
                + ", ".join(f"`{n}` {c / 1000:.1f} ms" for c, n in top)
                + f". Only in radops: {len(extra)} modules, {extra_self_ms:.1f} ms self time"
                + (
                    " (most: " + ", ".join(f"`{n}` {s / 1000:.1f} ms" for s, n in extra_top) + ")."
                    if extra_top
                    else "."
                )
            )
    result.rows.append(
        Row(
            benchmark="`--help` imports docker / paramiko / google / pydantic",
            radops=", ".join(sorted(forbidden_found)) or "none of them",
            baseline="—",
            ratio="—",
            goal="none",
            met=not forbidden_found,
        )
    )
    result.notes.append(
        "- The bare app is generated from radops' command tree (`benchmarks/_bare_app.py`): same "
        "commands, parameters, help texts and epilogs, no logic, no import from radops."
        if not problems
        else "- **The generated bare app differs from radops' command tree** (fix "
        "`benchmarks/_bare_app.py`): " + "; ".join(problems)
    )
    return result
