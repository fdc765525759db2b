"""Run every benchmark and write docs/performance.md.

    python benchmarks/run.py            # full: about 8 minutes on 2 cores
    python benchmarks/run.py --quick    # fewer repetitions
    python benchmarks/run.py --only logs --output /tmp/perf.md

Each benchmark is a module `bench_<name>.py` here with `run(quick: bool) -> Result`; add one to
BENCHMARKS to add it to the suite. Every figure is a ratio against a baseline measured in the
same run, never an absolute threshold.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from _timing import Result, Row

ROOT = Path(__file__).resolve().parent.parent
# Modules bench_<name>.py, in the order they run and print. The remote ones share one test rig
# (_remote.py: a second Docker engine behind a loopback sshd, and a registry), started on first
# use and stopped when the suite ends.
BENCHMARKS = ("startup", "fixed", "logs", "build", "remote_submit", "ship", "remote_logs", "scale")

WHY_FAST = """\
## Why radops is fast

- **Lazy imports, and only the imports needed.** At start-up the command tree (`radops.cli`)
  imports Typer (with its vendored click) and a few small radops modules. Typer converts each
  parameter's value with a pydantic adapter; radops has it build one only for a value that is
  not already what the parameter takes (`radops/cli/coercion.py`), and a command on the
  built-in `local` executor parses no config file and makes no pydantic spec, so a local
  `jobs`, `logs`, `stop` or unchanged `run` loads no pydantic at all. A command on a
  registered executor reads the config file with plain checks that accept only what the
  models accept unchanged (`radops/plainconfig.py`; anything else is read by the models, with
  their errors), so an SSH, GCP or Slurm `run`, `logs`, `jobs` or `stop` loads no pydantic
  either: ~0.08 s less (`tests/cli/test_command_imports.py` checks both). docker (with
  requests and urllib3), paramiko and google-cloud-compute are imported inside the functions
  that need them, so `--help`, `executors list` or a usage error never pay for them; the
  start-up benchmark checks this with `-X importtime` on every run. docker-py's optional
  ssh:// transport (paramiko) is refused unless DOCKER_HOST is ssh://, paramiko loads without
  invoke unless `~/.ssh/config` has a `Match exec`, and pydantic's plugin scan is skipped for
  radops' own models. A local `run` of an image the engine has makes its three Engine API
  calls (image check, container create, start) with the standard library's http.client over
  the engine's unix socket: no docker-py at all.
