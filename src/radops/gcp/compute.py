"""A thin layer over google-cloud-compute: one client set per command, Google errors made ours."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from radops.errors import CloudError, NotFoundError
from radops.gcp.google_errors import google_errors, last_part, operation_error
from radops.gcp.settings import GCPTarget

MANAGED_LABEL = "radops-managed"
EXECUTOR_LABEL = "radops-executor"
OPERATION_TIMEOUT_S = 600


@dataclass(frozen=True)
class Template:
    name: str
    url: str
    region: str | None  # None for a global template
    machine_type: str
    gpus: list[tuple[str, int]] = field(default_factory=list)
    image: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # The template's scheduling (snake_case field names), the base of a spot VM's.
    scheduling: dict[str, Any] = field(default_factory=dict)

    def gpu_text(self) -> str:
        return ", ".join(f"{kind} x {count}" for kind, count in self.gpus) or "-"


@dataclass(frozen=True)
class VM:
    name: str
    zone: str
    status: str
    external_ip: str | None
    labels: dict[str, str]
    metadata: dict[str, str]
    fingerprint: str
    self_link: str = ""
    provisioning_model: str = "STANDARD"  # or SPOT
    last_start: str | None = None  # RFC 3339 timestamps, as Compute Engine gives them
    last_stop: str | None = None

    @property
    def spot(self) -> bool:
        return self.provisioning_model == "SPOT"


def spot_scheduling(template: Template) -> dict[str, Any]:
    """The template's scheduling made spot: Compute Engine may reclaim the VM at any time and
    then stops it (disk kept); spot VMs cannot restart themselves or live-migrate."""
    # `preemptible` is the older kind of spot VM: SPOT replaces it.
    scheduling = {k: v for k, v in template.scheduling.items() if k != "preemptible"}
    scheduling.update(
        provisioning_model="SPOT",
        instance_termination_action="STOP",
        automatic_restart=False,
        on_host_maintenance="TERMINATE",
    )
    return scheduling


class Compute:
    """The Compute Engine calls radops makes, for one project."""

    def __init__(self, target: GCPTarget) -> None:
        self.target = target
        self.project = target.project
        self._clients: dict[str, Any] = {}
        self._options: dict[str, Any] | None = None
        self._templates: list[Template] | None = None

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            from google.cloud import compute_v1

            with google_errors("connecting to Compute Engine"):
                self._clients[name] = getattr(compute_v1, name)(**self._client_args())
        return self._clients[name]

    def _client_args(self) -> dict[str, Any]:
        if self._options is None:
            from google.api_core.client_options import ClientOptions

            args: dict[str, Any] = {}
            if self.target.endpoint:
                args["client_options"] = ClientOptions(api_endpoint=self.target.endpoint)
            if self.target.anonymous:
                from google.auth.credentials import AnonymousCredentials

                args["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
            else:
                import google.auth

                # Fails here, with a clear message, rather than on the first call.
                args["credentials"] = google.auth.default()[0]
            self._options = args
        return self._options

    # Templates -----------------------------------------------------------------------------

    def templates(self) -> list[Template]:
        """Every instance template in the project, global and regional (listed once per
        command: `gcp create` looks a template up more than once)."""
        if self._templates is None:
            self._templates = self._list_templates()
        return self._templates

    def _list_templates(self) -> list[Template]:
        found: list[Template] = []
        with google_errors("listing instance templates"):
            pager = self._client("InstanceTemplatesClient").aggregated_list(project=self.project)
            for _scope, scoped in pager:
                found += [_template(t) for t in scoped.instance_templates]
        return sorted(found, key=lambda t: (t.name, t.region or ""))

    def template(self, name: str) -> Template:
        matches = [t for t in self.templates() if t.name == name]
        if not matches:
            raise NotFoundError(
                f"unknown instance template {name!r} in project {self.project}",
                "List them with `radops executors gcp list-templates`.",
            )
        return matches[0]  # global before regional: sorted by region, None first

    def zones_in_region(self, region: str) -> list[str]:
        with google_errors(f"listing the zones of {region}"):
            found = self._client("RegionsClient").get(project=self.project, region=region)
        return sorted(last_part(z) for z in found.zones)

    # Instances -----------------------------------------------------------------------------

    def get(self, zone: str, name: str) -> VM | None:
        from google.api_core import exceptions as gexc

        with google_errors(f"looking up VM {name}"):
            try:
                inst = self._client("InstancesClient").get(
                    project=self.project, zone=zone, instance=name
                )
            except gexc.NotFound:
                return None
        return _vm(inst)

    def running(self, zone: str, name: str) -> VM | None:
        """The VM once it runs with an external IP; None while it boots. Gone: CloudError."""
        vm = self.get(zone, name)
        if vm is None:
            raise CloudError(f"VM {name} disappeared while booting")
        return vm if vm.status == "RUNNING" and vm.external_ip is not None else None

    def host_keys(self, zone: str, name: str) -> list[tuple[str, str]]:
        """The SSH host keys the VM's guest agent published (guest attributes `hostkeys/`):
        (key type, base64 blob) pairs; none while it has not (yet), or if its image does not."""
        from google.api_core import exceptions as gexc
        from google.cloud import compute_v1

        request = compute_v1.GetGuestAttributesInstanceRequest(
            project=self.project, zone=zone, instance=name, query_path="hostkeys/"
        )
        with google_errors(f"reading the host keys VM {name} published"):
            try:
                found = self._client("InstancesClient").get_guest_attributes(request=request)
            except gexc.NotFound:
                return []
        items = found.query_value.items if found.query_value else []
        return [(str(i.key), str(i.value)) for i in items if i.namespace == "hostkeys"]

    def managed(self) -> list[VM]:
        """Every radops-managed VM in the project, in any zone."""
        vms: list[VM] = []
        with google_errors("listing VMs"):
            from google.cloud import compute_v1

            request = compute_v1.AggregatedListInstancesRequest(
                project=self.project, filter=f"labels.{MANAGED_LABEL} = true"
            )
            pager = self._client("InstancesClient").aggregated_list(request=request)
            for _scope, scoped in pager:
                vms += [_vm(i) for i in scoped.instances]
        return sorted(
            (v for v in vms if v.labels.get(MANAGED_LABEL) == "true"), key=lambda v: v.name
        )

    def insert(
        self,
        zone: str,
        name: str,
        template: Template,
        labels: dict[str, str],
        metadata: dict[str, str],
        scheduling: dict[str, Any] | None = None,
    ) -> Any:
        """Ask for VM `name` from `template`; return the operation (not yet waited on).
        `scheduling` replaces the template's (give all of it, e.g. `spot_scheduling`)."""
        from google.cloud import compute_v1

        items = [compute_v1.Items(key=k, value=v) for k, v in metadata.items()]
        instance = compute_v1.Instance(
            name=name, labels=labels, metadata=compute_v1.Metadata(items=items)
        )
        if scheduling is not None:
            instance.scheduling = compute_v1.Scheduling(mapping=scheduling)
        request = compute_v1.InsertInstanceRequest(
            project=self.project,
            zone=zone,
            source_instance_template=template.url,
            instance_resource=instance,
        )
        with google_errors(f"creating VM {name} in {zone}"):
            return self._client("InstancesClient").insert_unary(request=request)

    def delete(self, zone: str, name: str) -> bool:
        """Delete the VM; False if it was already gone."""
        from google.api_core import exceptions as gexc

        with google_errors(f"deleting VM {name}"):
            try:
                op = self._client("InstancesClient").delete_unary(
                    project=self.project, zone=zone, instance=name
                )
            except gexc.NotFound:
                return False
        self.wait(zone, op, f"deleting VM {name}")
        return True

    def stop(self, zone: str, name: str) -> None:
        with google_errors(f"stopping VM {name}"):
            op = self._client("InstancesClient").stop_unary(
                project=self.project, zone=zone, instance=name
            )
        self.wait(zone, op, f"stopping VM {name}")

    def start(self, zone: str, name: str) -> None:
        with google_errors(f"starting VM {name}"):
            op = self._client("InstancesClient").start_unary(
                project=self.project, zone=zone, instance=name
            )
        self.wait(zone, op, f"starting VM {name}")

    def set_metadata(self, zone: str, vm: VM, metadata: dict[str, str]) -> None:
        """Replace the VM's metadata with `metadata`, if nobody changed it since `vm` was read
        (Compute Engine refuses a stale fingerprint)."""
        from google.cloud import compute_v1

        items = [compute_v1.Items(key=k, value=v) for k, v in metadata.items()]
        body = compute_v1.Metadata(items=items, fingerprint=vm.fingerprint)
        with google_errors(f"changing the metadata of VM {vm.name}"):
            op = self._client("InstancesClient").set_metadata_unary(
                project=self.project, zone=zone, instance=vm.name, metadata_resource=body
            )
        self.wait(zone, op, f"changing the metadata of VM {vm.name}")

    def preempted_at(self, vm: VM) -> str | None:
        """When Compute Engine preempted `vm` since it last started (its zone's operations of
        type compute.instances.preempted), or None."""
        from google.cloud import compute_v1

        request = compute_v1.ListZoneOperationsRequest(
            project=self.project,
            zone=vm.zone,
            filter=f'operationType="compute.instances.preempted" AND targetLink="{vm.self_link}"',
        )
        with google_errors(f"reading the operations of VM {vm.name}"):
            times = [
                op.insert_time
                for op in self._client("ZoneOperationsClient").list(request=request)
                if op.target_link == vm.self_link
            ]
        latest: str | None = max((str(t) for t in times), default=None)
        if latest is None or (vm.last_start and _instant(latest) < _instant(vm.last_start)):
            return None
        return latest

    def wait(self, zone: str, op: Any, what: str, timeout: float = OPERATION_TIMEOUT_S) -> None:
        """Wait for a zone operation to finish; raise its error.

        ExtendedOperation.result() would poll through a client without our endpoint, and
        `wait` returns (without raising) after about two minutes, so loop it until DONE.
        """
        from google.cloud import compute_v1

        client = self._client("ZoneOperationsClient")
        deadline = time.monotonic() + timeout
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise CloudError(f"{what} did not finish within {timeout:.0f}s")
            with google_errors(what):
                op = client.wait(project=self.project, zone=zone, operation=op.name)
        if (op.error and op.error.errors) or op.http_error_status_code >= 400:
            raise operation_error(op, what)


