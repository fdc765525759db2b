#!/usr/bin/env python3
"""Regenerate the docs' example output from real runs, so it cannot drift from what radops
prints.

A ```console block right after a line `<!-- example: run -->` is an example this script owns:
each `$ COMMAND` line in it is run (bash, `radops` being this checkout's), in order, in a fresh
home `/tmp/docs-home` (HOME, XDG_CONFIG_HOME, no config file at the start of each block; no
RADOPS_* variable) whose folder `radops/` holds a copy of `demos/` and the example folders
below, and the block becomes the commands with what
they printed (stdout and stderr as a terminal-less run shows them). A job id an earlier command
printed (`Started job ID`) replaces the old id in the commands after it.

`<!-- example: run engine -->` marks one that needs the local Docker engine (it builds and runs
jobs); without `engine`, one that needs nothing (config commands): `--check` (the fast tests run
it) fails when such a block differs from a real run, since its output does not change between
runs. Engine runs print new ids and hashes each time: regenerate them, review the diff, commit.

    scripts/docs_examples.py              # rewrite every marked block
    scripts/docs_examples.py --no-engine  # rewrite the engine-free ones only
    scripts/docs_examples.py --check      # engine-free ones only; exit 1 and a diff if stale
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = Path("/tmp/docs-home")
MARK = re.compile(r"^<!-- example: run( engine)? -->$")
STARTED = re.compile(r"Started job ([0-9a-f]{12})")

# Example folders the docs use, beside demos/ (name: files).
FOLDERS = {
    "broken": {"Dockerfile": "FROM busybox:1.36\nRUN echo compiling && exit 2\n"},
    "nobase": {"Dockerfile": "FROM python:3.12-slim\nCOPY x.py /app/x.py\n", "x.py": "1\n"},
}


def fresh_home() -> dict[str, str]:
    """The home the examples run in, made anew; the environment they run with."""
    shutil.rmtree(HOME, ignore_errors=True)
    work = HOME / "radops"
    shutil.copytree(ROOT / "demos", work / "demos")
    for name, files in FOLDERS.items():
        (work / name).mkdir(parents=True)
        for file, text in files.items():
            (work / name / file).write_text(text)
    bin_dir = HOME / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "radops"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m radops "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADOPS_", "XDG_"))}
    env.update(
        HOME=str(HOME),
        XDG_CONFIG_HOME=str(HOME / ".config"),
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT / "src"),
        COLUMNS="100",
    )
    return env


def run_block(lines: list[str], env: dict[str, str]) -> list[str]:
    """The block's commands run in order: the new block's lines."""
    out: list[str] = []
    renamed: dict[str, str] = {}
    old_ids = iter(STARTED.findall("\n".join(lines)))
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    for i, command in enumerate(commands):
        for old, new in renamed.items():
            command = command.replace(old, new)
        result = subprocess.run(
            ["bash", "-c", command],
            env=env,
            cwd=HOME / "radops",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
        printed = result.stdout.rstrip("\n").splitlines()
        for new in STARTED.findall(result.stdout):
            old = next(old_ids, None)
            if old is not None:
                renamed[old] = new
        out.append(f"$ {command}")
        out.extend(printed)
        if len(printed) > 2 and i < len(commands) - 1:
            out.append("")  # a long answer, then a blank line before the next command
    return out


def regenerate(path: Path, with_engine: bool, env: dict[str, str]) -> tuple[str, str]:
    """(the file's text, the text with its marked blocks regenerated)."""
    text = path.read_text()
    lines = text.split("\n")
    new: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        new.append(line)
        mark = MARK.match(line)
        if mark and i + 1 < len(lines) and lines[i + 1] == "```console":
            end = lines.index("```", i + 2)
            block = lines[i + 2 : end]
            if mark[1] and with_engine:
                forget_images()  # each example starts as a new user would
            if bool(mark[1]) <= with_engine:
                shutil.rmtree(HOME / ".config", ignore_errors=True)  # each starts with none
                block = run_block(block, env)
            new.extend(["```console", *block, "```"])
            i = end + 1
            continue
        i += 1
    return text, "\n".join(new)


def forget_images() -> None:
    """Untag the example folders' images, so that the first run of each shows its build
    (forced: an ended job's container keeps its image by id; the tag goes)."""
    for repository in ("radops/remote-execution", *(f"radops/{name}" for name in FOLDERS)):
        listed = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        for ref in listed.stdout.split():
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="engine-free blocks: fail if stale")
    parser.add_argument("--no-engine", action="store_true", help="engine-free blocks only")
    args = parser.parse_args()
    # The home's path shows in the examples, so it is fixed: one run at a time on this machine
    # (two test sessions, or the fast tier's workers, would otherwise remake it under each other).
    with open("/tmp/docs-home.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return run(args)


def run(args: argparse.Namespace) -> int:
    env = fresh_home()
    stale = 0
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        old, new = regenerate(path, with_engine=not (args.check or args.no_engine), env=env)
        if old == new:
            continue
        if args.check:
            stale += 1
            name = str(path.relative_to(ROOT))
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), name, f"{name} (a real run)"
                )
            )
        else:
            path.write_text(new)
            print(f"regenerated {path.relative_to(ROOT)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
