"""Fixed cost: everyday local commands against the docker CLI doing the same work.

Each pair runs alternately in one run (`_timing.compare`); the goal is a difference of medians,
radops minus docker, of at most 0.15 s: what a user feels as "not slower than docker".

- `logs` of a finished one-line job: `radops executors logs local JOB` against
  `docker logs radops-JOB`;
- `jobs` with 10 jobs on the engine: `radops executors jobs local` against
  `docker ps -a --filter label=dev.radops.job-id` (both list every radops job on the engine);
- `stop` of a running job (a fresh job for every timed stop, started untimed):
  `radops executors stop local JOB` against `docker stop radops-JOB`;
- `run` of an unchanged folder: `radops executors run local CTX true -q` against
  `docker build -q -t TAG CTX && docker run -d TAG true`.

The docker CLI is `/usr/bin/docker` (the engine's own client). Every container made here
carries a `radops-bench-fixed` label with this run's nonce and is removed at the end, as are the
images tagged here. Also lists, with `-X importtime`, what `executors jobs local` imports.
"""

from __future__ import annotations

import os
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from _timing import Result, Row, Run, Stats, compare, fmt_seconds, run_once

DOCKER = "/usr/bin/docker"
GOAL_S = 0.15
JOBS = 10
BASE_IMAGE = "busybox:1.36"
BENCH_LABEL = "radops-bench-fixed"  # dev.radops.* labels are radops' own
# Exits at once on SIGTERM (a shell as PID 1 would ignore it and wait for the stop timeout).
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
IMPORT_RUNS = 3


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120, check=False)


class Local:
    """radops jobs on the local engine, labelled with this run's nonce, removed at the end."""

    def __init__(self, tmp: Path) -> None:
        self.nonce = secrets.token_hex(4)
        self.context = tmp / "radops-bench-fixed"
        self.context.mkdir()
        (self.context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY . /app/\n")
        (self.context / "train.py").write_text("print('hello')\n")
        self.env = dict(os.environ, RADOPS_CONFIG_DIR=str(tmp / "config"))
        self.label = f"{BENCH_LABEL}={self.nonce}"
        self.tag = f"radops-bench-fixed:{self.nonce}"

    def radops(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "radops", *args]

    def start(self, *command: str) -> str:
        """A radops job running `command` (untimed); its job id."""
        return subprocess.run(
            self.radops(
                "executors", "run", "local", str(self.context), "-q", "--label", self.label,
                "--", *command,
            ),
            env=self.env, capture_output=True, text=True, check=True, timeout=120,
        ).stdout.strip()  # fmt: skip

    def timed(self, argv: list[str]) -> Callable[[], Run]:
        return lambda: run_once(argv, env=self.env)

    def cleanup(self) -> None:
        ids = _docker("ps", "-aq", "--filter", f"label={self.label}").stdout.split()
        if ids:
            _docker("rm", "-f", *ids)
        images = {
            _docker("inspect", "--format", "{{.Config.Image}}", i).stdout.strip() for i in ids
        }
        for image in {self.tag, *images} - {"", BASE_IMAGE}:
            _docker("rmi", image)


CPU_NOTES: list[str] = []


def _row(what: str, ours: Stats, docker: Stats, baseline: str) -> Row:
    extra = ours.median - docker.median
    # CPU time does not grow with other load on the machine, as wall time does.
    CPU_NOTES.append(
        f"{what}: radops {ours.median_cpu * 1000:.0f} ms, {baseline} "
        f"{docker.median_cpu * 1000:.0f} ms"
    )
    return Row(
        benchmark=f"fixed cost: {what}",
        radops=ours.describe(),
        baseline=f"{baseline}: {docker.describe()}",
        ratio=f"+{extra:.3f} s",
        goal=f"≤ +{GOAL_S:g} s",
        met=extra <= GOAL_S,
    )


def _stop_pair(local: Local) -> tuple[Callable[[], Run], Callable[[], Run]]:
    """A fresh running job for every timed stop, started before the clock starts."""

    def ours() -> Run:
        job = local.start(*SLEEPER)
        return run_once(local.radops("executors", "stop", "local", job), env=local.env)

    def docker() -> Run:
        job = local.start(*SLEEPER)
        return run_once([DOCKER, "stop", f"radops-{job}"], env=local.env)

    return ours, docker


def import_profile(env: dict[str, str], args: list[str]) -> tuple[int, list[tuple[float, str]]]:
    """(modules imported, [(cumulative ms, name)] of the top-level imports), medians of runs."""
    samples: dict[str, list[int]] = defaultdict(list)
    counts = []
    for _ in range(IMPORT_RUNS):
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "radops", *args],
            env=env, capture_output=True, text=True, check=False, timeout=60,
        ).stderr  # fmt: skip
        lines = [ln for ln in stderr.splitlines() if ln.startswith("import time:")]
        counts.append(len(lines) - 1)
        for line in lines[1:]:
            _, cumulative, name = line[len("import time:") :].split("|")
            if name.startswith(" ") and not name.startswith("  "):  # depth 0
                samples[name.strip()].append(int(cumulative))
    top = sorted(((statistics.median(v) / 1000, n) for n, v in samples.items()), reverse=True)
    return int(statistics.median(counts)), top