def _template(t: Any) -> Template:
    props = t.properties
    boot = [d for d in props.disks if d.boot]
    image = boot[0].initialize_params.source_image if boot else ""
    return Template(
        name=t.name,
        url=t.self_link,
        region=last_part(t.region) if t.region else None,
        machine_type=last_part(props.machine_type),
        gpus=[
            (last_part(g.accelerator_type), g.accelerator_count) for g in props.guest_accelerators
        ],
        image=image,
        metadata={item.key: item.value for item in props.metadata.items},
        scheduling=type(props.scheduling).to_dict(props.scheduling),
    )


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _vm(inst: Any) -> VM:
    ip = None
    for nic in inst.network_interfaces:
        for access in nic.access_configs:
            ip = ip or access.nat_i_p or None
    if ip is not None:
        # It becomes an executor's hostname, so only an IP address is taken.
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise CloudError(
                f"Compute Engine gave VM {inst.name} an external IP that is not one: {ip!r}"
            ) from None
    return VM(
        name=inst.name,
        zone=last_part(inst.zone),
        status=inst.status,
        external_ip=ip,
        labels=dict(inst.labels),
        metadata={item.key: item.value for item in inst.metadata.items},
        fingerprint=inst.metadata.fingerprint,
        self_link=inst.self_link,
        provisioning_model=inst.scheduling.provisioning_model or "STANDARD",
        last_start=inst.last_start_timestamp or None,
        last_stop=inst.last_stop_timestamp or None,
    )
