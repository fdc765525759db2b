"""Builds at real size: a 300 MB / 5,000-file context on the local engine.

The context: `data/` (5,000 files of 60 KB of random bytes, 300 MB) and `src/train.py`, with two
Dockerfiles: `Dockerfile` (`COPY . /app/`, the simplest and most common) and `split.Dockerfile`
(`COPY data/ ...` then `COPY src/ ...`, the layout that keeps data in its own layer). Each side
has its own copy of the folder. "BuildKit" below is the client radops itself finds here
(`radops.images.builder.find_builder`), so the baseline gets BuildKit's incremental context
transfer too.

- Unchanged re-submit (image built): `radops executors run local CTX true -q` (the stat cache
  answers for the 5,000 files; one `inspect`; create and start) against `docker build -q CTX`
  with the first `docker` on PATH, as a user types it (goal <= 0.3x), and, as a report,
  against BuildKit's `build -q`.
- One file changed (`src/train.py` gets a new line, untimed, before every run of either side):
  radops against BuildKit `build -q -t X CTX && docker run -d X true`, with `Dockerfile` (goal
  <= 1.0x) and, as a report, with `split.Dockerfile`.

Every container and image made here is removed at the end.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from _timing import Result, Row, Run, Stats, compare, ratio_row, run_once

FILES = 5_000
FILE_BYTES = 60_000  # 5,000 x 60 KB = 300 MB
UNCHANGED_GOAL = 0.3
CHANGED_GOAL = 1.0
BASE_IMAGE = "busybox:1.36"
DOCKERFILE = f"FROM {BASE_IMAGE}\nCOPY . /app/\n"
SPLIT_DOCKERFILE = f"FROM {BASE_IMAGE}\nCOPY data/ /app/data/\nCOPY src/ /app/src/\n"


def _make_context(folder: Path) -> None:
    data = folder / "data"
    for i in range(FILES):
        shard = data / f"shard-{i // 500:02d}"
        shard.mkdir(parents=True, exist_ok=True)
        (shard / f"sample-{i:05d}.bin").write_bytes(os.urandom(FILE_BYTES))
    (folder / "src").mkdir()
    (folder / "src" / "train.py").write_text("print('training')\n")
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "split.Dockerfile").write_text(SPLIT_DOCKERFILE)


def _edit(folder: Path) -> Callable[[], None]:
    def write() -> None:
        with (folder / "src" / "train.py").open("a") as f:
            f.write(f"# edit {uuid.uuid4().hex}\n")

    return write


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)


class _Sides:
    """The commands timed, and everything they make (removed by `cleanup`)."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.env = dict(os.environ, RADOPS_CONFIG_DIR=str(root / "config"))
        self.env.pop("DOCKER_HOST", None)
        self.prefix = prefix
        self.out = root / "out.txt"
        self.containers: list[str] = []
        self.images: set[str] = set()  # the baseline's builds, untagged by its next build

    def radops(self, ctx: Path, *options: str, edit: bool = False) -> Callable[[], Run]:
        argv = [sys.executable, "-m", "radops", "executors", "run", "local", str(ctx)]

        def go() -> Run:
            if edit:
                _edit(ctx)()
            with self.out.open("wb") as stdout:
                r = run_once([*argv, *options, "-q", "--", "true"], stdout=stdout, env=self.env)
            self.containers.append("radops-" + self.out.read_text().strip())
            return r

        return go

    def shell(self, script: str, edit: Path | None = None, tag: str = "") -> Callable[[], Run]:
        def go() -> Run:
            if edit is not None:
                _edit(edit)()
            with self.out.open("wb") as stdout:
                r = run_once(["sh", "-c", script], stdout=stdout, env=self.env)
            for word in self.out.read_text().split():
                if word.startswith("sha256:"):  # build -q: the image id
                    self.images.add(word)
                elif len(word) == 64:  # run -d: a container id
                    self.containers.append(word)
            if tag:
                built = _docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
                self.images.add(built)
            return r

        return go

    def cleanup(self) -> None:
        for i in range(0, len(self.containers), 100):
            _docker("rm", "-f", *self.containers[i : i + 100])
        listed = _docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        stale = [ref for ref in listed if self.prefix in ref]
        for batch in (stale, sorted(self.images - {""})):
            if batch:
                _docker("rmi", *batch)


