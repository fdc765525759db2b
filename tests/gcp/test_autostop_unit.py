"""Autostop without a VM: durations, the setting's forms, the on-VM scripts as text, and the
watcher and the activity wrapper run by this machine's own `sh` in a temporary folder.

Safety first: the watcher's default action (a guest shutdown) is only checked as text here. The
first tests show that the watcher refuses to arm without an override on a machine that is not a
Compute Engine VM (this one), so no later test can reach the default by mistake.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from radops.errors import UsageError
from radops.gcp.activity import AUTOSTOP_DIR, with_activity
from radops.gcp.autostop import (
    Autostop,
    format_duration,
    from_metadata,
    parse_duration,
    requested,
)
from radops.gcp.watcher import (
    UNIT,
    WATCHER,
    WatcherSettings,
    arm_argv,
    disarm_argv,
    parse_status,
    status_argv,
)

DMI = Path("/sys/class/dmi/id/product_name")
IDLE_S = 1  # the watcher tests' idle period (the shortest; it checks every second)


def test_this_machine_is_not_a_compute_engine_vm() -> None:
    """Every watcher test relies on this: here the default action is never available."""
    text = DMI.read_text().strip() if DMI.exists() else ""
    assert text != "Google Compute Engine", "refusing to test the watcher on a GCE VM"


# the watcher, run here as a plain process -------------------------------------------------------


@pytest.fixture
def watch_dir(tmp_path: Path) -> Path:
    """A watcher folder as radops' arm script lays it out, with a stub `docker`."""
    folder = tmp_path / "autostop"
    (folder / "busy").mkdir(parents=True)
    (folder / "watcher.sh").write_text(WATCHER)
    docker = tmp_path / "docker"
    # Prints a container id while tmp/job-running exists: a running radops job.
    docker.write_text(f'#!/bin/sh\n[ -e "{tmp_path}/job-running" ] && echo 0123abcd\nexit 0\n')
    docker.chmod(0o755)
    settings = WatcherSettings(IDLE_S, "stop", "p", "z", "vm1", str(docker))
    (folder / "settings").write_text(settings.text())
    return folder


