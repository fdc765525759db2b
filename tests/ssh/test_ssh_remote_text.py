"""Remote text never reaches the terminal raw: a remote `docker` (a wrapper around the rig's
real one) that puts terminal escapes in its version, a job's state and its errors. Every line
radops prints about them shows the escapes as text, and the job's own output stays bytes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests import rig
from tests.ssh.conftest import CLI

# Retitle the terminal, then turn the text red: what a hostile remote would send.
EVIL = "\x1b]0;pwned\x07\x1b[31m"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[31m"  # how radops prints it: the same characters, escaped

# The real docker, except: `rm` fails (when FAIL exists) with the escapes in its error, and
# `version` and `inspect` answer with them in the version and the state, as JSON escapes.
WRAPPER = r"""#!/usr/bin/python3
import os, re, subprocess, sys
DOCKER, FAIL = sys.argv[0] + ".real", sys.argv[0] + ".fail"
EVIL = rb"\u001b]0;pwned\u0007\u001b[31m"
args = sys.argv[1:]
if os.path.exists(FAIL) and args[:1] == ["rm"]:
    sys.stderr.write("Error response from daemon: \x1b]0;pwned\x07\x1b[31m is busy\n")
    sys.exit(1)
tampered = args[:1] in (["version"], ["inspect"]) or args[:2] == ["container", "inspect"]
if not tampered or "--format" in args and "json" not in " ".join(args):
    os.execv(DOCKER, [DOCKER, *args])
done = subprocess.run([DOCKER, *args], stdout=subprocess.PIPE)
out = done.stdout.replace(b'"Version":"', b'"Version":"' + EVIL)
out = re.sub(rb'"Status": ?"exited"', lambda m: b'"Status":"exited' + EVIL + b'"', out)
sys.stdout.buffer.write(out)
sys.exit(done.returncode)
"""


@pytest.fixture
def evil(cli: CLI, box: str, tmp_path: Path) -> Path:
    """Executor `evil`: the rig host again, with the escaping wrapper as its docker. Returns
    the file whose presence makes its `docker rm` fail with escapes in the error."""
    wrapper = tmp_path / "evil-docker"
    wrapper.write_text(WRAPPER)
    (tmp_path / "evil-docker.real").symlink_to(rig.DOCKER)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    added = cli("executors", "add", "--name", "evil", "--hostname", "rigbox",
                "--docker-path", str(wrapper))  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    assert f"Docker {SHOWN}".encode() in added.stderr, added.stderr
    return tmp_path / "evil-docker.fail"


def test_check_shows_a_hostile_version_escaped(cli: CLI, evil: Path) -> None:
    checked = cli("executors", "check", "evil")
    assert checked.returncode == 0, checked.stderr.decode()
    line = checked.stdout.decode()
    assert b"\x1b" not in checked.stdout and b"\x07" not in checked.stdout
    assert line.startswith(f"evil: Docker {SHOWN}") and line.endswith("\n"), line
    # --json is data for programs: JSON's own escapes, the version string itself inside.
    data = json.loads(cli("executors", "check", "evil", "--json").stdout)
    assert data["server_version"].startswith(EVIL)


def test_stop_rm_and_their_errors_show_remote_text_escaped(
    cli: CLI, box: str, evil: Path, job_context: Path
) -> None:
    # The job prints the same escapes: its output is data and comes back byte for byte.
    run = cli("executors", "run", "--quiet", box, str(job_context), "--",
              "sh", "-c", r"printf '\033]0;pwned\007\033[31m\377\n'; sleep 30")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    job = run.stdout.decode().strip()

    stopped = cli("executors", "stop", "evil", job, "--timeout", "0")
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert stopped.stdout == b""
    assert stopped.stderr == f"Stopped job {job} (exit code None).\n".encode(), stopped.stderr
    again = cli("executors", "stop", "evil", job)
    assert again.stderr == f"Job {job} was not running (exited{SHOWN}).\n".encode(), again.stderr

    logs = cli("executors", "logs", "evil", job)
    assert logs.returncode == 0, logs.stderr.decode()
    assert logs.stdout == EVIL.encode() + b"\xff\n"

    evil.touch()
    refused = cli("executors", "rm", "evil", job)
    assert refused.returncode != 0
    assert refused.stderr.startswith(b"radops: error: "), refused.stderr
    assert b"\x1b" not in refused.stderr and b"\x07" not in refused.stderr
    assert SHOWN.encode() in refused.stderr, refused.stderr
    assert refused.stderr.count(b"\n") <= 2  # one line, and a hint at most

    evil.unlink()
    removed = cli("executors", "rm", "evil", job)
    assert removed.returncode == 0, removed.stderr.decode()
    assert removed.stderr == f"Removed job {job} (exited{SHOWN}).\n".encode(), removed.stderr
