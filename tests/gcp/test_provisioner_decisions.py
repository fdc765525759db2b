"""The provisioner's decisions that need no VM to boot: names, zones, `gcp list`'s findings,
where a VM is, and deleting what an interrupted create left.

Compute Engine is the in-process fake (tests/gce_fake.py) driven by the real google-cloud-compute
client, with radops pointed at it by RADOPS_GCP_API_ENDPOINT; no sshd or Docker is involved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from radops.config import PendingVM
from radops.errors import CloudError, NotFoundError, UsageError
from radops.gcp.compute import EXECUTOR_LABEL, MANAGED_LABEL, Template
from radops.gcp.create import candidate_zones, check_vm_name
from radops.gcp.provision import Provisioner
from radops.gcp.settings import GCPTarget, resolve_target
from radops.specs import GCPExecutorSpec, SSHExecutorSpec
from radops.store import ExecutorStore, config_dir
from tests.gce_fake import FakeGCE
from tests.test_gce_fake import Clients, make_clients

PROJECT = "test-project"
OTHER_PROJECT = "other-project"
ZONE = "us-central1-a"
IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
US_CENTRAL1 = ["us-central1-a", "us-central1-b", "us-central1-c"]
STEP = 0.02


@pytest.fixture(scope="module")
def stopping() -> Iterator[list[threading.Thread]]:
    """Fakes being stopped; the module waits for them at its end."""
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(5)


@pytest.fixture
def fake(stopping: list[threading.Thread]) -> Iterator[FakeGCE]:
    """A fresh fake per test (no state carries over), started on a free port."""
    gce = FakeGCE(project=PROJECT, ips=IPS, op_delay=STEP, boot_step=STEP)
    gce.add_template("cpu")
    gce.start()
    yield gce
    # stop() waits out the server's 50 ms poll: let that overlap the next test.
    thread = threading.Thread(target=gce.stop)
    thread.start()
    stopping.append(thread)


@pytest.fixture
def gce(fake: FakeGCE) -> Clients:
    """Google's own clients on the fake, to set the scene independently of radops."""
    return make_clients(fake, [])


@pytest.fixture
def target(fake: FakeGCE, monkeypatch: pytest.MonkeyPatch) -> GCPTarget:
    """The target radops resolves from the environment, as `radops executors gcp` does."""
    monkeypatch.setenv("RADOPS_GCP_API_ENDPOINT", fake.endpoint)
    monkeypatch.setenv("RADOPS_GCP_PROJECT", PROJECT)
    monkeypatch.setenv("RADOPS_GCP_ZONE", ZONE)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # google-auth must never probe a metadata server
    return resolve_target(ExecutorStore().load().settings)


@pytest.fixture
def prov(target: GCPTarget) -> Provisioner:
    return Provisioner(target, ExecutorStore())


def make_vm(gce: Clients, name: str, zone: str = ZONE, managed: bool = True) -> None:
    """A VM as radops' create inserts it (labels included), its insert operation done."""
    labels = {MANAGED_LABEL: "true", EXECUTOR_LABEL: name} if managed else {}
    op = gce.insert(name, template="global/instanceTemplates/cpu", zone=zone, labels=labels)
    gce.wait_done(op, zone=zone)


def wait_running(fake: FakeGCE, *names: str) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        vms = fake.instances()
        if all(vms[n]["status"] == "RUNNING" for n in names):
            return vms
        assert time.monotonic() < deadline, {n: vms[n]["status"] for n in names}
        time.sleep(STEP / 2)


def nat_ip(vm: dict[str, Any]) -> str:
    return str(vm["networkInterfaces"][0]["accessConfigs"][0]["natIP"])


def gcp_spec(name: str, zone: str = ZONE, project: str = PROJECT, **extra: Any) -> GCPExecutorSpec:
    return GCPExecutorSpec(
        name=name, hostname=extra.pop("hostname", "203.0.113.7"), username="me",
        project=project, zone=zone, instance=extra.pop("instance", name), **extra,
    )  # fmt: skip


