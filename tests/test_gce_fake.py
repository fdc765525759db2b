"""The fake Compute Engine API, driven by the real google-cloud-compute client (REST transport)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.gce_fake import FakeGCE, parse_filter

PROJECT = "test-project"
ZONE = "us-central1-a"
STEP = 0.05
A100_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu121"


@dataclass
class Clients:
    fake: FakeGCE
    keys: list[tuple[str, str]]
    instances: compute_v1.InstancesClient
    templates: compute_v1.InstanceTemplatesClient
    region_templates: compute_v1.RegionInstanceTemplatesClient
    operations: compute_v1.ZoneOperationsClient
    zones: compute_v1.ZonesClient
    regions: compute_v1.RegionsClient

    def insert(
        self,
        name: str,
        template: str = "global/instanceTemplates/a100",
        zone: str = ZONE,
        **instance: Any,
    ) -> compute_v1.Operation:
        request = compute_v1.InsertInstanceRequest(
            project=PROJECT,
            zone=zone,
            instance_resource=compute_v1.Instance(name=name, **instance),
            source_instance_template=template,
        )
        return self.instances.insert_unary(request=request)

    def wait_done(self, op: compute_v1.Operation, zone: str = ZONE) -> compute_v1.Operation:
        deadline = time.monotonic() + 10
        while op.status != compute_v1.Operation.Status.DONE:
            assert time.monotonic() < deadline, f"operation {op.name} never finished"
            op = self.operations.wait(project=PROJECT, zone=zone, operation=op.name)
        return op

    def get(self, name: str, zone: str = ZONE) -> compute_v1.Instance:
        return self.instances.get(project=PROJECT, zone=zone, instance=name)

    def watch(self, name: str, until: str, zone: str = ZONE) -> list[compute_v1.Instance]:
        """Poll the instance until it reaches `until`; every distinct status seen, in order."""
        seen: list[compute_v1.Instance] = []
        deadline = time.monotonic() + 10
        while not seen or seen[-1].status != until:
            assert time.monotonic() < deadline, f"{name} never reached {until}: {seen}"
            instance = self.get(name, zone)
            if not seen or seen[-1].status != instance.status:
                seen.append(instance)
            time.sleep(0.005)
        return seen


def make_clients(fake: FakeGCE, keys: list[tuple[str, str]]) -> Clients:
    opts = ClientOptions(api_endpoint=fake.endpoint)
    creds = AnonymousCredentials()  # type: ignore[no-untyped-call]

    def build(cls: Callable[..., Any]) -> Any:
        return cls(credentials=creds, client_options=opts)

    return Clients(
        fake=fake,
        keys=keys,
        instances=build(compute_v1.InstancesClient),
        templates=build(compute_v1.InstanceTemplatesClient),
        region_templates=build(compute_v1.RegionInstanceTemplatesClient),
        operations=build(compute_v1.ZoneOperationsClient),
        zones=build(compute_v1.ZonesClient),
        regions=build(compute_v1.RegionsClient),
    )


def gce(step: float = STEP) -> Iterator[Clients]:
    keys: list[tuple[str, str]] = []
    fake = FakeGCE(
        project=PROJECT,
        on_ssh_keys=lambda name, value: keys.append((name, value)),
        op_delay=step,
        boot_step=step,
    )
    fake.add_template(
        "a100",
        machine_type="a2-highgpu-1g",
        gpu_type="nvidia-tesla-a100",
        gpu_count=1,
        image=A100_IMAGE,
        labels={"team": "ml"},
        metadata={"startup-script": "echo hi"},
    )
    fake.add_template("cpu")
    fake.add_template(
        "l4", region="us-central1", machine_type="g2-standard-4", gpu_type="nvidia-l4"
    )
    with fake:
        yield make_clients(fake, keys)


@pytest.fixture
def c() -> Iterator[Clients]:
    yield from gce()


@pytest.fixture
def slow() -> Iterator[Clients]:
    """Steps long enough that every intermediate status is surely observed."""
    yield from gce(step=0.2)


def error_reason(e: exceptions.GoogleAPICallError) -> str:
    return str(e.errors[0]["reason"])


def test_templates_global_regional_and_aggregated(c: Clients) -> None:
    names = [t.name for t in c.templates.list(project=PROJECT)]
    assert names == ["a100", "cpu"]

    t = c.templates.get(project=PROJECT, instance_template="a100")
    assert t.self_link.endswith(f"/projects/{PROJECT}/global/instanceTemplates/a100")
    assert t.properties.machine_type == "a2-highgpu-1g"
    gpu = t.properties.guest_accelerators[0]
    assert (gpu.accelerator_type, gpu.accelerator_count) == ("nvidia-tesla-a100", 1)
    disk = t.properties.disks[0]
    assert disk.boot and disk.initialize_params.source_image == A100_IMAGE
    nat = t.properties.network_interfaces[0].access_configs[0]
    assert (nat.name, nat.type_) == ("External NAT", "ONE_TO_ONE_NAT")
    assert dict(t.properties.labels) == {"team": "ml"}
    assert [(i.key, i.value) for i in t.properties.metadata.items] == [
        ("startup-script", "echo hi")
    ]
    assert not t.region

    regional = list(c.region_templates.list(project=PROJECT, region="us-central1"))
    assert [t.name for t in regional] == ["l4"]
    assert list(c.region_templates.list(project=PROJECT, region="europe-west4")) == []
    l4 = c.region_templates.get(project=PROJECT, region="us-central1", instance_template="l4")
    assert l4.region.endswith(f"/projects/{PROJECT}/regions/us-central1")
    assert l4.properties.guest_accelerators[0].accelerator_count == 1

    scopes = dict(c.templates.aggregated_list(project=PROJECT))
    assert [t.name for t in scopes["global"].instance_templates] == ["a100", "cpu"]
    assert [t.name for t in scopes["regions/us-central1"].instance_templates] == ["l4"]
    assert scopes["regions/europe-west4"].warning.code == "NO_RESULTS_ON_PAGE"

    with pytest.raises(exceptions.NotFound) as e:
        c.templates.get(project=PROJECT, instance_template="nope")
    assert error_reason(e.value) == "notFound"
    with pytest.raises(exceptions.NotFound):
        c.region_templates.get(project=PROJECT, region="europe-west4", instance_template="l4")


def test_zones_and_regions(c: Clients) -> None:
    c.fake.add_zone("asia-east1-b", "asia-east1")
    zones = {z.name: z for z in c.zones.list(project=PROJECT)}
    assert set(zones) == {
        "us-central1-a",
        "us-central1-b",
        "us-central1-c",
        "europe-west4-a",
        "asia-east1-b",
    }
    zone = c.zones.get(project=PROJECT, zone="us-central1-b")
    assert zone.status == "UP" and zone.region.endswith("/regions/us-central1")
    region = c.regions.get(project=PROJECT, region="us-central1")
    assert [z.rsplit("/", 1)[-1] for z in region.zones] == [
        "us-central1-a",
        "us-central1-b",
        "us-central1-c",
    ]
    with pytest.raises(exceptions.NotFound):
        c.zones.get(project=PROJECT, zone="mars-1a")


def test_insert_from_template_boots_and_gets_an_ip_only_when_running(slow: Clients) -> None:
    c = slow
    metadata = compute_v1.Metadata(
        items=[compute_v1.Items(key="ssh-keys", value="me:ssh-ed25519 K")]
    )
    op = c.insert("vm1", labels={"radops-executor": "vm1"}, metadata=metadata)
    assert op.status == compute_v1.Operation.Status.RUNNING
    assert (op.operation_type, op.kind) == ("insert", "compute#operation")
    assert op.target_link.endswith(f"/projects/{PROJECT}/zones/{ZONE}/instances/vm1")
    assert op.zone.endswith(f"/zones/{ZONE}")
    # The SSH keys reach the rig before insert returns.
    assert c.keys == [("vm1", "me:ssh-ed25519 K")]

    got = c.operations.get(project=PROJECT, zone=ZONE, operation=op.name)
    assert got.status == compute_v1.Operation.Status.RUNNING
    done = c.wait_done(op)
    assert done.progress == 100 and not done.error.errors and not done.http_error_status_code

    seen = c.watch("vm1", "RUNNING")
    statuses = [i.status for i in seen]
    assert statuses[-1] == "RUNNING"
    assert "PROVISIONING" in statuses or "STAGING" in statuses
    assert statuses == [s for s in ("PROVISIONING", "STAGING", "RUNNING") if s in statuses]
    for instance in seen:
        config = instance.network_interfaces[0].access_configs[0]
        has_ip = "nat_i_p" in config
        assert has_ip == (instance.status == "RUNNING"), instance.status
    vm = seen[-1]
    assert vm.network_interfaces[0].access_configs[0].nat_i_p == "127.0.0.22"
    assert vm.machine_type.endswith(f"/zones/{ZONE}/machineTypes/a2-highgpu-1g")
    assert vm.guest_accelerators[0].accelerator_type.endswith("/acceleratorTypes/nvidia-tesla-a100")
    assert vm.guest_accelerators[0].accelerator_count == 1
    assert vm.disks[0].boot
    assert dict(vm.labels) == {"team": "ml", "radops-executor": "vm1"}
    items = {i.key: i.value for i in vm.metadata.items}
    assert items == {"startup-script": "echo hi", "ssh-keys": "me:ssh-ed25519 K"}
    assert c.fake.instances()["vm1"]["status"] == "RUNNING"


def test_first_status_after_insert_is_provisioning(slow: Clients) -> None:
    slow.insert("vm1")
    assert slow.get("vm1").status == "PROVISIONING"
    assert "nat_i_p" not in slow.get("vm1").network_interfaces[0].access_configs[0]


def test_operation_wait_returns_running_when_not_finished(c: Clients) -> None:
    c.fake.op_delay = 5.0
    c.fake.wait_timeout = 0.1
    op = c.insert("vm1")
    waited = c.operations.wait(project=PROJECT, zone=ZONE, operation=op.name)
    assert waited.status == compute_v1.Operation.Status.RUNNING
    with pytest.raises(exceptions.NotFound):
        c.operations.get(project=PROJECT, zone=ZONE, operation="operation-nope")


def test_insert_accepts_full_urls_and_regional_templates(c: Clients) -> None:
    url = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/instanceTemplates/cpu"
    c.wait_done(c.insert("vm1", template=url))
    assert c.get("vm1").machine_type.endswith("/machineTypes/n1-standard-4")

    c.wait_done(
        c.insert("vm2", template=f"projects/{PROJECT}/regions/us-central1/instanceTemplates/l4")
    )
    assert c.get("vm2").guest_accelerators[0].accelerator_type.endswith("/nvidia-l4")

    with pytest.raises(exceptions.BadRequest):  # a regional template only serves its region
        c.insert("vm3", template="regions/us-central1/instanceTemplates/l4", zone="europe-west4-a")


def test_set_metadata_checks_the_fingerprint(c: Clients) -> None:
    c.wait_done(c.insert("vm1"))
    stale = c.get("vm1").metadata.fingerprint
    assert stale

    items = [compute_v1.Items(key="ssh-keys", value="u:ssh-ed25519 A")]
    op = c.instances.set_metadata_unary(
        project=PROJECT,
        zone=ZONE,
        instance="vm1",
        metadata_resource=compute_v1.Metadata(fingerprint=stale, items=items),
    )
    assert op.operation_type == "setMetadata"
    c.wait_done(op)
    assert c.keys == [("vm1", "u:ssh-ed25519 A")]
    fresh = c.get("vm1").metadata
    assert fresh.fingerprint != stale
    assert [(i.key, i.value) for i in fresh.items] == [("ssh-keys", "u:ssh-ed25519 A")]

    with pytest.raises(exceptions.PreconditionFailed) as e:
        c.instances.set_metadata_unary(
            project=PROJECT,
            zone=ZONE,
            instance="vm1",
            metadata_resource=compute_v1.Metadata(fingerprint=stale, items=items),
        )
    assert error_reason(e.value) == "conditionNotMet"
    assert len(c.keys) == 1


def test_quota_at_insert_is_forbidden_and_leaves_nothing(c: Clients) -> None:
    c.fake.fail_insert(ZONE, "quota")
    with pytest.raises(exceptions.Forbidden) as e:
        c.insert("vm1")
    assert error_reason(e.value) == "quotaExceeded"
    assert e.value.errors[0]["domain"] == "usageLimits"
    assert "Quota 'NVIDIA_A100_GPUS' exceeded. Limit: 0.0 in region us-central1." in str(e.value)
    assert c.fake.instances() == {}
    c.wait_done(c.insert("vm1"))  # only the next insert fails
    assert "vm1" in c.fake.instances()


def test_quota_in_the_operation(c: Clients) -> None:
    c.fake.fail_insert(ZONE, "quota_operation")
    op = c.insert("vm1")
    assert op.status == compute_v1.Operation.Status.RUNNING
    done = c.wait_done(op)
    assert done.error.errors[0].code == "QUOTA_EXCEEDED"
    assert "NVIDIA_A100_GPUS" in done.error.errors[0].message
    assert done.http_error_status_code == 403
    with pytest.raises(exceptions.NotFound):
        c.get("vm1")
    assert c.keys == [] and c.fake.instances() == {}


def test_capacity_fails_the_operation_and_another_zone_works(c: Clients) -> None:
    c.fake.fail_insert(ZONE, "capacity")
    done = c.wait_done(c.insert("vm1"))
    error = done.error.errors[0]
    assert error.code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert error.message == (
        f"The zone 'projects/{PROJECT}/zones/{ZONE}' does not have enough resources available "
        "to fulfill the request."
    )
    assert (done.http_error_status_code, done.http_error_message) == (503, "SERVICE UNAVAILABLE")
    assert c.fake.instances() == {}

    c.wait_done(c.insert("vm1", zone="us-central1-b"), zone="us-central1-b")
    vm = c.watch("vm1", "RUNNING", zone="us-central1-b")[-1]
    # A failed insert does not use up an address.
    assert vm.network_interfaces[0].access_configs[0].nat_i_p == "127.0.0.22"


def test_unknown_template_conflicts_and_invalid_names(c: Clients) -> None:
    with pytest.raises(exceptions.NotFound) as e:
        c.insert("vm1", template="global/instanceTemplates/nope")
    assert error_reason(e.value) == "notFound"
    assert f"projects/{PROJECT}/global/instanceTemplates/nope" in str(e.value)
    assert c.fake.instances() == {}

    c.insert("vm1")
    with pytest.raises(exceptions.Conflict) as conflict:
        c.insert("vm1")
    assert error_reason(conflict.value) == "alreadyExists"

    with pytest.raises(exceptions.BadRequest):
        c.insert("Bad_Name")
    with pytest.raises(exceptions.BadRequest):
        c.insert("vm2", labels={"owner": "Has.Dots"})
    with pytest.raises(exceptions.NotFound):
        c.insert("vm3", zone="mars-1a")


def test_stop_and_start_give_a_new_ip(c: Clients) -> None:
    c.wait_done(c.insert("vm1"))
    first = c.watch("vm1", "RUNNING")[-1].network_interfaces[0].access_configs[0].nat_i_p

    op = c.instances.stop_unary(project=PROJECT, zone=ZONE, instance="vm1")
    assert op.operation_type == "stop"
    c.wait_done(op)
    stopped = c.watch("vm1", "TERMINATED")[-1]
    assert "nat_i_p" not in stopped.network_interfaces[0].access_configs[0]
    assert stopped.last_stop_timestamp

    c.wait_done(c.instances.start_unary(project=PROJECT, zone=ZONE, instance="vm1"))
    seen = c.watch("vm1", "RUNNING")
    assert all(i.status in ("STAGING", "RUNNING") for i in seen)
    second = seen[-1].network_interfaces[0].access_configs[0].nat_i_p
    assert (first, second) == ("127.0.0.22", "127.0.0.23")


def test_delete_removes_the_instance(c: Clients) -> None:
    c.wait_done(c.insert("vm1"))
    op = c.instances.delete_unary(project=PROJECT, zone=ZONE, instance="vm1")
    assert op.operation_type == "delete"
    c.wait_done(op)
    with pytest.raises(exceptions.NotFound) as e:
        c.get("vm1")
    assert error_reason(e.value) == "notFound"
    assert c.fake.instances() == {}
    with pytest.raises(exceptions.NotFound):
        c.instances.delete_unary(project=PROJECT, zone=ZONE, instance="vm1")


def test_list_filter_aggregated_and_paging(c: Clients) -> None:
    c.insert("vm1", labels={"radops-managed": "true"})
    c.insert("vm2")
    c.insert("vm3", labels={"radops-managed": "true"}, zone="europe-west4-a")

    everything = [i.name for i in c.instances.list(project=PROJECT, zone=ZONE)]
    assert everything == ["vm1", "vm2"]
    managed = compute_v1.ListInstancesRequest(
        project=PROJECT, zone=ZONE, filter="labels.radops-managed=true"
    )
    assert [i.name for i in c.instances.list(request=managed)] == ["vm1"]
    paged = compute_v1.ListInstancesRequest(project=PROJECT, zone=ZONE, max_results=1)
    assert [i.name for i in c.instances.list(request=paged)] == ["vm1", "vm2"]

    request = compute_v1.AggregatedListInstancesRequest(
        project=PROJECT, filter="labels.radops-managed = true"
    )
    scopes = {
        scope: [i.name for i in scoped.instances]
        for scope, scoped in c.instances.aggregated_list(request=request)
    }
    assert scopes["zones/us-central1-a"] == ["vm1"]
    assert scopes["zones/europe-west4-a"] == ["vm3"]
    assert scopes["zones/us-central1-b"] == []

    with pytest.raises(exceptions.BadRequest):
        bad = compute_v1.ListInstancesRequest(project=PROJECT, zone=ZONE, filter="labels.x ~~ y")
        list(c.instances.list(request=bad))


def test_filter_expressions() -> None:
    vm = {"name": "vm1", "status": "RUNNING", "labels": {"a": "1", "b-c": "x"}}
    assert parse_filter("")(vm)
    assert parse_filter('labels.a = "1" AND status = RUNNING')(vm)
    assert parse_filter("(labels.a = 2) OR (labels.b-c = x)")(vm)
    assert not parse_filter("(labels.a = 2) (labels.b-c = x)")(vm)
    assert parse_filter("labels.b-c:*")(vm) and not parse_filter("labels.z:*")(vm)
    assert parse_filter("labels.z != 1")(vm)
    assert parse_filter("name eq vm.*")(vm) and parse_filter("name ne other")(vm)


def test_request_log_and_request_ids(c: Clients) -> None:
    request = compute_v1.InsertInstanceRequest(
        project=PROJECT,
        zone=ZONE,
        instance_resource=compute_v1.Instance(name="vm1"),
        source_instance_template="global/instanceTemplates/cpu",
        request_id="3f1c7a52-0000-4000-8000-000000000001",
    )
    first = c.instances.insert_unary(request=request)
    again = c.instances.insert_unary(request=request)  # a retried request is not a conflict
    assert first.name == again.name
    path = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances"
    assert c.fake.requests() == [("POST", path), ("POST", path)]


def test_wrong_project_is_not_found(c: Clients) -> None:
    with pytest.raises(exceptions.NotFound):
        c.templates.get(project="other-project", instance_template="a100")


def test_control_surface_validation() -> None:
    with pytest.raises(ValueError):
        FakeGCE().fail_insert(ZONE, "meteor")
    with pytest.raises(ValueError):
        FakeGCE(ips=[])
    fake = FakeGCE()
    assert fake.endpoint == ""
    fake.start()
    try:
        assert fake.endpoint.startswith("http://127.0.0.1:")
    finally:
        fake.stop()
    fake.stop()  # idempotent


# scheduling, spot and preemption --------------------------------------------------------------


def spot(**extra: Any) -> compute_v1.Scheduling:
    fields: dict[str, Any] = {
        "provisioning_model": "SPOT",
        "instance_termination_action": "STOP",
        "automatic_restart": False,
        "on_host_maintenance": "TERMINATE",
    }
    return compute_v1.Scheduling(mapping={**fields, **extra})


def test_scheduling_comes_from_the_template_or_the_request(c: Clients) -> None:
    c.wait_done(c.insert("std"))
    template = c.templates.get(project=PROJECT, instance_template="a100")
    assert template.properties.scheduling.provisioning_model == "STANDARD"
    assert c.get("std").scheduling.on_host_maintenance == "TERMINATE"
    assert c.get("std").scheduling.provisioning_model == "STANDARD"
    c.wait_done(c.insert("cheap", scheduling=spot()))
    scheduling = c.get("cheap").scheduling
    assert scheduling.provisioning_model == "SPOT"
    assert scheduling.instance_termination_action == "STOP"
    assert scheduling.automatic_restart is False


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"automatic_restart": True}, "automaticRestart"),
        ({"on_host_maintenance": "MIGRATE"}, "onHostMaintenance"),
        ({"instance_termination_action": "HIBERNATE"}, "instanceTerminationAction"),
    ],
)
def test_spot_rules_are_enforced(c: Clients, extra: dict[str, Any], field: str) -> None:
    with pytest.raises(exceptions.BadRequest) as caught:
        c.insert("bad", scheduling=spot(**extra))
    assert field in str(caught.value.message) and error_reason(caught.value) == "invalid"
    assert "bad" not in c.fake.instances()


def preemptions(c: Clients, name: str) -> list[compute_v1.Operation]:
    url = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{name}"
    request = compute_v1.ListZoneOperationsRequest(
        project=PROJECT,
        zone=ZONE,
        filter=f'operationType="compute.instances.preempted" AND targetLink="{url}"',
    )
    return list(c.operations.list(request=request))


def test_preemption_stops_a_spot_vm_and_leaves_an_operation(c: Clients) -> None:
    c.wait_done(c.insert("cheap", scheduling=spot()))
    c.wait_done(c.insert("other", scheduling=spot()))
    c.watch("cheap", "RUNNING")
    c.wait_done(c.insert("std"))
    with pytest.raises(ValueError, match="not a SPOT VM"):
        c.fake.preempt("std")
    c.fake.preempt("cheap")
    stopped = c.watch("cheap", "TERMINATED")[-1]
    assert stopped.last_stop_timestamp
    found = preemptions(c, "cheap")
    assert [op.status for op in found] == [compute_v1.Operation.Status.DONE]
    assert found[0].insert_time >= stopped.last_start_timestamp
    assert preemptions(c, "other") == []
    c.wait_done(c.instances.start_unary(project=PROJECT, zone=ZONE, instance="cheap"))
    assert c.watch("cheap", "RUNNING")[-1].last_start_timestamp > found[0].insert_time


def test_preemption_deletes_a_spot_vm_whose_action_is_delete(c: Clients) -> None:
    c.wait_done(c.insert("gone", scheduling=spot(instance_termination_action="DELETE")))
    c.fake.preempt("gone")
    assert "gone" not in c.fake.instances()


def test_a_guest_shutdown_over_http_terminates_the_vm(c: Clients) -> None:
    import urllib.request

    c.wait_done(c.insert("vm1"))
    c.watch("vm1", "RUNNING")
    url = f"{c.fake.endpoint}/fake/zones/{ZONE}/instances/vm1/guestShutdown"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as r:
        assert r.status == 200
    seen = [i.status for i in c.watch("vm1", "TERMINATED")]
    assert seen[0] in ("RUNNING", "STOPPING") and seen[-1] == "TERMINATED"
    assert preemptions(c, "vm1") == []  # a stop from inside is no preemption
