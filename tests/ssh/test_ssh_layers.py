"""Shipping over SSH sends only the layers the remote engine lacks (real engines, real sshd).

Each test builds on a base image of its own (a unique random-content layer), so the remote
engine has none of its layers until the test ships them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.progress_checks import figures
from tests.ssh.conftest import CLI
from tests.terminal import Terminal

# A summary: `...: 12.3 kB in 2s (6 kB/s)`, or without its time when the send was quick.
_SENT = re.compile(r"Sending (\S+) to box[^:\n]*: ([\d.]+) (B|kB|MB|GB)(?: in |$)", re.M)
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def _sent_bytes(stderr: str) -> int:
    """The byte count of the transfer's summary line (`Sending X to box ...: 12.3 kB in 0s`)."""
    found = _SENT.findall(stderr)
    assert len(found) == 1, stderr
    return int(float(found[0][1]) * _UNITS[found[0][2]])


def _base_image(tmp_path: Path, megabytes: int) -> str:
    """A local image with a layer of `megabytes` of random bytes that no engine has yet."""
    name = f"radops-test/base-{uuid.uuid4().hex[:10]}:1"
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        f"FROM busybox:1.36\nRUN head -c {megabytes}000000 /dev/urandom > /blob\n"
    )
    built = subprocess.run(
        [rig.DOCKER, "build", "-q", "-t", name, str(folder)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return name


@pytest.fixture
def base(tmp_path: Path, remote: rig.RemoteHost) -> Iterator[str]:
    name = _base_image(tmp_path, 30)
    yield name
    subprocess.run([rig.DOCKER, "rmi", "-f", name], capture_output=True, timeout=60)


def _job(tmp_path: Path, base: str, code: str, extra: str = "") -> Path:
    """The job folder of this test (`job-<test's folder>`: an image name no other test has)."""
    folder = tmp_path / f"job-{tmp_path.name.lower()[-20:]}"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(f"FROM {base}\n{extra}COPY train.py /train.py\n")
    code_file = folder / "train.py"
    if not code_file.exists() or code_file.read_text() != code:  # same file: same COPY layer
        code_file.write_text(code)
    return folder


def _run(cli: CLI, folder: Path, *command: str) -> tuple[dict[str, str], str]:
    result = cli(
        "executors", "run", "box", str(folder), "--transfer", "ssh", "--json", "--", *command
    )
    assert result.returncode == 0, result.stderr.decode()
    job: dict[str, str] = json.loads(result.stdout)
    return job, result.stderr.decode()


def _layers(image: str) -> list[str]:
    inspect = subprocess.run(
        [rig.DOCKER, "image", "inspect", "--format", "{{json .RootFS.Layers}}", image],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    layers: list[str] = json.loads(inspect.stdout)
    return layers


def _output(cli: CLI, job: dict[str, str]) -> str:
    logs = cli("executors", "logs", "box", job["job_id"], "--follow")
    assert logs.returncode == 0, logs.stderr.decode()
    return logs.stdout.decode()


def test_a_changed_top_layer_ships_without_the_base(
    cli: CLI, box: str, base: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    folder = _job(tmp_path, base, "version 1\n")
    first, err = _run(cli, folder, "cat", "/train.py")
    first_sent = _sent_bytes(err)
    assert first_sent > 30_000_000  # the whole image: the remote had none of its layers
    assert _output(cli, first) == "version 1\n"

    (folder / "train.py").write_text("version 2\n")
    second, err = _run(cli, folder, "cat", "/train.py")
    count = len(_layers(second["image"]))  # busybox's, the random blob, the code
    assert f"(1 of {count} layers)" in err, err  # all but the code's are there already
    assert re.search(rf"Left out {count - 1} layer\(s\), [\d.]+ MB, that box has", err), err
    assert _sent_bytes(err) < 100_000 < first_sent / 300
    assert _output(cli, second) == "version 2\n"
    assert remote.docker("image", "inspect", second["image"]).returncode == 0


def test_a_remote_with_the_top_layer_under_another_base_still_gets_it(
    cli: CLI, box: str, base: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    # The remote gets `base + COPY train.py`; then an image whose same COPY layer (same diff
    # ID) sits on another layer below it. The engine holds that diff only under another chain,
    # so its file must travel again, with the new middle layer.
    folder = _job(tmp_path, base, "same code\n")
    first, _ = _run(cli, folder, "cat", "/train.py")
    assert _output(cli, first) == "same code\n"

    nonce = uuid.uuid4().hex
    _job(tmp_path, base, "same code\n", extra=f"RUN echo {nonce} > /middle\n")
    second, err = _run(cli, folder, "sh", "-c", "cat /middle /train.py; test -s /blob")
    assert f"(2 of {len(_layers(second['image']))} layers)" in err, err
    assert "Left out" in err and "lacked a layer" not in err, err  # no fallback to the whole
    top = [_layers(job["image"])[-1] for job in (first, second)]
    assert top[0] == top[1]  # the case this test is about: one diff, two chains
    assert _output(cli, second) == f"{nonce}\nsame code\n"


def test_an_interrupted_transfer_leaves_no_image_and_the_next_run_works(
    cli: CLI, box: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    big = _base_image(tmp_path, 300)  # long enough to interrupt in the middle
    try:
        folder = _job(tmp_path, big, "after the interrupt\n")
        proc = cli.popen("executors", "run", "box", str(folder), "--transfer", "ssh", "--json")
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 120
        while b"Sending radops/" not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert b"Sending radops/" in seen, seen
        time.sleep(0.5)  # in the middle of the stream
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (seen + err).decode()
        repository = f"radops/{folder.name}"
        tags = remote.docker("images", "--format", "{{.Repository}}", repository).stdout
        assert tags.strip() == "", tags  # no image: nothing half-loaded under the tag

        job, _ = _run(cli, folder, "cat", "/train.py")
        assert _output(cli, job) == "after the interrupt\n"
    finally:
        subprocess.run([rig.DOCKER, "rmi", "-f", big], capture_output=True, timeout=60)


def test_on_a_terminal_the_transfer_is_a_bar_then_a_summary(
    cli: CLI, box: str, base: str, tmp_path: Path
) -> None:
    # A partial send knows its size from the engine's history: the bar shows too.
    folder = _job(tmp_path, base, "print('hi')\n")
    argv = [sys.executable, "-m", "radops", "executors", "run", "box", str(folder), "true"]
    term = Terminal([*argv, "--transfer", "ssh"], cli.env, size=(24, 120))
    assert term.wait(timeout=300) == 0, term.text
    # The first update draws the status line: the bar (the size is known) ...
    assert "━" in term.text and "MB of about" in term.text, term.text
    # ... never more done than the total it shows (the layers' sizes are a lower bound of the
    # archive's: past it, the total is no longer shown).
    for done, total, percent in figures(term.text):
        assert done <= total * 1.01 and percent <= 100, (done, total, term.text)
    # ... and the summary stays.
    summary = r"Sending radops/\S+ to box(?: \(\d+ of \d+ layers\))?: [\d.]+ MB(?: in \d+s)?"
    assert re.search(summary, term.text), term.text


def test_a_layer_gone_between_the_look_and_the_load_sends_the_whole_image(
    base: str, tmp_path: Path, remote: rig.RemoteHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The remote's answer claims every layer but the top one (as if it had the base and
    # removed it right after saying so): the load is refused, then the whole image goes.
    from radops.api import open_spec as open_executor
    from radops.executors.model import ConnectOptions, JobRequest
    from radops.executors.ssh import layers as shipping_layers
    from tests.ssh.test_ssh_contract import contract_spec

    monkeypatch.setenv("HOME", str(tmp_path))
    folder = _job(tmp_path, base, "after the fallback\n")
    real = shipping_layers.parse_remote_layers

    def stale(out: bytes) -> shipping_layers.RemoteLayers:
        listed = real(out)
        claimed = shipping_layers.chain_ids(_layers(base))  # the job image's layers but its top one
        return shipping_layers.RemoteLayers(
            listed.chains | frozenset(claimed), listed.containerd_store
        )

    monkeypatch.setattr(shipping_layers, "parse_remote_layers", stale)
    lines: list[str] = []
    request = JobRequest(folder, ["cat", "/train.py"], transfer="ssh")
    with open_executor(contract_spec(remote), ConnectOptions(trust_new_host_key=True)) as ex:
        job = ex.run(request, lines.append)
        assert ex.wait(job.id) == 0
        out = b"".join(data for stream, data in ex.logs(job.id) if stream == "stdout")
    text = "\n".join(lines)
    assert "lacked a layer it listed a moment ago: sending the whole image" in text, text
    assert out == b"after the fallback\n"