def add_pending(name: str, zone: str = ZONE, project: str = PROJECT) -> None:
    with ExecutorStore().edit() as config:
        config.gcp_pending[name] = PendingVM(project=project, zone=zone, instance=name)


def pending_names() -> set[str]:
    return set(ExecutorStore().load().gcp_pending)


def recorder() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


# check_vm_name --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "vm1", "gpu-a100-2", "a" * 63, "x-0"])
def test_valid_vm_names_are_returned_unchanged(name: str) -> None:
    assert check_vm_name(name) == name


@pytest.mark.parametrize("name", ["Gpu1", "1gpu", "gpu-", "gpu_1", "-gpu", "gpu--A"])
def test_executor_names_that_compute_engine_refuses_say_so(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_vm_name(name)
    assert caught.value.message.startswith(f"invalid VM name {name!r}: Compute Engine wants")


@pytest.mark.parametrize("name", ["", "a" * 64, "gpu.1", "gpu 1", "gpu/1"])
def test_names_that_are_not_even_executor_names_fail_as_such(name: str) -> None:
    with pytest.raises(UsageError, match=r"^invalid executor name"):
        check_vm_name(name)


def test_the_builtin_executor_name_is_refused_before_any_vm_is_made() -> None:
    with pytest.raises(UsageError):
        check_vm_name("local")


# candidate_zones ------------------------------------------------------------------------------


def template(region: str | None = None) -> Template:
    scope = f"regions/{region}" if region else "global"
    return Template(
        name="t", url=f"projects/{PROJECT}/{scope}/instanceTemplates/t", region=region,
        machine_type="n1-standard-4",
    )  # fmt: skip


def test_given_zones_are_tried_in_order_without_asking_the_api(
    prov: Provisioner, fake: FakeGCE
) -> None:
    zones = ["us-central1-c", "europe-west4-a"]
    assert candidate_zones(prov.compute, template(), zones, any_zone=False) == zones
    assert candidate_zones(prov.compute, template("us-central1"), zones, False) == zones
    assert fake.requests() == []


def test_any_zone_with_a_regional_template_tries_every_zone_of_its_region(
    prov: Provisioner,
) -> None:
    assert candidate_zones(prov.compute, template("us-central1"), [], any_zone=True) == US_CENTRAL1


def test_any_zone_puts_the_given_zone_first_then_the_rest_of_its_region(
    prov: Provisioner,
) -> None:
    zones = candidate_zones(prov.compute, template(), ["us-central1-b"], any_zone=True)
    assert zones == ["us-central1-b", "us-central1-a", "us-central1-c"]
    assert candidate_zones(prov.compute, template(), ["europe-west4-a"], True) == ["europe-west4-a"]


def test_any_zone_with_several_given_zones_adds_only_the_missing_ones(
    prov: Provisioner, fake: FakeGCE
) -> None:
    fake.add_zone("us-central1-f", "us-central1")
    given = ["us-central1-c", "us-central1-a"]
    zones = candidate_zones(prov.compute, template("us-central1"), given, any_zone=True)
    assert zones == ["us-central1-c", "us-central1-a", "us-central1-b", "us-central1-f"]


def test_any_zone_without_a_region_to_name_is_a_usage_error(prov: Provisioner) -> None:
    with pytest.raises(UsageError, match="--any-zone needs a regional template or a --zone"):
        candidate_zones(prov.compute, template(), [], any_zone=True)


@pytest.mark.parametrize("region", [None, "us-central1"])
def test_no_zone_at_all_is_a_usage_error_with_a_hint(prov: Provisioner, region: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        candidate_zones(prov.compute, template(region), [], any_zone=False)
    assert caught.value.message == "no zone given"
    assert caught.value.hint is not None
    assert "--zone" in caught.value.hint and "RADOPS_GCP_ZONE" in caught.value.hint


# the target -----------------------------------------------------------------------------------


def test_a_plain_http_endpoint_from_the_environment_is_an_anonymous_target(
    target: GCPTarget, fake: FakeGCE
) -> None:
    assert target == GCPTarget(project=PROJECT, zone=ZONE, endpoint=fake.endpoint)
    assert target.anonymous


# overview (`gcp list`) ------------------------------------------------------------------------


def test_overview_sets_vms_and_executors_side_by_side_and_flags_each_mismatch(
    prov: Provisioner, gce: Clients, fake: FakeGCE
) -> None:
    make_vm(gce, "ok1")
    make_vm(gce, "orphan", zone="us-central1-b")
    make_vm(gce, "halfway", zone="europe-west4-a")
    make_vm(gce, "unmanaged", managed=False)
    store = ExecutorStore()
    store.add(gcp_spec("ok1"))
    store.add(gcp_spec("gone1", zone="us-central1-c"))
    store.add(gcp_spec("elsewhere", project=OTHER_PROJECT))  # another project's: not listed
    store.add(SSHExecutorSpec(name="box", hostname="box.example"))
    add_pending("halfway", zone="europe-west4-a")
    vms = wait_running(fake, "ok1", "orphan", "halfway")

    rows = [r.to_json() for r in prov.overview()]

    cost_keys = ("provisioning_model", "preempted_at", "autostop", "idle_seconds", "watcher")
    assert [r["provisioning_model"] for r in rows] == [None, "STANDARD", "STANDARD", "STANDARD"]
    assert all(r[k] is None for r in rows for k in cost_keys[1:])
    rows = [{k: v for k, v in r.items() if k not in cost_keys} for r in rows]
    assert rows == [
        {
            "name": "gone1", "zone": "us-central1-c", "status": "MISSING", "external_ip": None,
            "executor": "gone1", "problem": "VM is gone: `radops executors remove gone1`",
        },
        {
            "name": "halfway", "zone": "europe-west4-a", "status": "RUNNING",
            "external_ip": nat_ip(vms["halfway"]), "executor": None,
            "problem": "interrupted create: delete it with `radops executors gcp delete halfway`",
        },
        {
            "name": "ok1", "zone": ZONE, "status": "RUNNING", "external_ip": nat_ip(vms["ok1"]),
            "executor": "ok1", "problem": None,
        },
        {
            "name": "orphan", "zone": "us-central1-b", "status": "RUNNING",
            "external_ip": nat_ip(vms["orphan"]), "executor": None,
            "problem": "no executor: delete it with `radops executors gcp delete orphan`",
        },
    ]  # fmt: skip
    assert len({r["external_ip"] for r in rows[1:]}) == 3
    assert pending_names() == {"halfway"}  # its VM exists: the entry stays until it is deleted


def test_overview_reports_a_vm_still_booting_with_its_status_and_no_ip(
    prov: Provisioner, gce: Clients, fake: FakeGCE
) -> None:
    fake.boot_step = 5.0  # stays PROVISIONING for this whole test
    make_vm(gce, "booting")
    ExecutorStore().add(gcp_spec("booting"))
    [row] = [r.to_json() for r in prov.overview()]
    assert (row["status"], row["external_ip"], row["problem"]) == ("PROVISIONING", None, None)


def test_overview_drops_pending_entries_whose_vm_never_appeared(
    prov: Provisioner, gce: Clients
) -> None:
    make_vm(gce, "halfway")
    add_pending("halfway")
    add_pending("never", zone="us-central1-b")
    add_pending("theirs", project=OTHER_PROJECT)  # not this project's to judge

    rows = [r.to_json() for r in prov.overview()]

    assert [r["name"] for r in rows] == ["halfway"]
    assert pending_names() == {"halfway", "theirs"}


def test_overview_with_nothing_anywhere_is_empty_and_changes_nothing(prov: Provisioner) -> None:
    assert prov.overview() == []
    assert not ExecutorStore().path.exists()


# _locate --------------------------------------------------------------------------------------


def test_locate_takes_the_zone_from_the_executor_without_asking_the_api(
    prov: Provisioner, fake: FakeGCE
) -> None:
    spec = gcp_spec("gpu1", zone="us-central1-c", instance="radops-vm-7")
    ExecutorStore().add(spec)
    zone, found, _ = prov._locate("gpu1")
    assert zone == "us-central1-c"
    assert found is not None and found.instance == "radops-vm-7"
    assert fake.requests() == []


def test_locate_an_executor_of_another_project_works_in_that_project(
    prov: Provisioner,
) -> None:
    ExecutorStore().add(gcp_spec("theirs", zone="europe-west4-a", project=OTHER_PROJECT))
    zone, found, compute = prov._locate("theirs")
    assert (zone, found is not None) == ("europe-west4-a", True)
    assert compute.project == OTHER_PROJECT
    assert prov.target.project == prov.compute.project == PROJECT  # the default is untouched


def test_locate_takes_the_zone_from_a_pending_entry(prov: Provisioner, fake: FakeGCE) -> None:
    add_pending("halfway", zone="us-central1-b")
    assert prov._locate("halfway")[:2] == ("us-central1-b", None)
    assert fake.requests() == []


def test_locate_finds_a_managed_vm_without_executor_or_entry_in_any_zone(
    prov: Provisioner, gce: Clients
) -> None:
    make_vm(gce, "stray", zone="europe-west4-a")
    assert prov._locate("stray")[:2] == ("europe-west4-a", None)


def test_locate_ignores_vms_radops_did_not_make(prov: Provisioner, gce: Clients) -> None:
    make_vm(gce, "theirs", managed=False)
    with pytest.raises(NotFoundError) as caught:
        prov._locate("theirs")
    assert caught.value.message == "no GCP executor or radops VM named 'theirs'"
    assert caught.value.hint == "See `radops executors gcp list`."


def test_locate_of_an_unknown_name_is_not_found(prov: Provisioner) -> None:
    with pytest.raises(NotFoundError, match="no GCP executor or radops VM named 'nothing'"):
        prov._locate("nothing")


def test_a_non_gcp_executor_is_a_usage_error_and_stays(prov: Provisioner, fake: FakeGCE) -> None:
    ExecutorStore().add(SSHExecutorSpec(name="box", hostname="box.example"))
    with pytest.raises(UsageError, match=r"^executor 'box' is not a GCP executor \(kind ssh\)$"):
        prov._locate("box")
    lines, progress = recorder()
    with pytest.raises(UsageError):
        prov.delete("box", progress)
    assert lines == [] and fake.requests() == []
    assert "box" in ExecutorStore().load().executors


# delete ---------------------------------------------------------------------------------------


def test_delete_after_an_interrupted_create_deletes_the_vm_and_the_entry(
    prov: Provisioner, gce: Clients, fake: FakeGCE
) -> None:
    make_vm(gce, "halfway", zone="us-central1-b")
    add_pending("halfway", zone="us-central1-b")
    lines, progress = recorder()

    assert prov.delete("halfway", progress) is True

    assert lines == ["Deleting VM halfway in us-central1-b"]
    assert "halfway" not in fake.instances()
    assert pending_names() == set()


def test_delete_of_an_entry_whose_vm_never_appeared_drops_the_entry(
    prov: Provisioner, fake: FakeGCE
) -> None:
    add_pending("never", zone="us-central1-c")
    add_pending("other")
    lines, progress = recorder()

    assert prov.delete("never", progress) is False

    assert lines == ["Deleting VM never in us-central1-c"]
    path = f"/compute/v1/projects/{PROJECT}/zones/us-central1-c/instances/never"
    assert ("DELETE", path) in fake.requests()
    assert pending_names() == {"other"}


def test_delete_of_an_executor_whose_vm_is_gone_removes_it_and_its_host_keys(
    prov: Provisioner, fake: FakeGCE
) -> None:
    import paramiko

    from radops.ssh.hostkeys import edit_known_hosts, known_host_keys

    known_hosts = config_dir() / "known_hosts"
    key = paramiko.ECDSAKey.generate()
    with edit_known_hosts(known_hosts) as keys:
        keys.add("203.0.113.7", key.get_name(), key)
        keys.add("198.51.100.1", key.get_name(), key)
    ExecutorStore().add(gcp_spec("gone1", hostname="203.0.113.7", instance="radops-gone1"))
    ExecutorStore().add(gcp_spec("keep"))
    lines, progress = recorder()

    assert prov.delete("gone1", progress) is False

    assert lines == [f"Deleting VM gone1 in {ZONE}"]
    path = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/radops-gone1"
    assert ("DELETE", path) in fake.requests()  # the executor's instance name, not its own
    assert set(ExecutorStore().load().executors) == {"keep"}
    remaining = known_host_keys([known_hosts])
    assert remaining.lookup("203.0.113.7") is None
    assert remaining.lookup("198.51.100.1") is not None


def test_delete_of_a_stray_managed_vm_finds_its_zone_and_deletes_it(
    prov: Provisioner, gce: Clients, fake: FakeGCE
) -> None:
    make_vm(gce, "stray", zone="europe-west4-a")
    lines, progress = recorder()
    assert prov.delete("stray", progress) is True
    assert lines == ["Deleting VM stray in europe-west4-a"]
    assert fake.instances() == {}


def test_delete_of_an_entry_from_another_project_deletes_the_vm_in_that_project(
    gce: Clients, fake: FakeGCE, target: GCPTarget
) -> None:
    make_vm(gce, "halfway", zone="us-central1-b")
    add_pending("halfway", zone="us-central1-b", project=PROJECT)
    # The create was interrupted; the default project has changed since.
    prov = Provisioner(GCPTarget(OTHER_PROJECT, ZONE, target.endpoint), ExecutorStore())
    _, progress = recorder()
    deleted = prov.delete("halfway", progress)
    assert "halfway" not in fake.instances()
    assert deleted is True


# what the API returns is checked -----------------------------------------------------------


def test_an_external_ip_that_is_not_an_ip_is_refused(
    gce: Clients, fake: FakeGCE, prov: Provisioner
) -> None:
    fake.ips = ["203.0.113.9;touch${IFS}/tmp/x"]  # would become the executor's hostname
    make_vm(gce, "odd")
    wait_running(fake, "odd")
    with pytest.raises(CloudError, match="external IP that is not one"):
        prov.compute.get(ZONE, "odd")


def test_published_host_keys_are_read_through_the_real_client(
    gce: Clients, fake: FakeGCE, prov: Provisioner
) -> None:
    from google.cloud import compute_v1

    fake.host_keys = [("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIA==")]
    make_vm(gce, "plain")  # without guest attributes on, its agent publishes nothing
    enabled = compute_v1.Metadata(
        items=[compute_v1.Items(key="enable-guest-attributes", value="TRUE")]
    )
    fake.boot_step = 60.0  # stays PROVISIONING while it is looked at, however slow the machine
    op = gce.insert("booting", template="global/instanceTemplates/cpu", metadata=enabled)
    gce.wait_done(op)
    assert prov.compute.host_keys(ZONE, "booting") == []  # not RUNNING yet
    fake.boot_step = STEP
    op = gce.insert("keys", template="global/instanceTemplates/cpu", metadata=enabled)
    gce.wait_done(op)
    wait_running(fake, "keys", "plain")
    assert prov.compute.host_keys(ZONE, "keys") == fake.host_keys
    assert prov.compute.host_keys(ZONE, "plain") == []
