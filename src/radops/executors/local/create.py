"""A job's container on the local engine, as the Engine API's create call wants it: what the
docker CLI sends for the same `docker run` flags."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from radops.errors import RadopsError
from radops.executors.docker.options import NO_GPU_DRIVER, no_gpu_runtime
from radops.executors.model import LOG_DRIVER, LOG_OPTIONS, JobRequest, container_name
from radops.executors.run_options import (
    RunOptions,
    mount_fields,
    nano_cpus,
    restart_policy,
    size_bytes,
)

if TYPE_CHECKING:
    from radops.images.engine import LocalEngine


def create_and_start(engine: LocalEngine, job_id: str, body: dict[str, Any]) -> None:
    """Create the job's container and start it; a job that did not start leaves nothing."""
    what = "starting the job"
    name = container_name(job_id)
    cid = engine.call("POST", "/containers/create", what, query={"name": name}, body=body)["Id"]
    try:
        engine.call("POST", f"/containers/{cid}/start", what)
    except BaseException as e:  # Ctrl-C too
        # A job that never started is not a job: leave nothing behind in `jobs`.
        with contextlib.suppress(RadopsError):
            engine.call("DELETE", f"/containers/{cid}", what, query={"force": "1"})
        if NO_GPU_DRIVER in str(e):
            raise no_gpu_runtime("this machine") from e
        raise


def container_body(
    request: JobRequest, image: str, labels: dict[str, str], gpus: dict[str, Any] | None
) -> dict[str, Any]:
    """The body of `POST /containers/create` for the job: its image, arguments, labels,
    environment and run options, detached, logged by radops' log driver."""
    config, host_config = engine_fields(request.options)
    host_config["LogConfig"] = {"Type": LOG_DRIVER, "Config": LOG_OPTIONS}
    if gpus is not None:
        host_config["DeviceRequests"] = [{**gpus, "Options": {}}]
    return {
        "Image": image,
        "Cmd": request.command or None,
        "Labels": {**dict(request.options.labels), **labels},
        "Env": [f"{key}={value}" for key, value in request.env.items()] or None,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        **config,
        "HostConfig": host_config,
    }


def engine_fields(options: RunOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """`options` as Engine API container config and host config fields: what the docker CLI
    sends for the same `docker run` flags."""
    config: dict[str, Any] = {}
    host: dict[str, Any] = {"NetworkMode": options.network or "default"}
    if options.volumes:
        host["Binds"] = list(options.volumes)
    if options.mounts:
        host["Mounts"] = [engine_mount(spec) for spec in options.mounts]
    if options.shm_size:
        host["ShmSize"] = size_bytes(options.shm_size)
    if options.ipc:
        host["IpcMode"] = options.ipc
    if options.memory:
        host["Memory"] = size_bytes(options.memory)
    if options.cpus:
        host["NanoCpus"] = nano_cpus(options.cpus)
    if options.publish:
        from docker.utils.ports import build_port_bindings
        from docker.utils.utils import convert_port_bindings

        bindings = convert_port_bindings(build_port_bindings(list(options.publish)))
        host["PortBindings"] = bindings
        config["ExposedPorts"] = {port: {} for port in bindings}
    if options.restart:
        host["RestartPolicy"] = restart_policy(options.restart)
    if options.workdir:
        config["WorkingDir"] = options.workdir
    if options.user:
        config["User"] = options.user
    if options.entrypoint is not None:  # one word, as `docker run --entrypoint`; "" resets it
        config["Entrypoint"] = [options.entrypoint]
    return config, host


def engine_mount(spec: str) -> dict[str, Any]:
    """A `--mount` value (checked by run_options) as an Engine API Mount."""
    fields = mount_fields(spec)
    kind = fields.get("type", "volume")
    mount: dict[str, Any] = {
        "Target": fields.get("target") or fields.get("destination") or fields.get("dst") or "",
        "Source": fields.get("source") or fields.get("src"),
        "Type": kind,
        "ReadOnly": fields.get("readonly", fields.get("ro", "false")).lower() in ("true", "1"),
    }
    if kind == "bind" and "bind-propagation" in fields:
        mount["BindOptions"] = {"Propagation": fields["bind-propagation"]}
    if kind == "volume" and fields.get("volume-nocopy", "false").lower() in ("true", "1"):
        mount["VolumeOptions"] = {"NoCopy": True}
    if kind == "tmpfs":
        tmpfs: dict[str, int] = {}
        if "tmpfs-mode" in fields:
            tmpfs["Mode"] = int(fields["tmpfs-mode"], 8)
        if "tmpfs-size" in fields:
            tmpfs["SizeBytes"] = size_bytes(fields["tmpfs-size"])
        if tmpfs:
            mount["TmpfsOptions"] = tmpfs
    return mount