def _watch(folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sh", str(folder / "watcher.sh"), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    if proc.poll() is None:
        proc.terminate()
    return proc.communicate(timeout=10)


def test_watcher_refuses_to_arm_without_an_override_here(watch_dir: Path) -> None:
    proc = _watch(watch_dir)
    try:
        assert proc.wait(timeout=10) == 3
    finally:
        _, err = _stop(proc)
    assert b"not arming: no ./action override" in err
    assert not (watch_dir / "watcher.pid").exists()
    assert not (watch_dir / "fired").exists()
    assert "refused to arm" in (watch_dir / "log").read_text()


def test_arm_script_refuses_before_starting_anything(tmp_path: Path) -> None:
    settings = WatcherSettings(60, "stop", "p", "z", "vm1", "/usr/bin/docker")
    result = subprocess.run(
        arm_argv(settings), env={**os.environ, "HOME": str(tmp_path)}, capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout.startswith(b"radops:refused no ./action override")
    folder = tmp_path / AUTOSTOP_DIR
    assert not (folder / "settings").exists() and not (folder / "watcher.pid").exists()


def _marker_action(folder: Path, marker: Path) -> None:
    (folder / "action").write_text(f'echo fired >> "{marker}"\n')


def _wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_watcher_fires_the_override_once_after_the_idle_period(
    watch_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    _marker_action(watch_dir, marker)
    started = time.monotonic()
    proc = _watch(watch_dir)
    try:
        assert proc.wait(timeout=20) == 0  # it exits after firing
    finally:
        _stop(proc)
    assert time.monotonic() - started >= IDLE_S
    assert marker.read_text() == "fired\n"
    assert (watch_dir / "fired").read_text().strip().endswith("Z")
    status = parse_status(_status(watch_dir))
    assert status.fired and not status.armed and status.text().startswith("fired at ")


def _status(folder: Path) -> str:
    out = subprocess.run(["sh", str(folder / "watcher.sh"), "status"], capture_output=True)
    return out.stdout.decode()


def _mtime(path: Path) -> int:
    """Whole seconds, as the watcher reads it (`stat -c %Y`)."""
    return int(path.stat().st_mtime)


def _armed(folder: Path) -> int:
    """Wait until the watcher armed (its log says so after it started the idle clock); return
    when the clock started."""
    assert _wait_for(lambda: "armed:" in _text(folder / "log"), 30), _text(folder / "log")
    return _mtime(folder / "activity")


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_running_job_and_a_running_command_keep_it_up(watch_dir: Path, tmp_path: Path) -> None:
    """Each wait below ends when the watcher touches the activity file (it does while the job
    or the command runs) at a check where, without them, it would have fired: events, so a
    slow machine makes the test slower, never wrong."""
    marker = tmp_path / "marker"
    _marker_action(watch_dir, marker)
    (tmp_path / "job-running").touch()
    activity = watch_dir / "activity"
    sleeper: subprocess.Popen[bytes] | None = None
    proc = _watch(watch_dir)
    try:
        armed = _armed(watch_dir)
        # Twice the idle period, with a job running.
        assert _wait_for(lambda: _mtime(activity) >= armed + 2 * IDLE_S, 30)
        assert not marker.exists() and proc.poll() is None
        # A command in progress (busy/PID of a live process) keeps it up too. Marked before
        # the job ends: no idle moment between the two.
        sleeper = subprocess.Popen(["sleep", "600"])
        (watch_dir / "busy" / str(sleeper.pid)).touch()
        (tmp_path / "job-running").unlink()
        job_ended = max(_mtime(activity), int(time.time()))
        assert _wait_for(lambda: _mtime(activity) >= job_ended + IDLE_S + 1, 30)
        assert not marker.exists() and proc.poll() is None
        sleeper.kill()
        sleeper.wait()
        assert _wait_for(marker.exists, 30)
        assert proc.wait(timeout=10) == 0
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        _stop(proc)
    assert marker.read_text() == "fired\n"
    assert not list((watch_dir / "busy").iterdir())  # the dead command's mark was swept


def test_a_replaced_watcher_exits_without_firing(watch_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _marker_action(watch_dir, marker)
    (tmp_path / "job-running").touch()
    proc = _watch(watch_dir)
    try:
        assert _wait_for((watch_dir / "watcher.pid").exists, 5)
        (watch_dir / "watcher.pid").unlink()  # what disarm and re-arm do
        assert proc.wait(timeout=5) == 0
    finally:
        _stop(proc)
    assert not marker.exists()


# the activity wrapper, run by sh ----------------------------------------------------------------


def test_activity_wrapper_marks_use_and_keeps_argv_stdin_and_status(tmp_path: Path) -> None:
    folder = tmp_path / AUTOSTOP_DIR
    (folder / "busy").mkdir(parents=True)
    (folder / "activity").touch()
    os.utime(folder / "activity", (1000, 1000))
    probe = f'ls "{folder}/busy"; cat; printf "<%s>" "$@"; exit 7'
    result = subprocess.run(
        with_activity(["sh", "-c", probe, "sh", "a b", "$HOME", "'"]),
        input=b"stdin\n", env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]},
        capture_output=True, timeout=10,
    )  # fmt: skip
    assert result.returncode == 7
    busy, rest = result.stdout.split(b"\n", 1)
    assert busy.isdigit()  # its own pid, while it ran
    assert rest == b"stdin\n<a b><$HOME><'>"
    assert not list((folder / "busy").iterdir())
    assert (folder / "activity").stat().st_mtime > time.time() - 30
    assert result.stderr == b""


def test_activity_wrapper_without_a_watcher_only_execs(tmp_path: Path) -> None:
    result = subprocess.run(
        with_activity(["sh", "-c", 'echo "$0:$1"', "x", "y"]),
        env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]}, capture_output=True,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, b"x:y\n", b"")
    assert not (tmp_path / ".radops").exists()


