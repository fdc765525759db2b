"""`--transfer tunnel` (the default with no registry configured): push the image into radops'
own registry on this machine's loopback (radops.images.shipregistry), and have the remote
engine pull it through the SSH connection (a remote port forward: sshd listens on the remote's
loopback only), then name it as the stream would and start the job.

Only the layers the registry lacks are pushed, and the local engine remembers which it pushed,
so after a one-line change nothing is exported but the new layer; only the blobs the remote
lacks cross the link, compressed. Where the tunnel cannot run, or would cost more than the
stream this time, the SSH stream (`SSHStream`) ships instead, and says why:

- no registry program here (Debian's `docker-registry`), or sshd there refuses the forward;
- the registry lacks big layers (more than WARM_LIMIT): their first push compresses them,
  much slower than streaming them (the remote often has them already, and then the stream
  does not send them at all). The first ship of such layers is the stream alone, as before
  the tunnel existed; the next one (the user is iterating) is the stream with the registry
  filled at the same time, so that the changes after it take the tunnel.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from radops.errors import RadopsError, UsageError
from radops.executors.ssh import scripts
from radops.executors.ssh.shipping import (
    Registry,
    Shipping,
    SSHStream,
    pull_and_run,
)
from radops.images import shipregistry

if TYPE_CHECKING:
    from radops.executors.ssh.docker import RemoteDocker
    from radops.images.registry import PullCredential
    from radops.images.service import LocalImages
    from radops.progress import ProgressCallback

WARM_LIMIT = 64 << 20  # layers the registry lacks, beyond which the stream is faster this time
WARM_LIMIT_ENV = "RADOPS_TUNNEL_WARM_BYTES"  # another limit (bytes)


def warm_limit() -> int:
    try:
        return int(os.environ.get(WARM_LIMIT_ENV) or WARM_LIMIT)
    except ValueError:
        return WARM_LIMIT


class Tunnel(SSHStream):
    """Push here into radops' loopback registry, pull there through the SSH connection."""

    def _ship(
        self,
        local_tag: str,
        bases: list[str],
        run_argv: list[str],
        env: bytes,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:
        from radops.progress import human_bytes

        where = self.docker.executor
        diffs, sizes = self.images.layers(local_tag)
        cold = [d for d in diffs if d not in shipregistry.pushed()]
        cold_bytes = sum((sizes or {}).get(d, 0) for d in cold) if sizes else None
        why: str | None = None
        limit = warm_limit()
        if shipregistry.binary() is None:
            why = "no registry program here (Debian: apt-get install docker-registry)"
        elif cold and (cold_bytes is None or cold_bytes > limit):
            size = human_bytes(cold_bytes) if cold_bytes is not None else "layers"
            waited = shipregistry.deferred()
            fresh = [d for d in cold if d not in waited]
            if (sizes is None and fresh) or sum((sizes or {}).get(d, 0) for d in fresh) > limit:
                shipregistry.record_deferred(cold)
                progress(
                    f"Path: SSH stream (radops' registry lacks {size} of {local_tag}; the next "
                    "ship of them fills it, and the tunnel takes the changes after it)"
                )
                return super()._ship(local_tag, bases, run_argv, env, progress)
            progress(
                f"Path: SSH stream (radops' registry lacks {size} of {local_tag}; filling it "
                "now, so that the next change takes the tunnel)"
            )
            return self._stream_and_fill(local_tag, bases, diffs, run_argv, env, progress)
        if why is None:
            try:
                return self._tunnel(local_tag, diffs, run_argv, env, progress)
            except _NoTunnel as e:
                why = str(e)
        progress(f"Path: SSH stream to {where} ({why})")
        return super()._ship(local_tag, bases, run_argv, env, progress)

    def _stream_and_fill(
        self,
        local_tag: str,
        bases: list[str],
        diffs: list[str],
        run_argv: list[str],
        env: bytes,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:
        """The stream, and at the same time a push into the registry (its own engine client:
        one connection each)."""
        failed: list[str] = []

        def fill() -> None:
            try:
                with shipregistry.running() as registry:
                    ref = f"{registry.address}/{shipregistry.REPOSITORY}:"
                    ref += shipregistry.ship_tag(local_tag)
                    from radops.images.service import LocalImages

                    filler = LocalImages()  # its own client: the stream uses the other
                    try:
                        with _untagged(filler, ref):
                            filler.push(local_tag, ref, lambda _line: None, registry.auth())
                    finally:
                        filler.close()
                shipregistry.record_pushed(diffs)
            except (RadopsError, OSError) as e:
                failed.append(str(e))

        worker = threading.Thread(target=fill, name="radops-fill-registry", daemon=True)
        worker.start()
        # A failed or interrupted ship does not wait for the fill: it ends with radops (the
        # registry is stopped with it, and a push cut short is not recorded as pushed).
        result = super()._ship(local_tag, bases, run_argv, env, progress)
        if result[0] != 0:  # the job did not start: its error now, not after the fill
            return result
        if worker.is_alive():
            progress(
                "Filling radops' registry, so that the next change ships in seconds "
                "(the job is not waiting for it; Ctrl-C skips it)"
            )
            try:
                worker.join()
            except KeyboardInterrupt:  # the job started: its id must still reach the user
                progress("Skipped filling radops' registry; the next ship fills it instead")
                return result
        if failed:
            progress(f"radops' registry was not filled ({failed[0]}); the stream ships next time")
        return result

    def _tunnel(
        self,
        local_tag: str,
        diffs: list[str],
        run_argv: list[str],
        env: bytes,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:
        from radops.ssh.reverse import remote_forward

        where = self.docker.executor
        tag = shipregistry.ship_tag(local_tag)
        self._listing = None
        try:
            registry = shipregistry.start()
        except RadopsError as e:
            raise _NoTunnel(str(e)) from e
        with contextlib.ExitStack() as stack:
            stack.callback(registry.stop)
            local_ref = f"{registry.address}/{shipregistry.REPOSITORY}:{tag}"
            try:
                with _untagged(self.images, local_ref):
                    digest = self.images.push(local_tag, local_ref, progress, registry.auth())
            except RadopsError as e:  # radops' own registry (disk full, crashed): nothing
                raise _NoTunnel(str(e)) from e  # happened there yet, the stream ships
            shipregistry.record_pushed(diffs)
            try:
                direct = self.docker.conn.direct
                forward = stack.enter_context(remote_forward(direct, registry.port))
            except Exception as e:  # refused by sshd (AllowTcpForwarding no), or no connection
                raise _NoTunnel(f"{where} refused a port forward: {e}") from e
            progress(
                f"Path: tunnel (radops' registry on {registry.address} here, pulled by {where} "
                f"from 127.0.0.1:{forward.port} there through SSH)"
            )
            # By digest when the push said it: what was pushed, whatever the tag names now.
            ref = f"127.0.0.1:{forward.port}/{shipregistry.REPOSITORY}"
            ref += f"@{digest}" if digest else f":{tag}"
            sizes = shipregistry.layer_sizes(registry, tag)
            pulling = _Pulling({digest[7:19]: size for digest, size in sizes.items()})
            config = _docker_config(f"127.0.0.1:{forward.port}", registry.auth())
            script = scripts.auth_pull_tag_run_argv(self.docker.path, ref, local_tag, run_argv)
            label = f"Sending {local_tag} to {where} (tunnel)"
            progress(label)
            with _Ticker(lambda: forward.sent, pulling.total, progress, label):
                stdin = config + b"\n" + env
                return pull_and_run(self.docker, script, stdin, ref, progress, False, pulling)
        raise AssertionError("not reached")


@contextlib.contextmanager
def _untagged(images: LocalImages, ref: str) -> Iterator[None]:
    """The push tags the image as `ref` here: gone again however the push ends."""
    try:
        yield
    finally:
        images.untag(ref)


class _NoTunnel(Exception):
    """The tunnel cannot run here: the stream ships instead."""


def _docker_config(server: str, auth: dict[str, str]) -> bytes:
    from radops.images.registry import PullCredential

    return PullCredential(server, auth["username"], auth["password"]).docker_config()


class _Pulling:
    """What the remote pulls: the compressed layers it downloads (its `Pulling fs layer`
    events; the others it has), plus the manifest and config."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes  # compressed size by short digest (as docker pull shows layers)
        self.fetching: set[str] = set()

    def __call__(self, short: str, state: str) -> None:
        if state == "Pulling fs layer":
            self.fetching.add(short)

    def total(self) -> int | None:
        if not self.sizes:
            return None
        return sum(self.sizes.get(short, 0) for short in self.fetching) + 8192


class _Ticker:
    """A transfer meter fed from a counter (bytes through the tunnel) while a block runs."""

    def __init__(
        self,
        count: Callable[[], int],
        total: Callable[[], int | None],
        progress: ProgressCallback,
        label: str,
    ) -> None:
        from radops.progress import transfer_meter

        self.count = count
        self.total = total
        self.meter = transfer_meter(progress, label, None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tick, name="radops-meter", daemon=True)

    def _tick(self) -> None:
        while not self.stop.wait(0.2):
            self.meter.update(self.count(), self.total())

    def __enter__(self) -> _Ticker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.meter.update(self.count(), self.total())
        self.meter.finish()


def choose_shipping(
    transfer: str,
    registry: str | None,
    images: LocalImages,
    docker: RemoteDocker,
    credential: PullCredential | None = None,
) -> Shipping:
    """The strategy for `--transfer` (auto: the registry if one is configured, else the
    tunnel, which falls back to the SSH stream where it cannot run)."""
    if transfer == "auto":
        transfer = "registry" if registry else "tunnel"
    if transfer == "ssh":
        return SSHStream(images, docker)
    if transfer == "tunnel":
        return Tunnel(images, docker)
    if not registry:
        raise UsageError(
            "no registry configured for --transfer registry",
            "Set one: `radops config set registry ghcr.io/OWNER` (or RADOPS_REGISTRY).",
        )
    return Registry(images, docker, registry, credential)
