"""`run --build remote` sends only what changed in the build context since the folder's last
build on the executor (its last contexts kept there, by the content hashes radops computes)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from tests import rig
from tests.ssh.conftest import CLI
from tests.ssh.test_ssh_remote_build import no_local_engine as no_local_engine  # a fixture

CONTEXTS = Path("/root/.cache/radops/contexts")  # the rig's remote user is root on this machine


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    (folder / "data").mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY . /app/\n")
    for i in range(20):
        (folder / "data" / f"part{i}.bin").write_bytes(bytes([i]) * 200_000)
    (folder / "train.py").write_text("print('v1')\n")
    (folder / "gone.txt").write_text("to be removed\n")
    return folder


def _run(cli: CLI, box: str, folder: Path, command: str) -> tuple[str, str]:
    result = cli(
        "executors", "run", box, str(folder), command, "--build", "remote", "--json", timeout=300
    )
    err = result.stderr.decode()
    assert result.returncode == 0, err
    return json.loads(result.stdout)["job_id"], err


def _output(cli: CLI, box: str, job: str) -> str:
    result = cli("executors", "logs", box, job, "--follow")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def _sent(err: str) -> float:
    match = re.search(r"^Sending the build context to box[^:\n]*: ([\d.]+) (B|kB|MB)", err, re.M)
    assert match, err
    return float(match[1]) * {"B": 1, "kB": 1e3, "MB": 1e6}[match[2]]


def test_a_one_file_change_sends_that_file_only_and_builds_the_exact_content(
    no_local_engine: CLI, box: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    cli = no_local_engine
    folder = _folder(tmp_path)
    command = "sh -c 'cat /app/train.py; ls /app'"
    job, err = _run(cli, box, folder, command)
    assert _sent(err) > 4e6, err  # the first build sends it all
    assert _output(cli, box, job).startswith("print('v1')\n")

    (folder / "train.py").write_text("print('v2')\n")
    (folder / "gone.txt").unlink()
    job, err = _run(cli, box, folder, command)
    assert "(1 of 23 entries changed)" in err, err
    assert _sent(err) < 20e3, err  # one file, the manifest and tar padding
    out = _output(cli, box, job)
    assert out.startswith("print('v2')\n") and "gone.txt" not in out and "data" in out, out


def test_without_the_kept_context_the_whole_context_travels_again(
    no_local_engine: CLI, box: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    cli = no_local_engine
    folder = _folder(tmp_path)
    _run(cli, box, folder, "true")
    kept = [p for p in CONTEXTS.iterdir() if p.is_dir()]
    for path in kept:  # as if the machine's cache was cleaned
        subprocess.run(["rm", "-rf", str(path)], check=True)
    (folder / "train.py").write_text("print('v3')\n")
    job, err = _run(cli, box, folder, "cat /app/train.py")
    assert "entries changed" not in err and _sent(err) > 4e6, err
    assert _output(cli, box, job) == "print('v3')\n"
    # No more than three contexts of the folder are kept, and no tree of a finished build.
    for _ in range(3):
        (folder / "train.py").write_text(f"print({uuid.uuid4().hex!r})\n")
        _run(cli, box, folder, "true")
    [mine] = [p for p in CONTEXTS.iterdir() if p.is_dir()]
    assert len(list(mine.glob("*.manifest"))) == 3
    assert not list(mine.glob("tmp.*")) and not (mine / "work.lock").exists()
    shutil.rmtree(mine)
