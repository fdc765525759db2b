"""Autostop and spot end to end: the CLI, the real google-cloud-compute client against the fake
Compute Engine, and the watcher running for real on the rig's VM stand-in (its sshd on
127.0.0.22-23 and the rig's Docker engine).

The rig's "VM" is this very machine, logged in as this user, so the watcher lives in this
user's ~/.radops/autostop. Safety: every test writes the override action (a marker line, then
the fake's guest-shutdown endpoint) BEFORE it arms anything, and the first test shows that
arming without one is refused here. The default action is never reachable on this machine
(not a Compute Engine VM: checked first), and is only checked as text (test_autostop_unit.py).
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from radops.gcp.activity import AUTOSTOP_DIR
from tests import rig
from tests.gce_fake import FakeGCE
from tests.ssh.conftest import CLI

DMI = Path("/sys/class/dmi/id/product_name")
ZONE = "us-central1-a"


def _kill_watcher(folder: Path) -> None:
    """Stop a watcher these tests armed: only a process whose command line is the watcher's."""
    try:
        pid = int((folder / "watcher.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"autostop/watcher.sh\0run" in cmdline:
        os.kill(pid, signal.SIGTERM)


def _running_jobs(remote: rig.RemoteHost) -> list[str]:
    ps = remote.docker("ps", "-q", "--filter", "label=dev.radops.job-id", "--filter",
                       "status=running")  # fmt: skip
    return ps.stdout.split()


@pytest.fixture
def vm_dir(cloud_vms: rig.CloudVMs, remote: rig.RemoteHost) -> Iterator[Path]:
    """The watcher's folder on the rig VM (this user's home), empty before and after. The rig
    engine is the VM's: a job an earlier test of this session left running would keep every
    VM busy, so they are stopped first (they are this session's own containers)."""
    leftovers = _running_jobs(remote)
    if leftovers:
        remote.docker("rm", "--force", *leftovers)
    assert _running_jobs(remote) == []
    text = DMI.read_text().strip() if DMI.exists() else ""
    assert text != "Google Compute Engine", "refusing to arm watchers on a Compute Engine VM"
    folder = Path(pwd.getpwnam(getpass.getuser()).pw_dir) / AUTOSTOP_DIR
    _kill_watcher(folder)
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    _kill_watcher(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def marker(vm_dir: Path, tmp_path: Path, fake: FakeGCE) -> Path:
    """The override action, written before anything arms: one line in a marker file, then a
    stop from inside the VM (the fake's guest shutdown of vm1)."""
    path = tmp_path / "marker"
    vm_dir.mkdir(parents=True, exist_ok=True)
    url = f"{fake.endpoint}/fake/zones/{ZONE}/instances/vm1/guestShutdown"
    (vm_dir / "action").write_text(f'echo fired >> "{path}"\ncurl -sf -X POST "{url}"\n')
    return path


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return str(result.stdout.decode())


def _create(gcli: CLI, *extra: str) -> None:
    _ok(gcli("executors", "gcp", "create", "cpu-small", "vm1", "--timeout", "90", *extra,
             timeout=180))  # fmt: skip


def _row(gcli: CLI, name: str = "vm1") -> dict[str, Any]:
    rows = json.loads(_ok(gcli("executors", "gcp", "list", "--json")))
    return next(r for r in rows if r["name"] == name)


def _wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _mtime(path: Path) -> int:
    """Whole seconds, as the watcher reads it (`stat -c %Y`)."""
    return int(path.stat().st_mtime)


def _finished_at(remote: rig.RemoteHost, job: str) -> float:
    """When the engine says the job's container exited (seconds since the epoch)."""
    text = remote.docker("inspect", "-f", "{{.State.FinishedAt}}", f"radops-{job}").stdout
    stamp, _, fraction = text.strip().removesuffix("Z").partition(".")
    whole = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return whole.timestamp() + float(f"0.{fraction or 0}")


def _watcher_alive(folder: Path) -> bool:
    try:
        pid = int((folder / "watcher.pid").read_text().strip())
        return b"autostop/watcher.sh\0run" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def test_arming_without_an_override_is_refused_and_records_nothing(
    gcli: CLI, fake: FakeGCE, vm_dir: Path
) -> None:
    _create(gcli)
    assert not (vm_dir / "action").exists()
    result = gcli("executors", "gcp", "autostop", "vm1", "5s")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.splitlines()[-1].startswith(
        "radops: error: autostop on vm1 refused to arm: no ./action override in "
    ), err
    assert "Traceback" not in err
    assert not (vm_dir / "watcher.pid").exists() and not (vm_dir / "settings").exists()
    items = fake.instances()["vm1"]["metadata"]["items"]
    assert "radops-autostop" not in {i["key"] for i in items}
    # create --autostop refuses the same way, and deletes the VM it made.
    _ok(gcli("executors", "gcp", "delete", "vm1", "--yes"))
    failed = gcli("executors", "gcp", "create", "cpu-small", "vm1", "--autostop", "5s",
                  timeout=180)  # fmt: skip
    assert failed.returncode == 1 and "refused to arm" in failed.stderr.decode()
    assert "Deleting VM vm1 (creation failed)" in failed.stderr.decode()
    assert _wait_for(lambda: "vm1" not in fake.instances(), 10)


def test_a_job_keeps_the_vm_up_then_idle_stops_it_exactly_once(
    gcli: CLI, fake: FakeGCE, vm_dir: Path, marker: Path, job_context: Path, remote: Any
) -> None:
    _create(gcli)
    # A job that runs until the test says (at most two minutes): a busy machine's slow `run`
    # cannot end it before autostop is armed.
    wait = "i=0; while [ ! -e /job/done ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done"
    job = _ok(gcli("executors", "run", "--quiet", "vm1", str(job_context), "--", "sh", "-c",
                   wait)).strip()  # fmt: skip
    armed = gcli("executors", "gcp", "autostop", "vm1", "3s")
    assert "vm1 stops after 3s without a radops job or command. Armed now" in _ok(armed)
    armed_at = _mtime(vm_dir / "activity")  # arming started the idle clock
    row = _row(gcli)
    assert row["autostop"] == {"seconds": 3, "action": "stop", "text": "3s"}
    assert row["watcher"] == "armed" and row["provisioning_model"] == "STANDARD", row
    # The running job keeps the VM up: the watcher touches the activity file while it runs,
    # and a touch past the period is a check at which, without the job, it would have fired.
    assert _wait_for(lambda: _mtime(vm_dir / "activity") >= armed_at + 3 + 1, 60)
    assert _lines(marker) == [], "the watcher fired while a job ran"
    assert _row(gcli)["status"] == "RUNNING"
    # The job ends (through the engine itself: no radops command touches the VM).
    touched = remote.docker("exec", f"radops-{job}", "touch", "/job/done")
    assert touched.returncode == 0, touched.stderr

    def job_ended() -> bool:
        state = remote.docker("inspect", "-f", "{{.State.Running}}", f"radops-{job}").stdout
        return state.strip() == "false"

    assert _wait_for(job_ended, 30), "the job never ended"
    assert _wait_for(lambda: bool(_lines(marker)), 3 + 1 + 20)
    # Not at once: the watcher saw the job until it ended, then waited the idle period. Both
    # times are the events' own (the engine's end of the job, the action's write), not when
    # this test noticed them.
    fired = marker.stat().st_mtime
    assert fired - _finished_at(remote, job) >= 0.5
    assert _wait_for(lambda: fake.instances()["vm1"]["status"] == "TERMINATED", 5)
    # The watcher exits after firing: once it is gone, no second firing can come.
    assert _wait_for(lambda: not _watcher_alive(vm_dir), 30)
    assert _lines(marker) == ["fired"]
    assert _row(gcli)["status"] == "TERMINATED"
    log = (vm_dir / "log").read_text()
    assert "running the override stop action" in log and "refused" not in log

    # Changed while stopped: recorded, armed by the next start (a fresh idle clock).
    later = _ok(gcli("executors", "gcp", "autostop", "vm1", "1h"))
    assert "It is armed by the next `gcp start`." in later
    before_start = time.time()
    started = _ok(gcli("executors", "gcp", "start", "vm1", timeout=120))
    assert "Started vm1 at 127.0.0.23." in started
    assert _watcher_alive(vm_dir) and not (vm_dir / "fired").exists()
    row = _row(gcli)
    assert row["watcher"] == "armed" and row["autostop"]["seconds"] == 3600
    # Re-armed by start: the idle clock began there, after the firing, not before it (the
    # activity file's time is the clock's start; idle_seconds is whole seconds since then).
    assert (vm_dir / "activity").stat().st_mtime >= before_start > fired, row
    assert row["idle_seconds"] <= int(time.time()) - int(before_start), row
    _kill_watcher(vm_dir)  # e.g. a VM restarted outside radops, without systemd
    assert _wait_for(lambda: not _watcher_alive(vm_dir), 5)
    warned = gcli("executors", "gcp", "list").stderr.decode()
    assert (
        "warning: vm1: autostop watcher not running; arm it again: "
        "radops executors gcp autostop vm1 1h" in warned
    ), warned
    _ok(gcli("executors", "gcp", "autostop", "vm1", "1h"))
    assert _watcher_alive(vm_dir)
    assert "Autostop of vm1 is off." in _ok(gcli("executors", "gcp", "autostop", "vm1", "off"))
    assert _wait_for(lambda: not _watcher_alive(vm_dir), 5)
    row = _row(gcli)
    assert row["autostop"] is None and row["idle_seconds"] is None
    time.sleep(4)
    assert _lines(marker) == ["fired"]


def test_a_command_on_the_vm_resets_the_idle_clock_and_list_does_not(
    gcli: CLI, fake: FakeGCE, vm_dir: Path, marker: Path
) -> None:
    # 25 s: the two `gcp list`s below (an API call and an SSH command each) must come well
    # within the period after the command even on a loaded machine; at 10 s they did not.
    _create(gcli, "--autostop", "25s")  # armed by create itself, over its own connection
    assert _watcher_alive(vm_dir)
    items = {i["key"]: i["value"] for i in fake.instances()["vm1"]["metadata"]["items"]}
    assert items["radops-autostop"] == "25 stop"
    # A command on the VM starts the idle clock again (the activity file's time is its start).
    before = time.time()
    _ok(gcli("executors", "jobs", "vm1"))
    used = (vm_dir / "activity").stat().st_mtime
    assert used >= before, "`jobs` did not touch the idle clock"
    time.sleep(5)
    row = _row(gcli)
    again = _row(gcli)
    first, second = row["idle_seconds"], again["idle_seconds"]
    assert first is not None and second is not None, (row, again)
    assert first >= 5 and second >= first
    # Looking at the watcher is no use of the VM: the clock was not touched.
    assert (vm_dir / "activity").stat().st_mtime == used
    # It fires the idle period after the command, not before (by the action's own write).
    assert _wait_for(lambda: bool(_lines(marker)), 25 + 1 + 60)
    assert marker.stat().st_mtime - used >= 25, "fired less than the idle period after a command"
    # The watcher exits after firing: once it is gone, no second firing can come.
    assert _wait_for(lambda: not _watcher_alive(vm_dir), 30)
    assert _lines(marker) == ["fired"]


def test_a_preempted_spot_vm_says_so_and_start_resumes_it(gcli: CLI, fake: FakeGCE) -> None:
    _create(gcli, "--spot")
    scheduling = fake.instances()["vm1"]["scheduling"]
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["instanceTerminationAction"] == "STOP"
    table = _ok(gcli("executors", "gcp", "list"))
    assert table.splitlines()[0].split() == [
        "NAME", "ZONE", "STATUS", "EXTERNAL", "IP", "EXECUTOR", "PRICING", "AUTOSTOP", "IDLE",
    ]  # fmt: skip
    assert table.splitlines()[1].split()[-3:] == ["spot", "-", "-"]

    fake.preempt("vm1")
    assert _wait_for(lambda: fake.instances()["vm1"]["status"] == "TERMINATED", 5)
    listed = gcli("executors", "gcp", "list")
    assert _ok(listed).splitlines()[1].split()[2] == "PREEMPTED"
    assert "`radops executors gcp start vm1` to resume" in listed.stderr.decode()
    assert _row(gcli)["preempted_at"].startswith("20")

    # Its external IP is gone: the executor's address answers nothing any more.
    config_path = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "config.json"
    config = json.loads(config_path.read_text())
    config["executors"]["vm1"]["port"] = rig.free_port()
    config_path.write_text(json.dumps(config))
    result = gcli("executors", "jobs", "vm1")
    assert result.returncode == 5
    err = result.stderr.decode().splitlines()
    assert err[0].startswith("radops: error: VM vm1 (spot) was preempted at 20"), err
    assert err[0].endswith("; `radops executors gcp start vm1` to resume"), err
    assert len(err) == 1
    checked = gcli("executors", "check", "vm1")
    assert checked.returncode == 5
    assert checked.stderr.decode().splitlines()[0] == err[0]

    del config["executors"]["vm1"]["port"]
    config_path.write_text(json.dumps(config))
    assert "Started vm1 at" in _ok(gcli("executors", "gcp", "start", "vm1"))
    row = _row(gcli)
    assert row["status"] == "RUNNING" and row["preempted_at"] is None
    assert row["provisioning_model"] == "SPOT"
    _ok(gcli("executors", "jobs", "vm1"))


def test_list_shows_what_the_vm_says_about_its_watcher_escaped(
    gcli: CLI, fake: FakeGCE, vm_dir: Path, marker: Path
) -> None:
    created = gcli("executors", "gcp", "create", "cpu-small", "vm1", "--autostop", "1h",
                   "--timeout", "90", timeout=180)  # fmt: skip
    _ok(created)
    # The metadata guard (gcp/metadata_guard.py) is never installed off Compute Engine.
    assert (
        b"Job containers on vm1 can reach the metadata server: not a Compute Engine VM"
        in created.stderr
    ), created.stderr
    _kill_watcher(vm_dir)
    # The VM answers `watcher.sh status` with terminal escapes in the firing time.
    (vm_dir / "watcher.sh").write_text(
        "printf 'armed=0\\nidle_seconds=3600\\nfired=noon\\033]0;pwned\\007\\033[31m\\n'\n"
    )
    listed = gcli("executors", "gcp", "list")
    _ok(listed)
    assert b"\x1b" not in listed.stderr + listed.stdout and b"\x07" not in listed.stderr
    assert (
        b"warning: vm1: autostop watcher fired at noon\\x1b]0;pwned\\x07\\x1b[31m; arm it again: "
        b"radops executors gcp autostop vm1 1h\n" in listed.stderr
    ), listed.stderr
    _ok(gcli("executors", "gcp", "delete", "vm1", "--yes"))