def run(quick: bool) -> Result:
    from radops.images.builder import find_builder

    result = Result(title="Builds at real size")
    builder = find_builder()
    if not builder.buildkit:
        result.notes.append(f"- Builds: skipped, no BuildKit here ({builder.why}).")
        return result
    buildkit = " ".join(
        [*(f"{k}={v}" for k, v in builder.environment().items()), shlex.join(builder.command())]
    )
    prefix = f"radops-bench-build-{secrets.token_hex(3)}"
    runs = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="radops-bench-build-") as tmp:
        root = Path(tmp)
        ours_ctx, base_ctx = root / f"{prefix}-ours", root / f"{prefix}-base"
        _make_context(ours_ctx)
        subprocess.run(["cp", "-a", str(ours_ctx), str(base_ctx)], check=True)
        sides = _Sides(root, prefix)
        base = shlex.quote(str(base_ctx))
        try:
            plain = sides.shell(f"docker build -q {base}")
            ours, theirs = compare(sides.radops(ours_ctx), plain, runs=runs)
            label = "build: re-submit, 300 MB / 5,000 files unchanged"
            result.rows.append(ratio_row(label, ours, theirs, UNCHANGED_GOAL, "docker build -q"))
            ours, theirs = compare(
                sides.radops(ours_ctx), sides.shell(f"{buildkit} -q {base}"), runs=runs
            )
            result.rows.append(_report(label, ours, theirs, "BuildKit build -q"))
            for dockerfile, goal in (("Dockerfile", CHANGED_GOAL), ("split.Dockerfile", None)):
                tag = f"{prefix}-careful-{dockerfile.lower().replace('.', '-')}:latest"
                script = (
                    f"{buildkit} -q -f {base}/{dockerfile} -t {tag} {base} >/dev/null && "
                    f"docker run -d {tag} true"
                )
                ours, theirs = compare(
                    sides.radops(ours_ctx, "--file", dockerfile, edit=True),
                    sides.shell(script, edit=base_ctx, tag=tag),
                    runs=runs,
                )
                label = f"build: one file changed, 300 MB context, {dockerfile}"
                name = "BuildKit build && run -d"
                result.rows.append(
                    ratio_row(label, ours, theirs, goal, name)
                    if goal is not None
                    else _report(label, ours, theirs, name)
                )
        finally:
            sides.cleanup()
    result.notes.append(
        f"- Builds: {runs} runs each, alternating, after one warm-up each; BuildKit is "
        f"`{buildkit}`; `docker build -q` is the first docker on PATH "
        f"({_first_docker()}). The one-file change appends a line to `src/train.py`. With "
        "`Dockerfile` (`COPY . /app/`) both sides copy the 300 MB into a new layer; with "
        "`split.Dockerfile` only the small last layer is rebuilt, so what is left is radops' "
        "fixed cost: Python, Typer and docker-py start-up (see the local submit rows), the "
        "stat of 5,000 files before the build and again after it, before tagging."
    )
    if any(row.met is False for row in result.rows):
        result.notes.append(BUILD_MISS)
    return result


BUILD_MISS = """\
- Why a build row misses its goal: after a one-file change both sides do the same BuildKit build
  (the same client, the same incremental context transfer, the same 300 MB `COPY` into a new
  layer), so the difference is radops' fixed cost around it: the interpreter, Typer (which
  builds a pydantic adapter per parameter, about 0.15 s) and docker-py (0.2 s), the stat of the
  5,000 files before the build (about 0.1 s, the stat cache answering) and again after it
  (about 0.06 s: the check that lets the tag be trusted), then create and start through the
  API; against `docker build` and `docker run -d`, Go binaries that start in milliseconds. The
  split-layout row shows that fixed cost alone. Closing it would need radops to stop paying
  Python start-up per command (a resident process) or to drop the after-build check, which is
  what keeps a tag from naming other content."""


def _report(label: str, ours: Stats, theirs: Stats, baseline: str) -> Row:
    row = ratio_row(label, ours, theirs, 1.0, baseline)
    row.goal, row.met = "— (report)", None
    return row


def _first_docker() -> str:
    version = subprocess.run(["docker", "--version"], capture_output=True, text=True).stdout
    return version.strip() or "none"
