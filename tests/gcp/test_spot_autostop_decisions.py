"""Spot VMs, preemption and the autostop setting, where no VM needs to boot: the in-process
fake Compute Engine driven by the real google-cloud-compute client, no sshd or Docker.
Bad input of the new options is checked through the CLI in this process.

The fixtures are test_provisioner_decisions' (a fresh fake per test), imported by name.
"""
# ruff: noqa: F811

from __future__ import annotations

import time
from typing import Any

import pytest

from radops.errors import EngineUnreachableError, NotFoundError
from radops.gcp.autostop import Autostop
from radops.gcp.compute import spot_scheduling
from radops.gcp.provision import Provisioner
from radops.specs import SSHExecutorSpec
from radops.store import ExecutorStore
from tests.conftest import InProcessResult
from tests.gce_fake import FakeGCE
from tests.gcp.test_provisioner_decisions import (  # noqa: F401  (fixtures)
    PROJECT,
    ZONE,
    fake,
    gce,
    gcp_spec,
    make_vm,
    prov,
    recorder,
    stopping,
    target,
    wait_running,
)
from tests.test_gce_fake import Clients


def wait_status(fake: FakeGCE, name: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while (vm := fake.instances()[name])["status"] != status:
        assert time.monotonic() < deadline, vm["status"]
        time.sleep(0.01)
    return vm


def insert_spot(prov: Provisioner, name: str) -> None:
    template = prov.compute.template("cpu")
    op = prov.compute.insert(ZONE, name, template, {"radops-managed": "true"}, {},
                             spot_scheduling(template))  # fmt: skip
    prov.compute.wait(ZONE, op, "test insert")


def test_spot_scheduling_is_the_templates_made_spot(prov: Provisioner, fake: FakeGCE) -> None:
    template = prov.compute.template("cpu")
    assert template.scheduling["on_host_maintenance"] == "MIGRATE"
    assert template.scheduling["automatic_restart"] is True
    insert_spot(prov, "cheap")
    vm = wait_status(fake, "cheap", "RUNNING")
    assert vm["scheduling"] == {
        "onHostMaintenance": "TERMINATE", "automaticRestart": False,
        "provisioningModel": "SPOT", "instanceTerminationAction": "STOP",
    }  # fmt: skip
    found = prov.compute.get(ZONE, "cheap")
    assert found is not None and found.spot and found.provisioning_model == "SPOT"


def test_preempted_at_is_only_since_the_last_start(prov: Provisioner, fake: FakeGCE) -> None:
    insert_spot(prov, "cheap")
    wait_status(fake, "cheap", "RUNNING")
    vm = prov.compute.get(ZONE, "cheap")
    assert vm is not None and prov.compute.preempted_at(vm) is None
    fake.preempt("cheap")
    wait_status(fake, "cheap", "TERMINATED")
    vm = prov.compute.get(ZONE, "cheap")
    assert vm is not None
    when = prov.compute.preempted_at(vm)
    assert when is not None and when.startswith("20")
    prov.compute.start(ZONE, "cheap")
    wait_status(fake, "cheap", "RUNNING")
    vm = prov.compute.get(ZONE, "cheap")
    assert vm is not None and prov.compute.preempted_at(vm) is None


def test_why_unreachable_names_stopped_preempted_and_gone(
    prov: Provisioner, fake: FakeGCE, gce: Clients
) -> None:
    make_vm(gce, "std")
    insert_spot(prov, "cheap")
    wait_running(fake, "std", "cheap")
    assert prov.why_unreachable(gcp_spec("std")) is None  # running: the SSH error stands
    prov.compute.stop(ZONE, "std")
    fake.preempt("cheap")
    wait_status(fake, "std", "TERMINATED")
    wait_status(fake, "cheap", "TERMINATED")

    stopped = prov.why_unreachable(gcp_spec("std"))
    assert isinstance(stopped, EngineUnreachableError)
    assert stopped.message.startswith("VM std is stopped (TERMINATED since 20")
    assert stopped.message.endswith("); `radops executors gcp start std` to resume")
    preempted = prov.why_unreachable(gcp_spec("cheap"))
    assert isinstance(preempted, EngineUnreachableError)
    assert preempted.message.startswith("VM cheap (spot) was preempted at 20")
    assert preempted.message.endswith("; `radops executors gcp start cheap` to resume")
    gone = prov.why_unreachable(gcp_spec("nothing"))
    assert isinstance(gone, NotFoundError) and "is gone" in gone.message


def test_autostop_on_a_stopped_vm_is_recorded_for_the_next_start(
    prov: Provisioner, fake: FakeGCE, gce: Clients
) -> None:
    make_vm(gce, "vm1")
    wait_running(fake, "vm1")
    prov.compute.stop(ZONE, "vm1")
    wait_status(fake, "vm1", "TERMINATED")
    ExecutorStore().add(gcp_spec("vm1"))  # its address answers nothing: no SSH may be tried
    lines, progress = recorder()

    assert prov.set_autostop("vm1", Autostop(1800, "delete"), progress) is False
    items = {i["key"]: i["value"] for i in fake.instances()["vm1"]["metadata"]["items"]}
    assert items["radops-autostop"] == "1800 delete"
    rows = {r["name"]: r for r in (v.to_json() for v in prov.overview())}
    assert rows["vm1"]["autostop"] == {"seconds": 1800, "action": "delete", "text": "30m (delete)"}
    assert rows["vm1"]["idle_seconds"] is None and rows["vm1"]["watcher"] is None

    assert prov.set_autostop("vm1", None, progress) is False
    items = {i["key"]: i["value"] for i in fake.instances()["vm1"]["metadata"].get("items", [])}
    assert "radops-autostop" not in items
    assert lines == ["Recording autostop on VM vm1", "Recording autostop on VM vm1"]


def test_autostop_needs_an_executor(prov: Provisioner, fake: FakeGCE, gce: Clients) -> None:
    make_vm(gce, "orphan")
    with pytest.raises(NotFoundError, match="has no executor"):
        prov.set_autostop("orphan", Autostop(60), recorder()[1])


def test_overview_shows_spot_and_preemption(prov: Provisioner, fake: FakeGCE) -> None:
    insert_spot(prov, "cheap")
    wait_status(fake, "cheap", "RUNNING")
    fake.preempt("cheap")
    wait_status(fake, "cheap", "TERMINATED")
    (row,) = [r.to_json() for r in prov.overview()]
    assert row["provisioning_model"] == "SPOT" and row["preempted_at"].startswith("20")


# bad input through the CLI ---------------------------------------------------------------------


def _one_line_error(result: InProcessResult, code: int, message: str) -> None:
    assert result.returncode == code, result
    lines = result.stderr.splitlines()
    assert lines[0] == f"radops: error: {message}", lines
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("hint: "))
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--autostop", "0"], "invalid --autostop '0': it must be longer than 0"),
        (["--autostop", "5x"], "invalid --autostop '5x'"),
        (["--autostop", "-1h"], "invalid --autostop '-1h'"),
        (["--autostop-delete"], "--autostop-delete needs an autostop duration"),
    ],
)
def test_create_refuses_bad_autostop_before_calling_google(
    invoke: Any, target: Any, fake: FakeGCE, args: list[str], message: str
) -> None:
    result = invoke("executors", "gcp", "create", "cpu", "vm9", *args)
    _one_line_error(result, 2, message)
    assert not [r for r in fake.requests() if r[0] != "GET"]


