"""A local fake of the Compute Engine REST API (v1), for tests that drive the real
`google-cloud-compute` client against it.

Point the client at it with::

    opts = ClientOptions(api_endpoint=fake.endpoint)          # "http://127.0.0.1:PORT"
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), client_options=opts)

What it models, because radops depends on it (everything is in memory, time-based, thread-safe):

- Instance templates (global and regional), zones and regions: read-only, set up from Python.
- Instances: insert from a template, get, list (with `filter`), aggregated list, delete, stop,
  start, setMetadata with fingerprints (412 conditionNotMet when stale).
- Operations: every mutating call answers an Operation with status RUNNING; it becomes DONE
  `op_delay` seconds later. `operations/{op}/wait` blocks up to `wait_timeout` (2 s) and, like the
  real API, may return the operation still RUNNING. A failed operation ends DONE with `error`,
  `httpErrorStatusCode` and `httpErrorMessage`; it never turns into an HTTP error.
- Instance lifecycle: insert -> PROVISIONING -> STAGING -> RUNNING, stop -> STOPPING ->
  TERMINATED, start -> STAGING -> RUNNING, each step `boot_step` seconds, advanced lazily from
  timestamps on every request. The external IP (`accessConfigs[0].natIP`) is present only while
  RUNNING; each boot (insert or start) takes the next address from `ips`. The insert operation and
  the boot run independently: with the defaults the operation is DONE while the VM is STAGING.
- Deleting: the VM shows STOPPING until the delete operation is DONE, then it is gone (404).
- A failed insert (`fail_insert(zone, "quota_operation" | "capacity")`) leaves the VM visible as
  PROVISIONING until its operation is DONE with the error; then it is gone.
- Errors use the real body shape, so the client raises the matching google.api_core exception
  with `e.errors[0]["reason"]`: 400 invalid/required, 403 quotaExceeded, 404 notFound,
  409 alreadyExists, 412 conditionNotMet.
- `filter` on list calls supports `field = value`, `!=`, `:` (`labels.k:*` tests presence, `*`
  wildcards), `eq`/`ne` (full-match regex), `AND`, `OR`, parentheses and implicit AND between
  expressions, e.g. `labels.radops-managed = true AND status = RUNNING`. Fields are dotted paths
  into the resource JSON (`name`, `status`, `labels.KEY`, ...). A filter it cannot parse is a 400.
- Guest attributes: a RUNNING instance whose metadata has `enable-guest-attributes=TRUE`
  publishes `host_keys` (key type, base64 blob) under `hostkeys/`, as the guest agent does,
  through `getGuestAttributes?queryPath=hostkeys/`; without that metadata, with no keys (an
  image without the agent) or before RUNNING the call is a 404, as on the real API.
- Scheduling: an instance takes the insert body's `scheduling` whole, else the template's. A
  SPOT one must have `automaticRestart: false` and `onHostMaintenance: TERMINATE`, and
  `instanceTerminationAction` STOP or DELETE (else 400, as the real API). `preempt(name)`
  reclaims a SPOT VM: STOPPING then TERMINATED (or gone, for DELETE), and a DONE operation of
  type `compute.instances.preempted` targeting it, as the real zone operations list shows.
- A stop from inside (the guest shuts down): `guest_shutdown(name)`, or over HTTP (so a command
  on a VM can do it) `POST /fake/zones/{zone}/instances/{name}/guestShutdown`: STOPPING then
  TERMINATED, no operation, as when a VM's OS powers off.
- Lists page with `maxResults` / `pageToken`; aggregated lists return every scope (an empty scope
  carries the NO_RESULTS_ON_PAGE warning, as the real API does).

Like the real API, resources carry full `https://www.googleapis.com/compute/v1/...` URLs in
`selfLink`, `zone`, `region`, an instance's `machineType` and `guestAccelerators[].acceleratorType`,
while a template's properties hold short names (`a2-highgpu-1g`, `nvidia-tesla-a100`). An
instance's boot disk has a `source` disk URL, not the template's `initializeParams`.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import re
import secrets
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]
Query = dict[str, list[str]]

API_ROOT = "https://www.googleapis.com/compute/v1/"
PREFIX = "/compute/v1/projects/"
DEFAULT_IPS = ["127.0.0.22", "127.0.0.23"]
DEFAULT_ZONES = {
    "us-central1-a": "us-central1",
    "us-central1-b": "us-central1",
    "us-central1-c": "us-central1",
    "europe-west4-a": "europe-west4",
}
FAILURE_KINDS = ("quota", "quota_operation", "capacity")
NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")


class ApiError(Exception):
    """An HTTP error answered with the real Compute error body."""

    def __init__(self, code: int, message: str, reason: str, domain: str = "global") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain

    def body(self) -> Json:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
            }
        }


def _not_found(resource: str) -> ApiError:
    return ApiError(404, f"The resource '{resource}' was not found", "notFound")


def _invalid(field_name: str, value: str, detail: str) -> ApiError:
    return ApiError(400, f"Invalid value for field '{field_name}': '{value}'. {detail}", "invalid")


def _timestamp(wall: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if wall is None else wall, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def _new_id() -> str:
    return str(secrets.randbits(63) | (1 << 62))


def _fingerprint() -> str:
    return base64.b64encode(secrets.token_bytes(8)).decode()


def _last_segment(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1]


def _merge_items(base: list[Json], override: list[Json]) -> list[Json]:
    """Metadata items merged by key; the override wins and keeps its order after the base's."""
    merged: dict[str, Json] = {}
    for item in [*base, *override]:
        key = str(item.get("key", ""))
        merged.pop(key, None)
        merged[key] = {"key": key, **({"value": item["value"]} if "value" in item else {})}
    return list(merged.values())