# the default action, as text only ---------------------------------------------------------------


def test_default_actions_as_text() -> None:
    assert "stop_vm() {  # a guest shutdown" in WATCHER
    assert "  as_root shutdown -h now\n" in WATCHER
    assert 'as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }' in WATCHER
    # The default is chosen only where DMI says Compute Engine; an override always wins.
    assert "grep -qx 'Google Compute Engine' /sys/class/dmi/id/product_name" in WATCHER
    kind = WATCHER[WATCHER.index("action_kind() {") : WATCHER.index("stop_vm() {")]
    assert kind.index("[ -s action ]") < kind.index("on_gce") < kind.index("echo none")
    # Delete: the token goes to curl on stdin (-H @-), never on a command line.
    assert '| curl -sf -X DELETE -H @- "$url"' in WATCHER
    assert "Bearer" not in WATCHER.split("printf 'Authorization: Bearer %s\\n' \"$token\"")[1]
    assert 'stopping it"\n    stop_vm' in WATCHER  # a refused delete falls back to a stop
    assert "mkdir fired.lock 2>/dev/null || exit 0" in WATCHER  # once per arming
    arm = arm_argv(WatcherSettings(60, "stop", "p", "z", "vm1", "/usr/bin/docker"))[2]
    # The default stop needs root or passwordless sudo: without, arming is refused.
    assert '[ "$kind" = default ] && [ "$(id -u)" != 0 ] && ! sudo -n true' in arm
    # systemd is only touched on a Compute Engine VM, after the action check.
    assert arm.index('"$kind" = none') < arm.index("on_gce && [ -d /run/systemd/system ]")
    assert "ExecStart=/bin/sh $d/watcher.sh run" in arm and UNIT in arm
    disarm = disarm_argv()[2]
    assert disarm.index("grep -qx 'Google Compute Engine'") < disarm.index("systemctl disable")


def test_status_parsing() -> None:
    out = "armed=1\nidle_seconds=1800\naction=stop\naction_kind=default\nnow=1000\nactivity=940\n"
    status = parse_status(out + "fired=\n")
    assert (status.installed, status.armed, status.idle_seconds, status.idle_for) == (
        True, True, 1800, 60,
    )  # fmt: skip
    assert status.text() == "armed"
    assert parse_status("").text() == "not installed"
    assert "exec sh" in status_argv()[2]


def test_settings_text_and_interval() -> None:
    settings = WatcherSettings(1800, "delete", "proj", "us-central1-a", "vm1", "/usr/bin/docker")
    assert settings.interval == 60
    assert WatcherSettings(3, "stop", "p", "z", "v", "d").interval == 1
    assert "idle_seconds=1800\ninterval=60\naction=delete\nproject=proj\n" in settings.text()
    with pytest.raises(ValueError):
        WatcherSettings(60, "stop", "p", "z\nx=1", "v", "d").text()


# durations and settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("90s", 90), ("1d", 86400), ("45", 2700), (" 5M ", 300)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["off", "OFF", "none", "never"])
def test_off(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["0", "0m", "5x", "", "-5m", "1.5h", "m", "31d", "5 m"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert "--autostop" in caught.value.message


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "1m30s"), (1800, "30m"), (7200, "2h"), (5400, "1h30m"), (5, "5s")]
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_setting_forms() -> None:
    assert Autostop(1800).text() == "30m" and Autostop(7200, "delete").text() == "2h (delete)"
    assert from_metadata({"radops-autostop": "1800 delete"}) == Autostop(1800, "delete")
    assert from_metadata({"radops-autostop": "junk"}) is None and from_metadata({}) is None
    assert requested(None, False, "60m") == Autostop(3600)
    assert requested("off", False, "60m") is None
    assert requested("2h", True, None) == Autostop(7200, "delete")
    with pytest.raises(UsageError, match="--autostop-delete needs"):
        requested(None, True, None)
    with pytest.raises(UsageError, match="the gcp_autostop setting"):
        requested(None, False, "5x")
