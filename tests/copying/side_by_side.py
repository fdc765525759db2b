"""`radops executors cp` beside the real `docker cp`, case by case, both ways: the same sources
and destinations prepared twice, each tool on its own copy, the whole folders compared after.

Shared by the local engine's tests (tests/copying/test_cp_local.py) and the SSH executor's
(tests/ssh/test_ssh_cp_safety.py). Where radops differs on purpose (a link at DEST is never
followed), the expected result is spelled out instead.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.copying.archives import tree

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[bytes]"]

# In the job: a file, a folder (with a link inside), a link to each.
JOB_FILES = (
    "mkdir -p /s/dir/sub && printf F > /s/file && printf A > /s/dir/a && printf B > /s/dir/sub/b"
    " && ln -s a /s/dir/rel && ln -s file /s/lfile && ln -s dir /s/ldir"
)
STATES = ("missing", "missing/", "dir", "file", "file/", "noparent/x")
# DEST a link: docker follows it (writing `victim`, or creating `nothing`); radops does not.
LINK_STATES = ("linkfile", "linkdir", "dangling")
FOLDER_SOURCES = ("/s/dir", "/s/dir/", "/s/dir/.", "/s/ldir/")
ERROR_SOURCES = ("/s/file/", "/s/missing")
# Each rule once: file, folder, `/.`, trailing slashes, links, each DEST state; `dir/` as DEST,
# failing sources and links at DEST for a few.
DOWN_CASES = (
    *((src, state) for src in ("/s/file", "/s/lfile", *FOLDER_SOURCES) for state in STATES),
    ("/s/file", "dir/"), ("/s/dir/.", "dir/"),
    *((src, "dir") for src in ERROR_SOURCES),
    *((src, state) for src in ("/s/file", "/s/lfile", "/s/dir") for state in LINK_STATES),
)  # fmt: skip
UP_SOURCES = ("file", "dir", "dir/", "dir/.", "lfile", "ldir/")
UP_CASES = (
    *((src, state) for src in UP_SOURCES for state in STATES),
    ("file", "dir/"), ("dir/.", "dir/"), ("file/", "dir"), ("missing", "dir"),
    *((src, state) for src in ("file", "dir") for state in ("linkfile", "linkdir")),
)  # fmt: skip
_LINKS = {"linkfile": "../victim", "linkdir": "../vdir", "dangling": "../nothing"}


@dataclass
class Sides:
    """One job, reachable both through radops and through the docker CLI of its engine."""

    radops: Run  # radops' CLI: the arguments after `radops`
    docker: Run  # the real docker CLI against the job's engine
    executor: str
    job: str

    @property
    def container(self) -> str:
        return f"radops-{self.job}"


def one_line_error(result: subprocess.CompletedProcess[Any]) -> bool:
    lines = result.stderr.decode().splitlines()
    return bool(lines) and lines[0].startswith("radops: error: ") and len(lines) <= 2


def _prepare(ws: Path, state: str) -> str:
    """A fresh folder `ws` with DEST's parent `d`, things beside it, and DEST in `state`;
    DEST as it is typed."""
    (ws / "d").mkdir(parents=True)
    (ws / "victim").write_text("victim")
    (ws / "vdir").mkdir()
    target = ws / "d" / "t"
    kind = state.rstrip("/")
    if kind == "dir":
        target.mkdir()
        (target / "keep").write_text("keep")
    elif kind == "file":
        target.write_text("old")
    elif kind in _LINKS:
        target.symlink_to(_LINKS[kind])
    if kind == "noparent/x":
        return str(ws / "d" / "np" / "x")
    return str(target) + ("/" if state.endswith("/") else "")


def compare_downloads(
    sides: Sides, base: Path, cases: Sequence[tuple[str, str]] = DOWN_CASES
) -> list[str]:
    """Each (source in the job, DEST state) with both tools; the cases that differ, described."""
    problems = []
    for i, (src, state) in enumerate(cases):
        case = f"cp JOB:{src} DEST({state})"
        mine, theirs = base / str(i) / "radops", base / str(i) / "docker"
        dest, docker_dest = _prepare(mine, state), _prepare(theirs, state)
        before = tree(mine)
        ours = sides.radops(["executors", "cp", sides.executor, f"{sides.job}:{src}", dest])
        if ours.returncode and not one_line_error(ours):
            problems.append(f"{case}: not a one-line error: {ours.stderr!r}")
        if ours.returncode and tree(mine) != before:
            problems.append(f"{case}: failed but changed things: {tree(mine)}")
        if state in LINK_STATES:
            problems += _check_link_dest(sides, case, src, state, ours, base / str(i))
            continue
        docker = sides.docker(["cp", f"{sides.container}:{src}", docker_dest])
        if (ours.returncode == 0) != (docker.returncode == 0):
            problems.append(f"{case}: radops {ours.stderr!r}, docker {docker.stderr!r}")
        elif tree(mine) != tree(theirs):
            problems.append(f"{case}: radops {tree(mine)} != docker {tree(theirs)}")
    return problems


def _check_link_dest(
    sides: Sides, case: str, src: str, state: str, ours: subprocess.CompletedProcess[Any], ws: Path
) -> list[str]:
    """radops' own rule for a link at DEST: a file or link replaces a link that does not point
    to a folder (as docker replaces a file: compared with docker on a file there); anything
    else is refused. The link is never followed."""
    mine = ws / "radops"
    beside = {k: v for k, v in tree(mine).items() if k.split("/")[0] != "d"}
    problems = []
    if beside != {"victim": "file:victim", "vdir": "dir"}:
        problems.append(f"{case}: wrote through the link: {beside}")
    if state != "linkdir" and src not in FOLDER_SOURCES and src not in ERROR_SOURCES:
        as_file = _prepare(ws / "docker-on-a-file", "file")
        docker = sides.docker(["cp", f"{sides.container}:{src}", as_file])
        expected = tree(ws / "docker-on-a-file")
        if docker.returncode != 0 or ours.returncode != 0 or tree(mine) != expected:
            problems.append(f"{case}: expected the link replaced like a file: {tree(mine)}")
    elif ours.returncode == 0:
        problems.append(f"{case}: expected a refusal, got {tree(mine)}")
    return problems


def compare_uploads(
    sides: Sides, local: Path, cases: Sequence[tuple[str, str]] = UP_CASES
) -> list[str]:
    """Each (local source, DEST state in the job) with both tools, into twin folders
    (/u/radops/N and /u/docker/N); the cases whose folders differ, described."""
    _local_sources(local)
    script = " && ".join(
        _container_state(f"/u/{side}/{i}", state)
        for side in ("radops", "docker")
        for i, (_, state) in enumerate(cases)
    )
    made = sides.docker(["exec", sides.container, "sh", "-c", script])
    assert made.returncode == 0, made.stderr
    problems = []
    results = []
    for i, (src, state) in enumerate(cases):
        dest = "t" + ("/" if state.endswith("/") else "")
        dest = "d/np/x" if state == "noparent/x" else f"d/{dest}"
        path = f"{local}/{src}"
        job_dest = f"{sides.job}:/u/radops/{i}/{dest}"
        ours = sides.radops(["executors", "cp", sides.executor, path, job_dest])
        docker = sides.docker(["cp", path, f"{sides.container}:/u/docker/{i}/{dest}"])
        results.append((f"cp {src} JOB:DEST({state})", ours, docker))
    ours_tree, docker_tree = _job_tree(sides, "/u/radops"), _job_tree(sides, "/u/docker")
    for i, (case, ours, docker) in enumerate(results):
        if (ours.returncode == 0) != (docker.returncode == 0):
            problems.append(f"{case}: radops {ours.stderr!r}, docker {docker.stderr!r}")
        elif ours.returncode and not one_line_error(ours):
            problems.append(f"{case}: not a one-line error: {ours.stderr!r}")
        mine, theirs = ours_tree.get(str(i)), docker_tree.get(str(i))
        if mine != theirs:
            problems.append(f"{case}: radops {mine} != docker {theirs}")
    return problems


def _local_sources(local: Path) -> None:
    (local / "dir" / "sub").mkdir(parents=True)
    (local / "file").write_text("F")
    (local / "dir" / "a").write_text("A")
    (local / "dir" / "sub" / "b").write_text("B")
    (local / "dir" / "rel").symlink_to("a")
    (local / "lfile").symlink_to("file")
    (local / "ldir").symlink_to("dir")


def _container_state(ws: str, state: str) -> str:
    q = shlex.quote
    target = f"{ws}/d/t"
    steps = [f"mkdir -p {q(ws)}/d {q(ws)}/vdir", f"echo victim > {q(ws)}/victim"]
    kind = state.rstrip("/")
    if kind == "dir":
        steps += [f"mkdir {q(target)}", f"echo keep > {q(target)}/keep"]
    elif kind == "file":
        steps.append(f"echo old > {q(target)}")
    elif kind in _LINKS:
        steps.append(f"ln -s {q(_LINKS[kind])} {q(target)}")
    return " && ".join(steps)


def _job_tree(sides: Sides, folder: str) -> dict[str, dict[str, str]]:
    """The job's `folder` as {case number: {path below it: dir, file:CONTENT, link:TARGET}}."""
    result = sides.docker(["cp", f"{sides.container}:{folder}", "-"])
    data = result.stdout
    cases: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            parts = member.name.rstrip("/").split("/")[1:]  # below the root folder
            if len(parts) < 2:
                continue
            if member.issym():
                value = f"link:{member.linkname}"
            elif member.isdir():
                value = "dir"
            else:
                f = tar.extractfile(member)
                value = f"file:{f.read().decode() if f else ''}"
            cases.setdefault(parts[0], {})["/".join(parts[1:])] = value
    return cases