def test_a_bad_default_setting_is_refused_and_named(invoke: Any, target: Any) -> None:
    _one_line_error(invoke("config", "set", "gcp_autostop", "5x"), 2, "invalid gcp_autostop '5x'")
    assert invoke("config", "set", "gcp_autostop", "90m").returncode == 0
    assert ExecutorStore().load().settings.gcp_autostop == "90m"


@pytest.mark.parametrize("name", ["local", "box"])
def test_autostop_on_a_non_gcp_executor_is_a_usage_error(
    invoke: Any, target: Any, fake: FakeGCE, name: str
) -> None:
    ExecutorStore().add(SSHExecutorSpec(name="box", hostname="box.example"))
    kind = "local" if name == "local" else "ssh"
    result = invoke("executors", "gcp", "autostop", name, "2h")
    _one_line_error(
        result, 2,
        f"executor {name!r} is not a GCP executor (kind {kind}): autostop is for GCP VMs",
    )  # fmt: skip
    assert fake.requests() == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "invalid autostop duration '0': it must be longer than 0"),
        ("soon", "invalid autostop duration 'soon'"),
    ],
)
def test_autostop_command_refuses_bad_durations(
    invoke: Any, target: Any, fake: FakeGCE, value: str, message: str
) -> None:
    ExecutorStore().add(gcp_spec("vm1"))
    _one_line_error(invoke("executors", "gcp", "autostop", "vm1", value), 2, message)
    _one_line_error(
        invoke("executors", "gcp", "autostop", "vm1", "off", "--autostop-delete"),
        2, "--autostop-delete needs a duration, not off",
    )  # fmt: skip
    assert fake.requests() == []