def run(quick: bool) -> Result:
    runs = 5 if quick else 11
    result = Result("Fixed cost")
    CPU_NOTES.clear()
    if _docker("version").returncode != 0:
        result.rows.append(
            Row("fixed cost", "skipped: no Docker engine answers", "—", "—", "—", None)
        )
        return result
    with tempfile.TemporaryDirectory(prefix="radops-bench-") as tmp_name:
        local = Local(Path(tmp_name))
        try:
            one_line = local.start("echo", "hello")
            _docker("wait", f"radops-{one_line}")
            for _ in range(JOBS - 1):
                local.start("true")
            ours, docker = compare(
                local.timed(local.radops("executors", "logs", "local", one_line)),
                local.timed([DOCKER, "logs", f"radops-{one_line}"]),
                runs=runs,
            )
            result.rows.append(_row("`logs` of a one-line job", ours, docker, "docker logs"))
            ours, docker = compare(
                local.timed(local.radops("executors", "jobs", "local")),
                local.timed([DOCKER, "ps", "-a", "--filter", "label=dev.radops.job-id"]),
                runs=runs,
            )
            listed = len(_docker("ps", "-aq", "--filter", "label=dev.radops.job-id").stdout.split())
            result.rows.append(
                _row(f"`jobs local` ({listed} jobs on the engine)", ours, docker, "docker ps -a")
            )
            ours, docker = compare(*_stop_pair(local), runs=max(3, runs // 2))
            result.rows.append(_row("`stop` of a running job", ours, docker, "docker stop"))
            context = shlex.quote(str(local.context))
            baseline = (
                f"{DOCKER} build -q -t {local.tag} {context} >/dev/null && "
                f"{DOCKER} run -d --label {local.label} {local.tag} true"
            )
            ours, docker = compare(
                local.timed(
                    local.radops(
                        "executors",
                        "run",
                        "local",
                        str(local.context),
                        "true",
                        "-q",
                        "--label",
                        local.label,
                    )
                ),
                local.timed(["sh", "-c", baseline]),
                runs=runs,
            )
            result.rows.append(
                _row("`run` of an unchanged folder", ours, docker, "build -q && run -d")
            )
            count, top = import_profile(local.env, ["executors", "jobs", "local"])
        finally:
            local.cleanup()
    result.notes.append(
        f"- {runs} runs each (stop: {max(3, runs // 2)}), alternating, after one warm-up run "
        f"each; the goal is radops' median at most {fmt_seconds(GOAL_S)} above docker's. The "
        f"jobs listed are every radops job on this machine's engine ({JOBS} made here)."
    )
    result.notes.append(
        "- Median CPU time (user + system) of the client process, which other load on the "
        "machine does not inflate as it does wall time (the engine's work is in neither): "
        + "; ".join(CPU_NOTES)
        + "."
    )
    result.notes.append(
        f"- `radops executors jobs local` imports {count} modules; top-level imports by "
        f"cumulative time (median of {IMPORT_RUNS} `-X importtime` runs): "
        + ", ".join(f"`{n}` {ms:.1f} ms" for ms, n in top[:8])
        + ". No pydantic, docker-py, paramiko or Google client: "
        "`tests/cli/test_command_imports.py` checks that for `jobs`, `logs`, `inspect`, `stop` "
        "and `run` on `local`."
    )
    result.notes.append(BEFORE)
    return result


BEFORE = """\
- Before (revision 7792ce0, the same machine, idle, 2026-12-07): `executors jobs local` took
  0.20-0.21 s against `docker ps` 0.02 s; it imported 322 modules, the top-level imports by
  cumulative time: `typer._adapters` 58.9 ms (pydantic, for Typer's per-parameter
  `TypeAdapter`s), `radops.cli` 54.6 ms, `radops.executors.model` 16.1 ms, `radops.store`
  12.6 ms (the config's pydantic models), `pydantic.plugin._loader` 11.7 ms
  (importlib.metadata), `radops.api.session` 9.4 ms, `radops.images.engine` 8.1 ms. What
  changed: Typer builds its pydantic adapter only for a value that is not a plain string, list
  of strings, in-range int or Path (`radops/cli/coercion.py`), and a command on the built-in
  `local` executor does not parse the config file (local has no settings) or make its pydantic
  spec until asked. What remains is the interpreter (~10 ms), Typer with its vendored click
  (~35 ms), radops' command tree and the executor contract's dataclasses."""
