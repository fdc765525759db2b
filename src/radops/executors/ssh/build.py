"""`--build remote`: the build context travels to the executor and its own engine builds the
image there; it is tagged and the job started in one remote command."""

from __future__ import annotations

import os
import secrets
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from radops.errors import BuildError, UsageError
from radops.executors.header import Header
from radops.executors.ssh import scripts
from radops.executors.ssh.shipping import Shipping

if TYPE_CHECKING:
    from radops.images.service import ImagePlan
    from radops.progress import ProgressCallback


class RemoteBuild(Shipping):
    """Build on the executor's engine: the build context travels (as hashed here, ignore rules
    applied), never an image; no Docker engine is needed on this machine. The image is tagged
    there only if the context did not change while it was sent and built."""

    def check(self, plan: ImagePlan) -> None:
        if os.path.isabs(plan.dockerfile):
            raise UsageError(
                "--build remote needs the Dockerfile inside the build folder",
                f"Move {plan.dockerfile} into {plan.context}, or build here with --build local.",
            )
        if plan.build.needs_buildkit:
            flags = " and ".join(plan.build.needs_buildkit)
            raise UsageError(
                f"{flags} cannot be used with --build remote: the secret or agent is on this "
                "machine",
                "Build here with --build local.",
            )

    def ship_and_run(
        self, local_tag: str, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        raise AssertionError("a remote build ships no image")  # pragma: no cover

    def deliver(
        self, plan: ImagePlan, run_argv: list[str], env: bytes, progress: ProgressCallback
    ) -> tuple[int, bytes]:
        # The image's name until radops tags it: a radops name (`prune --images` removes one
        # that radops, killed right then, left), unique to this build.
        building = f"{plan.tag.rpartition(':')[0]}:build-{secrets.token_hex(6)}"
        staged = self._stage(plan, progress)
        try:
            self._build(plan, building, staged, progress)
            changed = plan.snapshot.changed()
        except BaseException:
            self._keep(staged, False)
            raise
        # The tree there is kept for the next build only if it is exactly the hashed content.
        self._keep(staged, changed is None)
        if changed is not None:
            # Gone with its name, unless another names it too (a cached build of an image that
            # is tagged already).
            self.docker.run_argv(self.docker.argv("rmi", building))
            raise BuildError(
                f"{changed!r} in {plan.context} changed while the image was building; "
                "the image was not tagged",
                "Run again once the edit is saved: a radops tag only ever names the exact "
                "content it was built from.",
            )
        script = scripts.tag_then_run_argv(self.docker.path, building, plan.tag, run_argv)
        status, out, err = self.docker.conn.run(script, stdin=env)
        header = Header.find(out)
        if header is None or header.ok:
            return status, err
        raise self.docker.error(header.status, header.rest, f"tagging {plan.tag}")

    def _stage(self, plan: ImagePlan, progress: ProgressCallback) -> _Staged | None:
        """Send what changed since the folder's last context there into a new tree there
        (radops.executors.ssh.contexts); None if that cannot be done (the whole context then
        travels on the build's stdin)."""
        from radops.executors.ssh import contexts
        from radops.images.archive import archive_size, context_names, stream_tar
        from radops.progress import human_bytes, metered, transfer_meter

        where, run = self.docker.executor, self.docker.conn.run
        names = context_names(plan.snapshot)
        key = contexts.key(plan.snapshot)
        new = contexts.manifest(plan.snapshot, names)
        status, out, _ = run(["sh", "-c", contexts.STATE_SCRIPT, "radops-context", key])
        state = contexts.parse_state(out) if status == 0 else None
        delta = contexts.delta(new, state[1] if state else None)
        root = plan.snapshot.context
        size = archive_size(plan.snapshot, delta.changed)
        label = f"Sending the build context to {where}"
        if state is not None:
            label += f" ({len(delta.changed)} of {len(names)} entries changed)"
        progress(label)
        meter = transfer_meter(progress, label, size, estimate=True)
        chunks = stream_tar(lambda tar: contexts.fill(tar, root, delta))
        argv = ["sh", "-c", contexts.STAGE_SCRIPT, "radops-context", key, state[0] if state else ""]
        status, output = self.docker.conn.run_with_input(argv, metered(chunks, meter))
        staged = contexts.staged_folder(output) if status == 0 else None
        if staged is None:
            progress(f"Could not keep the build context on {where}: sending it whole")
            return None
        if state is not None:
            total = archive_size(plan.snapshot, names)
            progress(
                f"Left out {human_bytes(max(total - size, 0))} of the context that {where} has"
            )
        return _Staged(key, staged[0], staged[1], new.name)

    def _keep(self, staged: _Staged | None, keep: bool) -> None:
        """Keep the staged tree as the folder's newest context there, or drop it."""
        if staged is None:
            return
        from radops.executors.ssh import contexts

        name = staged.name if keep else "-"
        argv = ["sh", "-c", contexts.KEEP_SCRIPT, "radops-context", staged.key, staged.folder]
        argv += [staged.tree, name]
        self.docker.conn.run(argv)

    def _build(
        self, plan: ImagePlan, building: str, staged: _Staged | None, progress: ProgressCallback
    ) -> str:
        """Build it there as `building`, from the staged tree or the context sent on stdin;
        the new image's ID."""
        from radops.images.archive import context_archive
        from radops.images.build import build_failure, options_argv, worth_showing
        from radops.progress import metered, transfer_meter

        where = self.docker.executor
        progress(f"Building {plan.tag} on {where}")
        # A folder context's --file is read from the current folder, not the context.
        tree = staged.tree if staged is not None else "-"
        dockerfile = plan.dockerfile if staged is None else f"{tree}/{plan.dockerfile}"
        options = ["--file", dockerfile, *options_argv(plan.build)]
        stdin = None
        if staged is None:
            chunks, size = context_archive(plan.snapshot)
            label = f"Sending the build context to {where}"
            meter = transfer_meter(progress, label, size or None, estimate=True)
            stdin = metered(chunks, meter)
            argv = scripts.remote_build_argv(self.docker.path, building, options)
        else:
            argv = scripts.remote_build_argv(self.docker.path, building, options, tree)
        tail: deque[str] = deque(maxlen=24)
        out, partial, status = b"", b"", 0
        for stream, data in self.docker.conn.execute(argv, stdin):
            if stream == "stdout":
                out += data
            elif stream == "stderr":
                *lines, partial = (partial + data).split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip()
                    if line == scripts.LEGACY_BUILDER:
                        progress(f"Warning: the docker CLI on {where} has no BuildKit: {NO_BK}")
                    elif worth_showing(line):
                        tail.append(line)
                        progress(line)
            else:
                status = int(data)
        if partial.strip():
            tail.append(partial.decode(errors="replace").rstrip())
        header = Header.find(out)
        if header is None:  # the script itself failed: no docker there, no mktemp, ...
            raise self.docker.error(status, "\n".join(tail).encode(), "building the image")
        if not header.ok:
            if header.status in (126, 127) and not tail:
                raise self.docker.error(header.status, b"", "building the image")
            raise build_failure(list(tail))
        return header.rest.decode().strip()


@dataclass(frozen=True)
class _Staged:
    """A context tree made there for this build: the folder's key, its temporary folder, the
    tree to build from, the tree's name once kept."""

    key: str
    folder: str
    tree: str
    name: str


# What a machine whose docker CLI has no BuildKit needs.
NO_BK = "install docker-buildx-plugin there; building with the classic builder"