def _check_labels(labels: Any) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise _invalid("resource.labels", "", "Labels must be a map of strings.")
    for key, value in labels.items():
        if not LABEL_KEY_RE.match(str(key)):
            raise _invalid(
                "resource.labels",
                "",
                f"Label key '{key}' violates format constraints. The key must start with a "
                "lowercase character, can only contain lowercase letters, numeric characters, "
                "underscores and dashes. The key can be at most 63 characters long. "
                "International characters are allowed.",
            )
        if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
            raise _invalid(
                "resource.labels",
                "",
                f"Label value '{value}' violates format constraints. The value can only contain "
                "lowercase letters, numeric characters, underscores and dashes. The value can be "
                "at most 63 characters long. International characters are allowed.",
            )
    return {str(k): str(v) for k, v in labels.items()}


# --------------------------------------------------------------------------- list filters

_FILTER_CMP = re.compile(
    r"(?P<field>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|=|:|\beq\b|\bne\b)\s*"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s()]+)"
)
_FILTER_KW = re.compile(r"(?P<kw>AND|OR)(?=[\s(]|$)")

Predicate = Callable[[Json], bool]


def _field_value(resource: Json, path: str) -> Any:
    current: Any = resource
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _comparison(path: str, op: str, literal: str) -> Predicate:
    if literal[:1] in "\"'" and literal[-1:] == literal[:1] and len(literal) >= 2:
        literal = literal[1:-1]

    def check(resource: Json) -> bool:
        value = _field_value(resource, path)
        if op == "=":
            return value is not None and _as_text(value) == literal
        if op == "!=":
            return value is None or _as_text(value) != literal
        if op == ":":
            if value is None:
                return False
            return literal == "*" or fnmatch.fnmatchcase(_as_text(value), literal)
        matched = value is not None and re.fullmatch(literal, _as_text(value)) is not None
        return matched if op == "eq" else not matched

    return check


def parse_filter(text: str) -> Predicate:
    """Compile a Compute list filter (the subset described in the module docstring)."""
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
        elif text[pos] in "()":
            tokens.append((text[pos], None))
            pos += 1
        elif kw := _FILTER_KW.match(text, pos):
            tokens.append((kw.group("kw"), None))
            pos = kw.end()
        elif cmp := _FILTER_CMP.match(text, pos):
            tokens.append(("cmp", _comparison(cmp["field"], cmp["op"], cmp["value"])))
            pos = cmp.end()
        else:
            raise _invalid("filter", text, "Invalid list filter expression.")

    index = 0

    def peek() -> str | None:
        return tokens[index][0] if index < len(tokens) else None

    def parse_or() -> Predicate:
        nonlocal index
        parts = [parse_and()]
        while peek() == "OR":
            index += 1
            parts.append(parse_and())
        return lambda r: any(p(r) for p in parts)

    def parse_and() -> Predicate:
        nonlocal index
        parts = [parse_atom()]
        while peek() in ("AND", "(", "cmp"):
            if peek() == "AND":
                index += 1
            parts.append(parse_atom())
        return lambda r: all(p(r) for p in parts)

    def parse_atom() -> Predicate:
        nonlocal index
        kind = peek()
        if kind == "(":
            index += 1
            inner = parse_or()
            if peek() != ")":
                raise _invalid("filter", text, "Invalid list filter expression.")
            index += 1
            return inner
        if kind == "cmp":
            predicate: Predicate = tokens[index][1]
            index += 1
            return predicate
        raise _invalid("filter", text, "Invalid list filter expression.")

    if not tokens:
        return lambda r: True
    result = parse_or()
    if index != len(tokens):
        raise _invalid("filter", text, "Invalid list filter expression.")
    return result


# --------------------------------------------------------------------------- state


@dataclass
class _Instance:
    name: str
    zone: str
    id: str
    created: str
    machine_type: str
    accelerators: list[Json]
    disks: list[Json]
    access_configs: list[Json]
    labels: dict[str, str]
    metadata_items: list[Json]
    internal_ip: str
    scheduling: Json = field(default_factory=dict)
    # (monotonic time, status, wall-clock time) steps; the status is the last step reached.
    phases: list[tuple[float, str, float]] = field(default_factory=list)
    ip: str | None = None
    metadata_fingerprint: str = field(default_factory=_fingerprint)
    label_fingerprint: str = field(default_factory=_fingerprint)
    fingerprint: str = field(default_factory=_fingerprint)

    def status(self, now: float) -> str:
        current = self.phases[0][1]
        for at, status, _wall in self.phases:
            if at <= now:
                current = status
        return current

    def schedule(self, now: float, step: float, *statuses: str) -> None:
        wall = time.time()
        self.phases = [(now + i * step, s, wall + i * step) for i, s in enumerate(statuses)]


@dataclass
class _Operation:
    name: str
    id: str
    zone: str
    op_type: str
    target_link: str
    target_id: str
    insert_time: str
    done_at: float
    done_wall: float
    error: Json | None = None
    http_status: int | None = None
    http_message: str | None = None
    on_done: Callable[[], None] | None = None
    done: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGCE


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body in two packets cost ~40 ms a call
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload = self.server.fake._dispatch(self.command, self.path, raw)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --------------------------------------------------------------------------- the fake


