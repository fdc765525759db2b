"""How an image built here reaches a remote engine: strategies behind one small interface.

A strategy gets the image onto the remote engine and starts the job there, so that it can
fold the start into its last remote command (the registry's pull-then-run): `SSHStream` (the
layers the remote lacks, over SSH), `Registry`, and `RemoteBuild` (radops.executors.ssh.build:
only the build context travels).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from radops.errors import RadopsError
from radops.executors.docker.argv import error_line
from radops.executors.header import Header
from radops.executors.ssh import layers, scripts
from radops.images.registry import PULL_HINT, registry_server

if TYPE_CHECKING:
    from radops.executors.ssh.docker import RemoteDocker
    from radops.images.registry import PullCredential
    from radops.images.service import ImagePlan, LocalImages
    from radops.progress import ProgressCallback

_AUTH_FAILURE = re.compile(r"unauthorized|denied|authentication required|no basic auth", re.I)


class Shipping(abc.ABC):
    """Gets local images onto one remote engine (`docker`) and starts jobs from them."""

    def __init__(self, images: LocalImages, docker: RemoteDocker) -> None:
        self.images = images
        self.docker = docker

    def remote_ref(self, local_tag: str) -> str:
        """The name the remote engine knows the image by."""
        return local_tag

    def check(self, plan: ImagePlan) -> None:
        """Refuse, before anything runs, what this strategy cannot do with `plan`."""
        return None

    def first_try(self, plan: ImagePlan, run_argv: list[str]) -> list[str]:
        """The job's first remote command, which starts it if the engine has the image. A
        strategy may fold into it what it would ask the engine next when the image is
        missing, and read the answer in `tried`."""
        return run_argv

    def tried(self, out: bytes) -> None:
        """The first try's stdout, after it found no image."""
        return None

    def deliver(
        self, plan: ImagePlan, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        """Get the plan's image onto the remote engine (built here if need be), then run
        `run_argv` with `env` on its stdin; return that run's exit status and stderr."""
        self.images.ensure(plan, progress)
        return self.ship_and_run(plan.tag, run_argv, env, progress)

    def run(
        self, plan: ImagePlan, run_argv: list[str], env: bytes, fresh: bool,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:  # fmt: skip
        """Run `run_argv`, shipping the image first if the remote lacks it (always, when
        `fresh`: --no-cache built the same content again); its exit status and stderr."""
        # Tags are content hashes, so a remote that has the tag has this exact image: try to run
        # first (one round trip) and ship only when the engine says it lacks the image.
        if fresh:
            return self.deliver(plan, run_argv, env, progress)
        status, out, err = self.docker.conn.run(self.first_try(plan, run_argv), stdin=env)
        if status != 0 and b"No such image" in err:
            return self.deliver_once(plan, run_argv, env, out, progress)
        if status == 0:
            ref = self.remote_ref(plan.tag)
            progress(f"{self.docker.executor} already has {ref}; nothing to ship")
        return status, err

    def deliver_once(
        self,
        plan: ImagePlan,
        run_argv: list[str],
        env: bytes,
        tried_out: bytes,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:
        """`deliver`, after a first try that found no image (its stdout `tried_out`), by one
        radops at a time per executor and image: runs of one folder at once ship it once; the
        others wait for that, then start their job from what it shipped."""
        from radops.images.locks import waiting_lock

        image, where = self.remote_ref(plan.tag), self.docker.executor
        doing = f"shipping {image} to {where}"
        with waiting_lock("ship-locks", f"{where}\n{image}", doing, progress) as waited:
            if waited:
                status, _, err = self.docker.conn.run(run_argv, stdin=env)
                if not (status != 0 and b"No such image" in err):
                    if status == 0:
                        progress(f"{where} already has {image} (another radops shipped it)")
                    return status, err
            else:
                self.tried(tried_out)
            return self.deliver(plan, run_argv, env, progress)

    @abc.abstractmethod
    def ship_and_run(
        self, local_tag: str, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        """Ship `local_tag`, then run `run_argv` (a `docker run` for `remote_ref`) with `env`
        on its stdin; return that run's exit status and stderr."""


class SSHStream(Shipping):
    """`docker save | ssh host docker load`, streamed through the executor's one connection,
    without the files of the layers the remote engine already has (see `layers`)."""

    _listing: bytes | None = None  # the first try's look at the remote's layers

    def first_try(self, plan: ImagePlan, run_argv: list[str]) -> list[str]:
        # A missing image means a transfer, whose first step is a look at the layers there:
        # asked in the same round trip.
        repository = plan.tag.rpartition(":")[0]
        bases = _base_images(plan)
        return scripts.run_or_layers_argv(self.docker.path, repository, bases, run_argv)

    def tried(self, out: bytes) -> None:
        _, mark, listing = out.partition(scripts.LAYERS_MARK)
        # A listing cut short (a docker command there failed) is asked for again, alone.
        whole = mark and scripts.LAYERS_END in listing.splitlines()
        self._listing = listing if whole else None

    def deliver(
        self, plan: ImagePlan, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        self.images.ensure(plan, progress)
        return self._ship(plan.tag, _base_images(plan), run_argv, env, progress)

    def ship_and_run(
        self, local_tag: str, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        return self._ship(local_tag, [], run_argv, env, progress)

    def _ship(
        self,
        local_tag: str,
        bases: list[str],
        run_argv: list[str],
        env: bytes,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:
        """Send what the remote lacks of `local_tag`, judged by its earlier versions there and
        the images `bases` (the Dockerfile's FROM), then run. (`Tunnel` overrides it to choose
        its path, and streams with this one.)"""

        repository = local_tag.rpartition(":")[0]
        out, self._listing = self._listing, None
        if out is None:
            out = self.docker.run_script(
                scripts.layers_argv(self.docker.path, repository, bases),
                "listing the remote engine's layers",
            )
        remote = layers.parse_remote_layers(out)
        diffs, sizes = self.images.layers(local_tag)
        where = self.docker.executor
        needed = set(diffs)
        if not remote.partial_ok:
            progress(f"{where} uses the containerd image store: sending the whole image")
        elif remote.needed(diffs) != needed and self.images.uses_containerd_store():
            # Its archive names layers by compressed digest: nothing could be left out.
            progress(
                "this machine's engine uses the containerd image store: sending the whole image"
            )
        else:
            needed = remote.needed(diffs)
        if self._send(local_tag, diffs, needed, sizes, progress) is None:
            # The remote removed a layer between the look and the load: send everything.
            progress(f"{where} lacked a layer it listed a moment ago: sending the whole image")
            self._send(local_tag, diffs, set(diffs), sizes, progress)
        return self.docker.run_argv(run_argv, stdin=env)

    def _send(
        self,
        local_tag: str,
        diffs: list[str],
        needed: set[str],
        sizes: dict[str, int] | None,
        progress: ProgressCallback,
    ) -> layers.FilterStats | None:
        """Send the archive with the files of `needed` layers only, and load it there. None if
        a partial archive was refused for a missing layer (the caller sends the whole one)."""
        from radops.progress import human_bytes, metered, transfer_meter

        where = self.docker.executor
        stats = layers.FilterStats()
        partial = needed != set(diffs)
        # About what the archive holds: the layers' content (their tar headers aside).
        total = (sum(sizes.get(d, 0) for d in needed) or None) if sizes is not None else None
        if partial:
            kept = sum(1 for d in diffs if d in needed)
            label = f"Sending {local_tag} to {where} ({kept} of {len(diffs)} layers)"
            chunks = layers.filtered_archive(
                self.images.export(local_tag), needed, set(diffs), stats, diffs
            )
        else:
            label = f"Sending {local_tag} to {where}"
            chunks = self.images.export(local_tag)
        progress(label)
        # The archive's metadata and the tar headers come on top: a lower bound, shown as `about`.
        meter = transfer_meter(progress, label, total, estimate=True)
        load = self.docker.argv("load", "--quiet")
        status, output = self.docker.conn.run_with_input(load, metered(chunks, meter))
        if status != 0:
            text = output.decode(errors="replace")
            if partial and _MISSING_LAYER.search(text):
                return None
            reason = error_line(text) or f"exit status {status}"
            raise RadopsError(f"`docker load` on the remote machine failed: {reason}")
        if partial:
            progress(
                f"Left out {stats.skipped_layers} layer(s), {human_bytes(stats.skipped_bytes)}, "
                f"that {where} has"
            )
        return stats


def _base_images(plan: ImagePlan) -> list[str]:
    """The images the plan's Dockerfile builds FROM (its layers are likely there already)."""

    dockerfile = plan.context / plan.dockerfile  # an absolute path stays itself
    try:
        return layers.base_images(dockerfile.read_text(errors="replace"))
    except OSError:
        return []


# `docker load` opening a layer file that a partial archive left out: a graph-driver engine
# says `<path>: no such file or directory`, one with the containerd image store
# `failed to resolve layers: layer "<path>" not found`.
_MISSING_LAYER = re.compile(r"(/layer\.tar|blobs/sha256/[0-9a-f]{64})(: no such file|\" not found)")


class Registry(Shipping):
    """Push here, pull there: only the layers the registry or the remote lack move. The remote
    pulls as it is (its own `docker login`), or with the configured pull credential, logged in
    for that one pull; this machine's push credential never leaves it."""

    def __init__(
        self,
        images: LocalImages,
        docker: RemoteDocker,
        registry: str,
        credential: PullCredential | None = None,
    ) -> None:
        super().__init__(images, docker)
        self.registry = registry.rstrip("/")
        self.credential = credential

    def remote_ref(self, local_tag: str) -> str:
        return f"{self.registry}/{local_tag}"

    def ship_and_run(
        self, local_tag: str, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        """Push, then pull and start the job in one remote command."""
        ref = self.remote_ref(local_tag)
        self.images.push(local_tag, ref, progress)
        server = registry_server(ref)
        if self.credential is None:
            progress(f"Pulling {ref} on {self.docker.executor}")
            script = scripts.pull_then_run_argv(self.docker.path, ref, run_argv)
        else:
            user = self.credential.username
            progress(f"Pulling {ref} on {self.docker.executor} (logged in to {server} as {user})")
            script = scripts.auth_pull_then_run_argv(self.docker.path, ref, run_argv)
            env = self.credential.docker_config() + b"\n" + env  # the script reads it first
        return pull_and_run(self.docker, script, env, ref, progress, self.credential is None)


def pull_and_run(
    docker: RemoteDocker,
    script: list[str],
    env: bytes,
    ref: str,
    progress: ProgressCallback,
    own_login: bool = True,
    on_layer: Callable[[str, str], None] | None = None,
) -> tuple[int, bytes]:
    """Run a pull-then-run script; return the run's exit status and stderr, or raise the
    pull's failure (`own_login`: the remote pulled with its own credentials, if any;
    `on_layer`: told each layer event of the pull)."""
    status, out, err = _run_pulling(docker, script, env, ref, progress, on_layer)
    header = Header.find(out)
    if header is None or header.ok:
        return status, err  # docker run's (or sh's own failure)
    text = header.rest.decode(errors="replace")
    if own_login and _AUTH_FAILURE.search(text):
        raise RadopsError(
            f"{registry_server(ref)} refused the pull on {docker.executor}: {error_line(text)}",
            PULL_HINT,
        )
    raise docker.error(header.status, header.rest, f"pulling {ref}")


def _run_pulling(
    docker: RemoteDocker,
    script: list[str],
    env: bytes,
    ref: str,
    progress: ProgressCallback,
    on_layer: Callable[[str, str], None] | None,
) -> tuple[int, bytes, bytes]:
    """Run a pull-then-run script: (exit status, stdout, stderr without the pull's progress
    lines, which become progress: layers done of layers)."""
    pull = _PullProgress(ref, docker.executor, progress, on_layer)
    out, err, partial, status = b"", b"", b"", 0
    for stream, data in docker.conn.execute(script, [env]):
        if stream == "stdout":
            out += data
        elif stream == "stderr":
            *lines, partial = (partial + data).split(b"\n")
            err += b"".join(line + b"\n" for line in lines if not pull.feed(line))
        else:
            status = int(data)
    pull.progress.flush()
    return status, out, err + partial


class _PullProgress:
    """`docker pull`'s lines (no terminal: one per layer event) as `N of M layers` progress."""

    _LAYER = re.compile(r"^([0-9a-f]{12}): (.+)$")
    _DONE = ("Pull complete", "Already exists")

    def __init__(
        self,
        ref: str,
        where: str,
        progress: ProgressCallback,
        on_layer: Callable[[str, str], None] | None = None,
    ) -> None:
        from radops.progress import Passing

        # Events come many a second: plain output gets one line every few seconds (and the
        # last one, `finish`).
        self.ref, self.where = ref, where
        self.progress = Passing(progress)
        self.on_layer = on_layer  # (short digest, state) of each layer event
        self.layers: dict[str, str] = {}
        self.shown = (-1, -1)

    def feed(self, raw: bytes) -> bool:
        """Take one stderr line; False if it is not the pull's."""
        line = raw.decode(errors="replace").strip()
        layer = self._LAYER.match(line)
        if layer:
            self.layers[layer[1]] = layer[2]
            if self.on_layer is not None:
                self.on_layer(layer[1], layer[2])
            done = sum(1 for state in self.layers.values() if state in self._DONE)
            if (done, len(self.layers)) != self.shown:
                self.shown = (done, len(self.layers))
                # Not `Pulling ...`: that one line stays on a terminal, these only pass by.
                self.progress(
                    f"{self.where} pulled {done} of {len(self.layers)} layers of {self.ref}"
                )
            return True
        return (
            line == self.ref
            or line.startswith(("Digest: ", "Status: "))
            or (": Pulling from " in line)
        )
