"""`logs` and lines of 16 KiB or more, with bytes that are not UTF-8, on real jobs: locally and
over SSH, on Docker 20.10 (this machine's engine and the rig's) and on Docker 26 (Debian 13's,
the containerd-store engine of tests/containerd_engine.py).

The engine splits a line of 16 KiB or more into partial messages; the `local` log driver
radops starts jobs with keeps every byte, but Docker 20.10's drops the newline that ends such a
line (moby 990b0e28ba, fixed from Docker 23.0). So on 20.10 exactly those newlines are
missing, and on a newer engine the output comes back byte for byte. docs/jobs.md has the
evidence for why radops cannot restore them on 20.10.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.containerd_engine import containerd_store_engine
from tests.ssh.conftest import CLI

SPLIT = 16384  # Docker's log copier's buffer: longer lines become partial messages
MIB = 1 << 20


def _lines(*lines: bytes, end: bytes) -> bytes:
    return b"\n".join(lines) + end


def _output(end: bytes) -> tuple[bytes, bytes]:
    """What the job writes to stdout and stderr: lines on each side of 16 KiB, exact multiples
    of it, 64 KiB and 1 MiB, bytes that are not UTF-8 everywhere, the last line long, and a
    final newline or not (`end`)."""
    odd = b"\x80\xff\xc3(\xfe" + b"a" * 59  # 64 bytes, invalid UTF-8 in each
    out = _lines(
        b"first \xff\xfe line", b"x" * (SPLIT - 1), b"\xff" * SPLIT, b"y" * (SPLIT + 1),
        b"z" * (2 * SPLIT), b"short after", odd * (64 * 1024 // 64), odd * (MIB // 64),
        b"\xfe" * 20 * 1024, end=end,
    )  # fmt: skip
    err = _lines(b"err \xff", b"e" * 20000, b"err last \xfe", odd * 300, end=end)
    return out, err


def _as_docker_20_10_gives_it(data: bytes) -> bytes:
    """`data` without the newline that ends each line of 16 KiB or more."""
    lines = data.split(b"\n")
    kept = [line + (b"" if len(line) >= SPLIT else b"\n") for line in lines[:-1]]
    return b"".join(kept) + lines[-1]


@pytest.fixture(scope="module")
def newer_engine(remote: rig.RemoteHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Docker 26's DOCKER_HOST (started under the rig's lock, held by `remote`)."""
    with containerd_store_engine(tmp_path_factory.mktemp("d26"), ("busybox:1.36",)) as host:
        yield host


def _job(tmp_path: Path, end: bytes) -> tuple[Path, bytes, bytes]:
    folder = tmp_path / f"long-{'nl' if end else 'open'}"
    folder.mkdir()
    out, err = _output(end)
    (folder / "out.bin").write_bytes(out)
    (folder / "err.bin").write_bytes(err)
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY out.bin err.bin /job/\n")
    return folder, out, err


def _run_and_read(cli: CLI, executor: str, folder: Path) -> list[tuple[bytes, bytes]]:
    """(stdout, stderr) of the job's logs, read while following it, then again after."""
    run = cli("executors", "run", executor, str(folder), "--json", "--",
              "sh", "-c", "cat /job/out.bin; cat /job/err.bin >&2", timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    job = json.loads(run.stdout)["job_id"]
    followed = cli("executors", "logs", executor, job, "--follow", timeout=300)
    assert followed.returncode == 0, followed.stderr[-2000:]
    after = cli("executors", "logs", executor, job, timeout=300)
    assert after.returncode == 0, after.stderr[-2000:]
    cli("executors", "rm", executor, job)
    return [(followed.stdout, followed.stderr), (after.stdout, after.stderr)]


def _check(results: list[tuple[bytes, bytes]], out: bytes, err: bytes) -> None:
    for got_out, got_err in results:
        assert got_out == out, _where(got_out, out)
        assert got_err == err, _where(got_err, err)


def _where(got: bytes, want: bytes) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    at = min(len(got), len(want)) if at is None else at
    return f"{len(got)} bytes, {len(want)} expected; first difference at {at}"


@pytest.mark.parametrize("end", [b"\n", b""], ids=["newline", "no-final-newline"])
def test_docker_26_gives_every_byte_back_locally_and_over_ssh(
    cli: CLI, trusted: None, newer_engine: str, tmp_path: Path, end: bytes
) -> None:
    folder, out, err = _job(tmp_path, end)
    here = CLI({**cli.env, "DOCKER_HOST": newer_engine}, cli.home)
    _check(_run_and_read(here, "local", folder), out, err)

    wrapper = tmp_path / "docker-26"
    wrapper.write_text(f'#!/bin/sh\nDOCKER_HOST={newer_engine} exec {rig.DOCKER} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    added = cli("executors", "add", "--name", "box26", "--hostname", "rigbox",
                "--docker-path", str(wrapper))  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    _check(_run_and_read(cli, "box26", folder), out, err)


@pytest.mark.parametrize("end", [b"\n", b""], ids=["newline", "no-final-newline"])
def test_docker_20_10_drops_only_the_newline_of_long_lines(
    cli: CLI, box: str, tmp_path: Path, end: bytes
) -> None:
    folder, out, err = _job(tmp_path, end)
    expected = _as_docker_20_10_gives_it(out), _as_docker_20_10_gives_it(err)
    assert len(out) - len(expected[0]) == (6 if end else 5)  # the long lines' newlines
    _check(_run_and_read(cli, "local", folder), *expected)
    _check(_run_and_read(cli, box, folder), *expected)