class FakeGCE:
    """The fake Compute Engine API. Use `start()`/`stop()` or `with FakeGCE(...) as fake:`."""

    def __init__(
        self,
        project: str = "test-project",
        ips: list[str] | None = None,
        on_ssh_keys: Callable[[str, str], None] | None = None,
        op_delay: float = 0.3,
        boot_step: float = 0.3,
        host_keys: list[tuple[str, str]] | None = None,
    ) -> None:
        self.project = project
        # (key type, base64 blob) every RUNNING VM publishes as guest attributes `hostkeys/`.
        self.host_keys = list(host_keys or [])
        self.ips = list(DEFAULT_IPS if ips is None else ips)
        if not self.ips:
            raise ValueError("ips must not be empty")
        self.on_ssh_keys = on_ssh_keys
        self.op_delay = op_delay
        self.boot_step = boot_step
        self.wait_timeout = 2.0  # how long operations/{op}/wait blocks at most
        self.endpoint = ""
        self.callback_errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._zones: dict[str, str] = dict(DEFAULT_ZONES)
        self._zone_ids: dict[str, str] = {}
        self._templates: dict[tuple[str | None, str], Json] = {}
        self._instances: dict[tuple[str, str], _Instance] = {}
        self._operations: dict[str, _Operation] = {}
        self._request_ids: dict[str, str] = {}
        self._failures: dict[str, deque[str]] = {}
        self._requests: list[tuple[str, str]] = []
        self._boots = 0
        self._internal = 1

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-gce", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGCE:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- control surface

    def add_template(
        self,
        name: str,
        *,
        region: str | None = None,
        machine_type: str = "n1-standard-4",
        gpu_type: str | None = None,
        gpu_count: int = 0,
        image: str = "projects/debian-cloud/global/images/family/debian-12",
        labels: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Add an instance template (regional when `region` is given). A `gpu_type` without a
        `gpu_count` means one GPU. `labels` and `metadata` become the template's properties."""
        if not NAME_RE.match(name):
            raise ValueError(f"invalid template name {name!r}")
        properties: Json = {
            "machineType": machine_type,
            "disks": [
                {
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": "READ_WRITE",
                    "deviceName": "persistent-disk-0",
                    "index": 0,
                    "boot": True,
                    "autoDelete": True,
                    "initializeParams": {
                        "sourceImage": image,
                        "diskSizeGb": "100",
                        "diskType": "pd-balanced",
                    },
                    "interface": "SCSI",
                }
            ],
            "networkInterfaces": [
                {
                    "kind": "compute#networkInterface",
                    "name": "nic0",
                    "network": f"{API_ROOT}projects/{self.project}/global/networks/default",
                    "accessConfigs": [
                        {
                            "kind": "compute#accessConfig",
                            "name": "External NAT",
                            "type": "ONE_TO_ONE_NAT",
                            "networkTier": "PREMIUM",
                        }
                    ],
                }
            ],
            "metadata": {"kind": "compute#metadata", "fingerprint": _fingerprint()},
            "scheduling": {
                "onHostMaintenance": "TERMINATE" if gpu_type else "MIGRATE",
                "automaticRestart": True,
                "preemptible": False,
                "provisioningModel": "STANDARD",
            },
            "serviceAccounts": [
                {
                    "email": "default",
                    "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                }
            ],
        }
        if gpu_type:
            properties["guestAccelerators"] = [
                {"acceleratorType": gpu_type, "acceleratorCount": gpu_count or 1}
            ]
        if labels:
            properties["labels"] = _check_labels(dict(labels))
        if metadata:
            properties["metadata"]["items"] = [{"key": k, "value": v} for k, v in metadata.items()]
        scope = f"regions/{region}" if region else "global"
        template: Json = {
            "kind": "compute#instanceTemplate",
            "id": _new_id(),
            "creationTimestamp": _timestamp(),
            "name": name,
            "description": "",
            "properties": properties,
            "selfLink": f"{self._project_url()}/{scope}/instanceTemplates/{name}",
        }
        if region:
            template["region"] = f"{self._project_url()}/regions/{region}"
        with self._lock:
            self._templates[(region, name)] = template

    def add_zone(self, name: str, region: str) -> None:
        with self._lock:
            self._zones[name] = region

    def fail_insert(self, zone: str, kind: str) -> None:
        """Make the next insert in `zone` fail: "quota" (403 at insert), "quota_operation"
        (operation ends with QUOTA_EXCEEDED) or "capacity" (ZONE_RESOURCE_POOL_EXHAUSTED)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")
        with self._lock:
            self._failures.setdefault(zone, deque()).append(kind)

    def instances(self) -> dict[str, dict[str, Any]]:
        """Every instance as the API would return it now, by name (a snapshot)."""
        with self._lock:
            now = time.monotonic()
            self._tick(now)
            return {i.name: self._render_instance(i, now) for i in self._instances.values()}

    def preempt(self, name: str) -> None:
        """Compute Engine reclaims SPOT VM `name` now (a test hook)."""
        with self._lock:
            now = time.monotonic()
            self._tick(now)
            inst = self._by_name(name)
            if inst.scheduling.get("provisioningModel") != "SPOT":
                raise ValueError(f"{name} is not a SPOT VM")
            op = self._new_operation(inst.zone, "compute.instances.preempted", inst, now)
            op.done_at, op.done_wall = now, time.time()
            if inst.scheduling.get("instanceTerminationAction") == "DELETE":
                op.on_done = self._remover(inst)
            else:
                inst.schedule(now, self.boot_step, "STOPPING", "TERMINATED")
            self._tick(now)

    def guest_shutdown(self, name: str) -> None:
        """VM `name`'s own OS powers off: the instance goes TERMINATED (a test hook)."""
        with self._lock:
            now = time.monotonic()
            self._tick(now)
            self._shut_down(self._by_name(name), now)

    def _shut_down(self, inst: _Instance, now: float) -> None:
        if inst.status(now) not in ("STOPPING", "TERMINATED"):
            inst.schedule(now, self.boot_step, "STOPPING", "TERMINATED")

    def _by_name(self, name: str) -> _Instance:
        for inst in self._instances.values():
            if inst.name == name:
                return inst
        raise KeyError(name)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far; the path has no query string."""
        with self._lock:
            return list(self._requests)

    # ----------------------------------------------------------------- URLs

    def _project_url(self) -> str:
        return f"{API_ROOT}projects/{self.project}"

    def _zone_url(self, zone: str) -> str:
        return f"{self._project_url()}/zones/{zone}"

    def _region_url(self, region: str) -> str:
        return f"{self._project_url()}/regions/{region}"

    def _instance_url(self, zone: str, name: str) -> str:
        return f"{self._zone_url(zone)}/instances/{name}"

    def _regions(self) -> list[str]:
        regions = set(self._zones.values())
        regions.update(r for r, _ in self._templates if r)
        return sorted(regions)

    # ----------------------------------------------------------------- time

    def _tick(self, now: float) -> None:
        for op in list(self._operations.values()):
            if not op.done and op.done_at <= now:
                op.done = True
                if op.on_done is not None:
                    op.on_done()

    # ----------------------------------------------------------------- rendering

    def _render_instance(self, inst: _Instance, now: float) -> Json:
        status = inst.status(now)
        zone_url = self._zone_url(inst.zone)
        access_configs: list[Json] = []
        for config in inst.access_configs:
            rendered = dict(config)
            rendered.pop("natIP", None)
            if status == "RUNNING" and inst.ip and not access_configs:
                rendered["natIP"] = inst.ip
            access_configs.append(rendered)
        nic: Json = {
            "kind": "compute#networkInterface",
            "name": "nic0",
            "network": f"{self._project_url()}/global/networks/default",
            "subnetwork": f"{self._region_url(self._zones[inst.zone])}/subnetworks/default",
            "networkIP": inst.internal_ip,
            "fingerprint": inst.fingerprint,
            "stackType": "IPV4_ONLY",
        }
        if access_configs:
            nic["accessConfigs"] = access_configs
        body: Json = {
            "kind": "compute#instance",
            "id": inst.id,
            "creationTimestamp": inst.created,
            "name": inst.name,
            "machineType": f"{zone_url}/machineTypes/{inst.machine_type}",
            "status": status,
            "zone": zone_url,
            "canIpForward": False,
            "networkInterfaces": [nic],
            "disks": copy.deepcopy(inst.disks),
            "metadata": {"kind": "compute#metadata", "fingerprint": inst.metadata_fingerprint},
            "labelFingerprint": inst.label_fingerprint,
            "fingerprint": inst.fingerprint,
            "selfLink": self._instance_url(inst.zone, inst.name),
            "scheduling": copy.deepcopy(inst.scheduling),
            "cpuPlatform": "Unknown CPU Platform" if status == "PROVISIONING" else "Intel Haswell",
            "deletionProtection": False,
        }
        if inst.metadata_items:
            body["metadata"]["items"] = copy.deepcopy(inst.metadata_items)
        if inst.labels:
            body["labels"] = dict(inst.labels)
        if inst.accelerators:
            body["guestAccelerators"] = [
                {
                    "acceleratorType": f"{zone_url}/acceleratorTypes/"
                    + _last_segment(str(a.get("acceleratorType", ""))),
                    "acceleratorCount": int(a.get("acceleratorCount", 1)),
                }
                for a in inst.accelerators
            ]
        reached = [(s, wall) for at, s, wall in inst.phases if at <= now]
        starts = [wall for s, wall in reached if s == "RUNNING"]
        stops = [wall for s, wall in reached if s == "TERMINATED"]
        if starts:
            body["lastStartTimestamp"] = _timestamp(starts[-1])
        if stops:
            body["lastStopTimestamp"] = _timestamp(stops[-1])
        return body

    def _render_operation(self, op: _Operation, now: float) -> Json:
        body: Json = {
            "kind": "compute#operation",
            "id": op.id,
            "name": op.name,
            "zone": self._zone_url(op.zone),
            "operationType": op.op_type,
            "targetLink": op.target_link,
            "targetId": op.target_id,
            "status": "DONE" if op.done else "RUNNING",
            "user": "fake-user@example.com",
            "progress": 100 if op.done else 0,
            "insertTime": op.insert_time,
            "startTime": op.insert_time,
            "selfLink": f"{self._zone_url(op.zone)}/operations/{op.name}",
        }
        if op.done:
            body["endTime"] = _timestamp(op.done_wall)
            if op.error is not None:
                body["error"] = copy.deepcopy(op.error)
                body["httpErrorStatusCode"] = op.http_status
                body["httpErrorMessage"] = op.http_message
        return body

    def _list_body(self, kind: str, scope: str, items: list[Json], query: Query) -> Json:
        text = query.get("filter", [""])[0]
        predicate = parse_filter(text)
        items = [i for i in items if predicate(i)]
        try:
            start = int(query.get("pageToken", ["0"])[0] or 0)
            size = int(query.get("maxResults", ["500"])[0] or 500)
        except ValueError as e:
            raise _invalid("pageToken", str(query.get("pageToken")), "Invalid page token.") from e
        size = max(1, min(size, 500))
        page = items[start : start + size]
        body: Json = {"kind": kind, "id": f"projects/{self.project}/{scope}"}
        if page:
            body["items"] = page
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        body["selfLink"] = f"{self._project_url()}/{scope}"
        return body

    def _aggregated_body(
        self, kind: str, what: str, key: str, scopes: dict[str, list[Json]], query: Query
    ) -> Json:
        predicate = parse_filter(query.get("filter", [""])[0])
        items: Json = {}
        for scope, resources in scopes.items():
            matching = [r for r in resources if predicate(r)]
            if matching:
                items[scope] = {key: matching}
            else:
                items[scope] = {
                    "warning": {
                        "code": "NO_RESULTS_ON_PAGE",
                        "message": f"There are no results for scope '{scope}' on this page.",
                        "data": [{"key": "scope", "value": scope}],
                    }
                }
        return {
            "kind": kind,
            "id": f"projects/{self.project}/aggregated/{what}",
            "items": items,
            "selfLink": f"{self._project_url()}/aggregated/{what}",
        }

    # ----------------------------------------------------------------- HTTP dispatch

    def _dispatch(self, method: str, raw_path: str, raw_body: bytes) -> tuple[int, Json]:
        parts = urlsplit(raw_path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        with self._lock:
            self._requests.append((method, path))
        callbacks: list[tuple[str, str]] = []
        try:
            body: Json = {}
            if raw_body.strip():
                try:
                    parsed = json.loads(raw_body)
                except ValueError as e:
                    raise ApiError(400, f"Invalid JSON payload received. {e}", "parseError") from e
                if not isinstance(parsed, dict):
                    raise ApiError(400, "Invalid JSON payload received.", "parseError")
                body = parsed
            result = self._route(method, path, query, body, callbacks)
        except ApiError as e:
            return e.code, e.body()
        except Exception as e:  # a bug in the fake: say so loudly, in the API's error shape
            traceback.print_exc(file=sys.stderr)
            return 500, ApiError(500, f"fake GCE internal error: {e!r}", "backendError").body()
        for instance_name, keys in callbacks:
            if self.on_ssh_keys is None:
                continue
            try:
                self.on_ssh_keys(instance_name, keys)
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                self.callback_errors.append(e)
        return 200, result

    def _route(
        self,
        method: str,
        path: str,
        query: Query,
        body: Json,
        callbacks: list[tuple[str, str]],
    ) -> Json:
        shutdown = re.fullmatch(r"/fake/zones/([^/]+)/instances/([^/]+)/guestShutdown", path)
        if method == "POST" and shutdown:
            with self._lock:
                now = time.monotonic()
                self._tick(now)
                self._shut_down(self._get_instance(shutdown[1], shutdown[2]), now)
            return {"status": "ok"}
        if not path.startswith(PREFIX):
            raise ApiError(404, f"fake GCE: no route for {method} {path}", "notFound")
        segments = [unquote(s) for s in path[len(PREFIX) :].split("/")]
        project, rest = segments[0], segments[1:]
        if project != self.project:
            raise _not_found(f"projects/{project}")
        route = (method, *rest)
        wait = False
        with self._lock:
            now = time.monotonic()
            self._tick(now)
            match route:
                case ("GET", "global", "instanceTemplates"):
                    return self._list_templates(None, query)
                case ("GET", "global", "instanceTemplates", name):
                    return self._get_template(None, name)
                case ("GET", "aggregated", "instanceTemplates"):
                    return self._aggregated_templates(query)
                case ("GET", "regions"):
                    return self._list_body(
                        "compute#regionList",
                        "regions",
                        [self._region_json(r) for r in self._regions()],
                        query,
                    )
                case ("GET", "regions", region):
                    return self._get_region(region)
                case ("GET", "regions", region, "instanceTemplates"):
                    self._get_region(region)
                    return self._list_templates(region, query)
                case ("GET", "regions", region, "instanceTemplates", name):
                    self._get_region(region)
                    return self._get_template(region, name)
                case ("GET", "zones"):
                    zones = [self._zone_json(z) for z in sorted(self._zones)]
                    return self._list_body("compute#zoneList", "zones", zones, query)
                case ("GET", "zones", zone):
                    return self._zone_json(self._check_zone(zone))
                case ("GET", "aggregated", "instances"):
                    return self._aggregated_instances(query, now)
                case ("GET", "zones", zone, "instances"):
                    self._check_zone(zone)
                    found = [
                        self._render_instance(i, now)
                        for (z, _), i in sorted(self._instances.items())
                        if z == zone
                    ]
                    return self._list_body(
                        "compute#instanceList", f"zones/{zone}/instances", found, query
                    )
                case ("POST", "zones", zone, "instances"):
                    return self._idempotent(
                        query, lambda: self._insert(zone, query, body, now, callbacks)
                    )
                case ("GET", "zones", zone, "instances", name):
                    return self._render_instance(self._get_instance(zone, name), now)
                case ("GET", "zones", zone, "instances", name, "getGuestAttributes"):
                    return self._guest_attributes(self._get_instance(zone, name), query, now)
                case ("DELETE", "zones", zone, "instances", name):
                    return self._idempotent(query, lambda: self._delete(zone, name, now))
                case ("POST", "zones", zone, "instances", name, "stop"):
                    return self._idempotent(query, lambda: self._stop(zone, name, now))
                case ("POST", "zones", zone, "instances", name, "start"):
                    return self._idempotent(query, lambda: self._start(zone, name, now))
                case ("POST", "zones", zone, "instances", name, "setMetadata"):
                    return self._idempotent(
                        query, lambda: self._set_metadata(zone, name, body, now, callbacks)
                    )
                case ("GET", "zones", zone, "operations"):
                    self._check_zone(zone)
                    ops = [
                        self._render_operation(o, now)
                        for o in self._operations.values()
                        if o.zone == zone
                    ]
                    return self._list_body(
                        "compute#operationList", f"zones/{zone}/operations", ops, query
                    )
                case ("GET", "zones", zone, "operations", name):
                    return self._render_operation(self._get_operation(zone, name), now)
                case ("POST", "zones", zone, "operations", name, "wait"):
                    self._get_operation(zone, name)
                    wait = True
                case _:
                    raise ApiError(404, f"fake GCE: no route for {method} {path}", "notFound")
        assert wait
        return self._wait_operation(rest[1], rest[3])

    def _idempotent(self, query: Query, action: Callable[[], Json]) -> Json:
        """A repeated `requestId` answers the operation of the first request, as the real API."""
        request_id = query.get("requestId", [""])[0]
        if request_id and request_id in self._request_ids:
            op = self._operations[self._request_ids[request_id]]
            return self._render_operation(op, time.monotonic())
        result = action()
        if request_id:
            self._request_ids[request_id] = str(result["name"])
        return result

    # ----------------------------------------------------------------- read handlers

    def _check_zone(self, zone: str) -> str:
        if zone not in self._zones:
            raise _not_found(f"projects/{self.project}/zones/{zone}")
        return zone

    def _zone_id(self, zone: str) -> str:
        return self._zone_ids.setdefault(zone, _new_id())

    def _zone_json(self, zone: str) -> Json:
        return {
            "kind": "compute#zone",
            "id": self._zone_id(zone),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": zone,
            "description": zone,
            "status": "UP",
            "region": self._region_url(self._zones[zone]),
            "selfLink": self._zone_url(zone),
            "availableCpuPlatforms": ["Intel Cascade Lake", "Intel Haswell", "AMD Milan"],
            "supportsPzs": False,
        }

    def _region_json(self, region: str) -> Json:
        zones = sorted(z for z, r in self._zones.items() if r == region)
        return {
            "kind": "compute#region",
            "id": self._zone_id(f"regions/{region}"),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": region,
            "description": region,
            "status": "UP",
            "zones": [self._zone_url(z) for z in zones],
            "selfLink": self._region_url(region),
            "supportsPzs": False,
        }

    def _get_region(self, region: str) -> Json:
        if region not in self._regions():
            raise _not_found(f"projects/{self.project}/regions/{region}")
        return self._region_json(region)

    def _template_path(self, region: str | None, name: str) -> str:
        scope = f"regions/{region}" if region else "global"
        return f"projects/{self.project}/{scope}/instanceTemplates/{name}"

    def _get_template(self, region: str | None, name: str) -> Json:
        template = self._templates.get((region, name))
        if template is None:
            raise _not_found(self._template_path(region, name))
        return copy.deepcopy(template)

    def _list_templates(self, region: str | None, query: Query) -> Json:
        found = [
            copy.deepcopy(t)
            for (r, _), t in sorted(self._templates.items(), key=_tkey)
            if r == region
        ]
        scope = f"regions/{region}/instanceTemplates" if region else "global/instanceTemplates"
        return self._list_body("compute#instanceTemplateList", scope, found, query)

    def _aggregated_templates(self, query: Query) -> Json:
        scopes: dict[str, list[Json]] = {"global": []}
        for name in self._regions():
            scopes[f"regions/{name}"] = []
        for (region, _), template in sorted(self._templates.items(), key=_tkey):
            scope = f"regions/{region}" if region else "global"
            scopes[scope].append(copy.deepcopy(template))
        return self._aggregated_body(
            "compute#instanceTemplateAggregatedList",
            "instanceTemplates",
            "instanceTemplates",
            scopes,
            query,
        )

    def _aggregated_instances(self, query: Query, now: float) -> Json:
        scopes: dict[str, list[Json]] = {f"zones/{z}": [] for z in sorted(self._zones)}
        for (zone, _), inst in sorted(self._instances.items()):
            scopes[f"zones/{zone}"].append(self._render_instance(inst, now))
        return self._aggregated_body(
            "compute#instanceAggregatedList", "instances", "instances", scopes, query
        )

    def _guest_attributes(self, inst: _Instance, query: Query, now: float) -> Json:
        path = (query.get("queryPath") or [""])[0]
        where = f"projects/{self.project}/zones/{inst.zone}/instances/{inst.name}"
        enabled = any(
            item.get("key") == "enable-guest-attributes"
            and str(item.get("value", "")).upper() == "TRUE"
            for item in inst.metadata_items
        )
        if (
            not enabled
            or path != "hostkeys/"
            or inst.status(now) != "RUNNING"
            or not self.host_keys
        ):
            raise _not_found(f"{where}/guestAttributes/{path}")
        items = [{"namespace": "hostkeys", "key": t, "value": v} for t, v in self.host_keys]
        return {
            "kind": "compute#guestAttributes",
            "queryPath": path,
            "queryValue": {"items": items},
            "selfLink": f"{self._zone_url(inst.zone)}/instances/{inst.name}/getGuestAttributes",
        }

    def _get_instance(self, zone: str, name: str) -> _Instance:
        self._check_zone(zone)
        inst = self._instances.get((zone, name))
        if inst is None:
            raise _not_found(f"projects/{self.project}/zones/{zone}/instances/{name}")
        return inst

    def _get_operation(self, zone: str, name: str) -> _Operation:
        self._check_zone(zone)
        op = self._operations.get(name)
        if op is None or op.zone != zone:
            raise _not_found(f"projects/{self.project}/zones/{zone}/operations/{name}")
        return op

    def _wait_operation(self, zone: str, name: str) -> Json:
        deadline = time.monotonic() + self.wait_timeout
        while True:
            with self._lock:
                now = time.monotonic()
                self._tick(now)
                op = self._get_operation(zone, name)
                if op.done or now >= deadline:
                    return self._render_operation(op, now)
                pause = min(op.done_at, deadline) - now
            time.sleep(max(pause, 0.001))

    # ----------------------------------------------------------------- mutations

    def _new_operation(
        self,
        zone: str,
        op_type: str,
        inst: _Instance,
        now: float,
        on_done: Callable[[], None] | None = None,
    ) -> _Operation:
        op = _Operation(
            name=f"operation-{int(time.time() * 1000)}-{secrets.token_hex(6)}-"
            f"{secrets.token_hex(4)}-{secrets.token_hex(4)}",
            id=_new_id(),
            zone=zone,
            op_type=op_type,
            target_link=self._instance_url(zone, inst.name),
            target_id=inst.id,
            insert_time=_timestamp(),
            done_at=now + self.op_delay,
            done_wall=time.time() + self.op_delay,
            on_done=on_done,
        )
        self._operations[op.name] = op
        return op

    def _remover(self, inst: _Instance) -> Callable[[], None]:
        def remove() -> None:
            key = (inst.zone, inst.name)
            if self._instances.get(key) is inst:
                del self._instances[key]

        return remove

    def _next_ip(self) -> str:
        ip = self.ips[self._boots % len(self.ips)]
        self._boots += 1
        return ip

    def _resolve_template(self, zone: str, source: str) -> Json:
        """The template named by a sourceInstanceTemplate URL or partial path."""
        path = source
        if "projects/" in path:
            path = path[path.index("projects/") :]
        else:
            path = f"projects/{self.project}/{path}"
        parts = path.split("/")
        region: str | None
        match parts:
            case ["projects", project, "global", "instanceTemplates", name]:
                region = None
            case ["projects", project, "regions", region, "instanceTemplates", name]:
                pass
            case _:
                raise _invalid("sourceInstanceTemplate", source, "The URL is malformed.")
        if project != self.project or (region, name) not in self._templates:
            raise _not_found("/".join(parts))
        template = self._templates[(region, name)]
        if region is not None and region != self._zones[zone]:
            raise _invalid(
                "sourceInstanceTemplate",
                source,
                f"Regional instance template must be in the same region as the instance "
                f"(region '{region}', zone '{zone}').",
            )
        return template

    def _insert(
        self, zone: str, query: Query, body: Json, now: float, callbacks: list[tuple[str, str]]
    ) -> Json:
        self._check_zone(zone)
        name = body.get("name")
        if not name:
            raise ApiError(400, "Required field 'resource.name' not specified", "required")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise _invalid(
                "resource.name",
                str(name),
                "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
            )
        source = query.get("sourceInstanceTemplate", [""])[0]
        properties: Json = {}
        if source:
            template = self._resolve_template(zone, source)
            properties = copy.deepcopy(template["properties"])
        machine_type = body.get("machineType") or properties.get("machineType")
        if not machine_type:
            raise ApiError(400, "Required field 'resource.machineType' not specified", "required")
        disks = body.get("disks") or properties.get("disks")
        if not disks:
            raise ApiError(400, "At least one disk should be attached to the instance.", "invalid")
        labels = dict(properties.get("labels", {}))
        labels.update(_check_labels(body.get("labels", {})))
        items = _merge_items(
            list(properties.get("metadata", {}).get("items", [])),
            list((body.get("metadata") or {}).get("items", [])),
        )
        nics = body.get("networkInterfaces") or properties.get("networkInterfaces") or [{}]
        access_configs = [dict(c) for c in nics[0].get("accessConfigs", [])]
        if (zone, name) in self._instances:
            raise ApiError(
                409,
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
                "already exists",
                "alreadyExists",
            )
        failures = self._failures.get(zone)
        failure = failures.popleft() if failures else None
        region = self._zones[zone]
        quota_message = f"Quota 'NVIDIA_A100_GPUS' exceeded. Limit: 0.0 in region {region}."
        if failure == "quota":
            raise ApiError(403, quota_message, "quotaExceeded", domain="usageLimits")

        inst = _Instance(
            name=name,
            zone=zone,
            id=_new_id(),
            created=_timestamp(),
            machine_type=_last_segment(str(machine_type)),
            accelerators=copy.deepcopy(
                body.get("guestAccelerators") or properties.get("guestAccelerators") or []
            ),
            disks=self._attached_disks(zone, name, disks),
            access_configs=access_configs,
            labels=labels,
            metadata_items=items,
            scheduling=self._scheduling(body, properties),
            internal_ip=f"10.128.{self._internal // 250}.{self._internal % 250 + 2}",
        )
        self._internal += 1
        self._instances[(zone, name)] = inst
        if failure is None:
            inst.ip = self._next_ip()
            inst.schedule(now, self.boot_step, "PROVISIONING", "STAGING", "RUNNING")
            op = self._new_operation(zone, "insert", inst, now)
        else:
            inst.schedule(now, self.boot_step, "PROVISIONING")
            op = self._new_operation(zone, "insert", inst, now, on_done=self._remover(inst))
            if failure == "quota_operation":
                op.error = {"errors": [{"code": "QUOTA_EXCEEDED", "message": quota_message}]}
                op.http_status, op.http_message = 403, "FORBIDDEN"
            else:
                message = (
                    f"The zone 'projects/{self.project}/zones/{zone}' does not have enough "
                    "resources available to fulfill the request."
                )
                op.error = {
                    "errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": message}]
                }
                op.http_status, op.http_message = 503, "SERVICE UNAVAILABLE"
        self._note_ssh_keys(inst, callbacks)
        return self._render_operation(op, now)

    def _scheduling(self, body: Json, properties: Json) -> Json:
        given = body.get("scheduling") or properties.get("scheduling")
        scheduling: Json = (
            copy.deepcopy(given)
            if given
            else {
                "onHostMaintenance": "TERMINATE"
                if properties.get("guestAccelerators")
                else "MIGRATE",
                "automaticRestart": True,
                "preemptible": False,
                "provisioningModel": "STANDARD",
            }
        )
        scheduling.setdefault("provisioningModel", "STANDARD")
        if scheduling["provisioningModel"] == "SPOT":
            if scheduling.get("automaticRestart", True):
                raise _invalid(
                    "resource.scheduling.automaticRestart", "true",
                    "Spot instances cannot be automatically restarted.",
                )  # fmt: skip
            if scheduling.get("onHostMaintenance") != "TERMINATE":
                raise _invalid(
                    "resource.scheduling.onHostMaintenance",
                    str(scheduling.get("onHostMaintenance", "MIGRATE")),
                    "Spot instances must terminate on host maintenance.",
                )
            if scheduling.get("instanceTerminationAction", "STOP") not in ("STOP", "DELETE"):
                raise _invalid(
                    "resource.scheduling.instanceTerminationAction",
                    str(scheduling.get("instanceTerminationAction")),
                    "Must be STOP or DELETE.",
                )
            scheduling.setdefault("instanceTerminationAction", "STOP")
        return scheduling

    def _attached_disks(self, zone: str, name: str, disks: list[Json]) -> list[Json]:
        attached = []
        for index, disk in enumerate(disks):
            disk_name = name if index == 0 else f"{name}-{index}"
            size = str((disk.get("initializeParams") or {}).get("diskSizeGb", "10"))
            attached.append(
                {
                    "kind": "compute#attachedDisk",
                    "type": disk.get("type", "PERSISTENT"),
                    "mode": disk.get("mode", "READ_WRITE"),
                    "source": f"{self._zone_url(zone)}/disks/{disk_name}",
                    "deviceName": disk.get("deviceName", f"persistent-disk-{index}"),
                    "index": index,
                    "boot": bool(disk.get("boot", index == 0)),
                    "autoDelete": bool(disk.get("autoDelete", True)),
                    "interface": disk.get("interface", "SCSI"),
                    "diskSizeGb": size,
                }
            )
        return attached

    def _note_ssh_keys(self, inst: _Instance, callbacks: list[tuple[str, str]]) -> None:
        for item in inst.metadata_items:
            if item.get("key") == "ssh-keys":
                callbacks.append((inst.name, str(item.get("value", ""))))

    def _delete(self, zone: str, name: str, now: float) -> Json:
        inst = self._get_instance(zone, name)
        inst.schedule(now, self.boot_step, "STOPPING")
        op = self._new_operation(zone, "delete", inst, now, on_done=self._remover(inst))
        return self._render_operation(op, now)

    def _stop(self, zone: str, name: str, now: float) -> Json:
        inst = self._get_instance(zone, name)
        if inst.status(now) not in ("STOPPING", "TERMINATED"):
            inst.schedule(now, self.boot_step, "STOPPING", "TERMINATED")
        return self._render_operation(self._new_operation(zone, "stop", inst, now), now)

    def _start(self, zone: str, name: str, now: float) -> Json:
        inst = self._get_instance(zone, name)
        status = inst.status(now)
        if status == "STOPPING":
            raise ApiError(
                400,
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
                "is not ready",
                "resourceNotReady",
            )
        if status == "TERMINATED":
            inst.ip = self._next_ip()
            inst.schedule(now, self.boot_step, "STAGING", "RUNNING")
        return self._render_operation(self._new_operation(zone, "start", inst, now), now)

    def _set_metadata(
        self, zone: str, name: str, body: Json, now: float, callbacks: list[tuple[str, str]]
    ) -> Json:
        inst = self._get_instance(zone, name)
        if body.get("fingerprint") != inst.metadata_fingerprint:
            raise ApiError(
                412,
                "Supplied fingerprint does not match current metadata fingerprint.",
                "conditionNotMet",
            )
        inst.metadata_items = _merge_items([], list(body.get("items", [])))
        inst.metadata_fingerprint = _fingerprint()
        self._note_ssh_keys(inst, callbacks)
        return self._render_operation(self._new_operation(zone, "setMetadata", inst, now), now)


def _tkey(item: tuple[tuple[str | None, str], Json]) -> tuple[str, str]:
    (region, name), _ = item
    return (region or "", name)


if __name__ == "__main__":  # run it by hand: python tests/gce_fake.py
    with FakeGCE() as fake:
        fake.add_template("gpu", machine_type="a2-highgpu-1g", gpu_type="nvidia-tesla-a100")
        print(f"fake Compute Engine at {fake.endpoint} (project {fake.project}); Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
