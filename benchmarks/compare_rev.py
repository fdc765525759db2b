"""Is a change slower? Time radops at two git revisions against each other, in the same run.

    python benchmarks/compare_rev.py OLD            # OLD against this working tree
    python benchmarks/compare_rev.py OLD NEW --runs 15

Each revision is checked out into a temporary git worktree and run with this interpreter and
its installed dependencies (PYTHONPATH picks the revision's `src/`). The two sides alternate
run by run (as every benchmark here does), so drift in the machine's speed falls on both; what
is printed is each side's median and the ratio NEW/OLD. Cases: `--help`, an unchanged local
re-submit, and on the test rig's SSH host (tests/rig.py) an unchanged re-submit through the
registry, a one-line `logs` and `jobs`. Each side has its own shared-connection folder, so one
side's background connection never serves the other's commands.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import _remote
from _remote import EXECUTOR, end_shared_connections
from _timing import Run, compare, run_once

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = "FROM busybox:1.36\nCOPY a.txt /a.txt\n"


@contextlib.contextmanager
def checkout(rev: str | None) -> Iterator[Path]:
    """`src/` of `rev` in a temporary worktree (None: this working tree's)."""
    if rev is None:
        yield REPO / "src"
        return
    with tempfile.TemporaryDirectory(prefix="radops-rev-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(REPO)]
        subprocess.run([*git, "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        try:
            yield tree / "src"
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False,
                           capture_output=True, timeout=120)  # fmt: skip


def _side(src: Path, env: dict[str, str], runtime: Path) -> Callable[..., Callable[[], Run]]:
    """A maker of timed `radops ARGS` runs of one revision."""
    side_env = {**env, "PYTHONPATH": str(src), "XDG_RUNTIME_DIR": str(runtime)}

    def timed(*args: str) -> Callable[[], Run]:
        return lambda: run_once([sys.executable, "-m", "radops", *args], env=side_env)

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("new", nargs="?", help="the later revision [default: this working tree]")
    parser.add_argument("--runs", type=int, default=15, help="runs per side and case")
    options = parser.parse_args()
    try:
        _compare(options.old, options.new, options.runs)
    finally:
        _remote.close()


def _remove_local_jobs(image_prefix: str) -> None:
    """The local jobs the local re-submits left (their containers; the image stays cached)."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=dev.radops.image", "--format",
         "{{.ID}} {{.Image}}"],
        capture_output=True, text=True, check=False, timeout=60,
    ).stdout.split("\n")  # fmt: skip
    ids = [line.split()[0] for line in listed if line.split()[1:2] and
           line.split()[1].startswith(image_prefix)]  # fmt: skip
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False, timeout=120)


def _compare(old_rev: str, new_rev: str | None, runs: int) -> None:
    remote = _remote.get()
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_local_jobs, "radops/cmpjob:")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="radops-cmp-")))
        context = tmp / "cmpjob"
        context.mkdir()
        (context / "Dockerfile").write_text(DOCKERFILE)
        (context / "a.txt").write_text("compare\n")
        sides = []
        for rev in (old_rev, new_rev):
            runtime = Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/tmp")))
            stack.callback(end_shared_connections, runtime)
            sides.append(_side(stack.enter_context(checkout(rev)), remote.env, runtime))
        old, new = sides
        job = subprocess.run(
            [sys.executable, "-m", "radops", "executors", "run", EXECUTOR, str(context), "-q",
             "--", "echo", "one line"],
            env=remote.env, capture_output=True, text=True, check=True, timeout=300,
        ).stdout.strip()  # fmt: skip
        cases = {
            "`executors --help`": ("executors", "--help"),
            "local re-submit, unchanged": ("executors", "run", "local", str(context), "-q", "true"),
            "SSH re-submit, unchanged (registry)": (
                "executors", "run", EXECUTOR, str(context), "-q", "true",
            ),
            "SSH `logs`, 1 line": ("executors", "logs", EXECUTOR, job),
            "SSH `jobs`": ("executors", "jobs", EXECUTOR),
        }  # fmt: skip
        print(f"| case | {new_rev or 'working tree'} | {old_rev} | ratio |")
        print("| --- | --- | --- | --- |")
        for label, args in cases.items():
            ours, theirs = compare(new(*args), old(*args), runs=runs, warmup=2)
            ratio = ours.median / theirs.median
            print(f"| {label} | {ours.describe()} | {theirs.describe()} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