- **Only the command being run is built.** Typer turns the command tree into click commands
  on every run; radops hands it only the branch the arguments name (the whole tree for
  `--help`, a typo's suggestions and completion).
- **No teardown.** The `radops` command flushes its output and leaves with `os._exit`: freeing
  ~500 modules one by one at exit cost about 45 ms of every command.
- **Content-hash image tags.** `run` tags the image `radops/<folder>:<sha256 of the build context>`
  (honouring `.dockerignore`). If the engine already has that tag, nothing is built: re-running
  an unchanged folder costs one hash of the folder and one `inspect` call.
- **One SSH connection, shared between commands.** Every step of an SSH executor's command
  (run, ship, pull, logs) goes through one paramiko connection, opened on first use and
  reused. When a command has connected itself, it leaves a background process holding that
  connection (like OpenSSH's ControlPersist; `ssh_persist`, 300 s idle by default), and the
  next commands to that host send their remote command through it over a private unix
  socket: no paramiko import and no key exchange. The submit benchmark traces this
  (connections and remote commands per radops command).
- **One round trip to re-submit.** Because the tag is a content hash, a remote engine that has
  the tag has this exact image. So `run` on an SSH executor first sends
  `docker run --pull never ...` and ships the image (build if missing, push and remote pull,
  or `docker save | docker load` over the same connection) only when the engine answers
  "No such image": re-submitting an unchanged folder is one SSH connection and one remote
  command, with no build, push or pull. With `--transfer ssh`, that same command also lists
  the remote's layers when the image is missing, which the partial transfer needs next.
- **Skip what the remote has.** `--transfer ssh` streams the local `docker save` through a
  filter that drops the layers the remote has (by name in the OCI layout; in the classic
  layout by the folders' parent chain, else by hashing), so a code change sends kilobytes;
  `--build remote` sends only what changed in the build context (the executor keeps the
  folder's last contexts, compared by the content hashes radops computes for the tag).
- **Export nothing twice.** With no registry configured, radops pushes into a registry of its
  own on this machine's loopback, whose storage outlives the command: the engine remembers
  which layers it pushed there, so after a code change it exports and compresses only the new
  layer, and the remote pulls only the blobs it lacks through an SSH remote forward.
- **Streaming logs.** `logs` reads Docker's multiplexed log stream straight from the engine
  (on a unix socket over HTTP/1.0, so the stream is not cut into one HTTP chunk per line),
  in reads of up to 64 KiB, splits the 8-byte frame headers itself, joins consecutive payloads
  of the same stream within one read, and writes the raw bytes to stdout or stderr: no
  decoding, no line splitting, no rich markup, and memory that does not grow with the size of
  the log (compare the peak RSS of the 1-line and 300,000-line jobs above).

## Finding the cause of a miss

```sh
python -m cProfile -s tottime -m radops executors logs local JOB > /dev/null
python -X importtime -m radops executors logs local JOB 2>&1 >/dev/null | sort -t'|' -k2 -n
# SSH connections, remote commands and where the time went (as in the notes above), on stderr:
python benchmarks/_trace.py /tmp/trace.json executors run gpu1 ./folder true -q
```
"""


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine(load: str) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        docker = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        docker = ""
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs (`nproc`: {len(os.sched_getaffinity(0))})",
        f"- OS: {platform.platform()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
        f"- Docker server: {docker or 'not reachable'}",
        f"- Load average when the run started: {load}",
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| Benchmark | radops median (min-max) | Baseline median (min-max) | Ratio | Goal | Met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        cells = (r.benchmark, r.radops, r.baseline, r.ratio, r.goal, met)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def render(results: list[Result], quick: bool, started: datetime, seconds: float, load: str) -> str:
    rows = [row for result in results for row in result.rows]
    missed = [r.benchmark for r in rows if r.met is False]
    out = [
        "# Performance",
        "",
        "<!-- Generated by benchmarks/run.py; edit that, not this file. -->",
        "",
        "Every timed figure is a ratio of medians against a baseline measured in the same run,",
        "alternating the two commands so that machine noise falls on both. Times are wall-clock,",
        "in seconds, for the whole process (interpreter start-up included).",
        "",
        "## Figures",
        "",
        *table(rows),
        "",
        (
            "All goals met."
            if not missed
            else f"Goals missed: {', '.join(missed)}. See the notes below for the causes."
        ),
        "",
        "## Machine",
        "",
        *machine(load),
        f"- Run: {started:%Y-%m-%d %H:%M} UTC, {'quick' if quick else 'full'}, "
        f"took {seconds:.0f} s",
        "",
        "## Reproduce",
        "",
        "```sh",
        "python benchmarks/run.py          # writes docs/performance.md; --quick for fewer runs",
        "```",
        "",
        "It needs radops installed in that Python (`pip install -e .`), a Docker engine that",
        "answers and the image `busybox:1.36`; the remote benchmarks also need root and the",
        "test rig's tools (`scripts/bootstrap.sh`: openssh-server, docker-registry), and are",
        f"skipped with the reason in the table otherwise. This run: `{_this_command()}`.",
        "",
        "To check a change for a regression, time it against an earlier revision in one run:",
        "`python benchmarks/compare_rev.py OLD [NEW]` (each side's median and the ratio NEW/OLD",
        "for start-up, local and SSH re-submit, SSH `logs` and `jobs`). Its last output is kept",
        f"in the section `{KEPT_SECTION}` below, which this script carries over.",
        "",
        "What is timed (radops and its baseline run the same way: `python -m MODULE` with the",
        "same interpreter):",
        "",
        "- Start-up: `python -m radops executors --help` and `python -m radops executors run "
        "--help`",
        "  against `python -m bare_app ...`, where `bare_app.py` is a Typer app that",
        "  `benchmarks/_bare_app.py` writes from radops' command tree at the start of the run: the",
        "  same commands, parameters, help texts and epilogs, no logic and no import from radops.",
        "- Fixed cost: `logs`, `jobs`, `stop` and an unchanged `run` on `local` against the",
        "  docker CLI (`/usr/bin/docker`) doing the same work; the goal is a difference of",
        "  medians (see `benchmarks/bench_fixed.py`).",
        "- Logs: a local job runs `awk` printing 300,000 63-byte lines and exits; then",
        "  `python -m radops executors logs local JOB > file` against",
        "  `docker logs radops-JOB > file`. Peak memory is the child's own max RSS (`wait4`).",
        "- Remote (the test rig, `tests/rig.py`: a second Docker engine reachable only through a",
        "  real sshd on a loopback port, and a real registry; registered as executor `bench` in an",
        "  isolated config folder and HOME, with radops' default shared SSH connection",
        "  (`ssh_persist` 300 s: each benchmark's warm-up run starts it, so timed runs reuse it;",
        "  the re-submit is also timed without it); the baselines use OpenSSH with the same key,",
        "  each `ssh` making its own connection, as a script does):",
        "  - re-submit of an unchanged folder: `radops executors run bench CTX true -q` (registry",
        "    transport) against `docker build -q -t REG/x:tag CTX && docker push REG/x:tag &&",
        "    ssh host 'docker pull REG/x:tag && docker run -d REG/x:tag true'`;",
        "  - first submit (a new nonce file in each side's folder before every run): the same",
        "    pair, and `--transfer ssh` against `docker build -q -t IMG CTX && docker save IMG |",
        "    ssh host docker load && ssh host docker run -d IMG true`;",
        "  - logs of the 300,000-line job: `radops executors logs bench JOB > file` against",
        "    `ssh host docker logs radops-JOB > file`.",
        "- Local submit: `radops executors run local CTX true -q` against `docker build -q -t X",
        "  CTX && docker run -d X true`, unchanged and after a one-file change.",
        "- Scale: `radops executors jobs local` with 1,000 jobs on the rig's engine against",
        "  `docker ps -a --filter label=dev.radops.job-id`; `radops executors list` with 1,000",
        "  executors against `radops --version`; one submit to 8 executors at once",
        "  (`for e in ...; do radops executors run $e ... -q & done; wait`) against the same loop",
        "  without `&`.",
        "- The notes quote a traced radops run (`benchmarks/_trace.py`): SSH connections, remote",
        "  commands, and the wall-clock time of its main steps.",
        "",
    ]
    for result in results:
        if result.notes:
            out += [f"## Notes: {result.title}", "", *result.notes, ""]
    out.append(WHY_FAST)
    return "\n".join(out)


KEPT_SECTION = "## Against an earlier revision"


def kept_section(path: Path) -> str:
    """The hand-kept `compare_rev.py` section of the previous file, to carry over ('' if none)."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    # The heading at the start of a line, not its name quoted in the text above it.
    start = text.find(f"\n{KEPT_SECTION}\n")
    if start == -1:
        return ""
    start += 1
    end = text.find("\n## ", start + len(KEPT_SECTION))
    return text[start:] if end == -1 else text[start : end + 1]


def _this_command() -> str:
    return shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "performance.md", help="Markdown to write"
    )
    args = parser.parse_args()
    started = datetime.now(timezone.utc)
    load = load_average()  # before the benchmarks load the machine themselves
    t0 = time.perf_counter()
    results = []
    try:
        for name in args.only or BENCHMARKS:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            module = importlib.import_module(f"bench_{name}")
            result: Result = module.run(args.quick)
            results.append(result)
            for line in table(result.rows)[2:]:
                print(line, flush=True)
    finally:
        if "_remote" in sys.modules:  # a remote benchmark started the rig: stop it
            sys.modules["_remote"].close()
    text = render(results, args.quick, started, time.perf_counter() - t0, load)
    kept = kept_section(args.output)
    if kept:
        text = text.rstrip("\n") + "\n\n" + kept.rstrip("\n") + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"[bench] wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
