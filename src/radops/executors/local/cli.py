"""The docker CLI, for what the local kind runs through it rather than the Engine API (`cp` to a
job, `exec`, `top`'s stats), and a command whose progress is the bytes it reads: `docker cp` of
local files reads each one once and streams it to the engine as it goes, so what it has read is
what it has sent."""

from __future__ import annotations

import subprocess
import tempfile

from radops.errors import RadopsError
from radops.progress import TransferMeter

POLL_S = 0.1


def docker_cli(what: str) -> str:
    """The docker CLI on PATH, for what goes through it rather than the Engine API."""
    import shutil

    docker = shutil.which("docker")
    if docker is None:
        raise RadopsError(f"{what} needs the docker CLI on PATH")
    return docker


def bytes_read(pid: int) -> int | None:
    """What process `pid` has read so far (Linux's /proc/PID/io `rchar`; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/io", "rb") as io:
            for line in io:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_metered(
    argv: list[str], meter: TransferMeter, size: int | None
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` (no stdin, output captured), reporting what it reads to `meter` until it
    ends (`size`, about what it reads in all, once it succeeded); an interrupt ends it too."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            last = 0
            while True:
                try:
                    code = proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    done = bytes_read(proc.pid) or 0
                    if done > last:  # an ending process may say 0
                        last = done
                        meter.update(done)
            if code == 0 and size is not None and size > last:
                meter.update(size)  # it ended between two looks
        except BaseException:
            proc.kill()
            proc.wait()
            meter.finish(ok=False)
            raise
        meter.finish(ok=code == 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, code, out.read(), err.read())
