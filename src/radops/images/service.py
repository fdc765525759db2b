"""`LocalImages`: the images a job needs, made on the local engine only when missing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from radops.errors import BuildError, NotFoundError, RadopsError, UsageError
from radops.images import context
from radops.images.engine import LocalEngine, docker_errors
from radops.progress import ProgressCallback

if TYPE_CHECKING:
    from radops.images import builder as builder_module


class ImagePlan(NamedTuple):
    """What to build, and the content-hash tag it gets."""

    context: Path
    dockerfile: str
    platform: str | None  # None: the local engine's own
    tag: str
    build: context.BuildOptions
    snapshot: context.Snapshot  # the content as hashed into `tag`


class LocalImages:
    """Plan, build, export and push images on the local engine (shared with its owner)."""

    def __init__(self, engine: LocalEngine | None = None) -> None:
        self.engine = engine or LocalEngine()
        self._builder: builder_module.Builder | None = None

    @property
    def builder(self) -> builder_module.Builder:
        """How this machine builds (BuildKit through the docker CLI, else the legacy builder)."""
        from radops.images.builder import find_builder

        if self._builder is None:
            self._builder = find_builder()
        return self._builder

    def plan(
        self,
        folder: Path,
        dockerfile: str,
        platform: str | None = None,
        build: context.BuildOptions | None = None,
    ) -> ImagePlan:
        """Check the context and hash it into its tag; touches no engine unless `platform`
        must be compared with a non-default engine's own.

        `platform` (e.g. linux/arm64 for a remote executor) builds for another architecture
        when it differs from the local engine's own.
        """
        folder, dockerfile = context.check_context(folder, dockerfile)
        if platform is not None and platform == self.engine.platform():
            platform = None
        build = build or context.BuildOptions()
        snapshot = context.snapshot(folder, dockerfile, platform, build)
        return ImagePlan(folder, dockerfile, platform, snapshot.tag, build, snapshot)

    def ensure(self, plan: ImagePlan, progress: ProgressCallback) -> str:
        """The planned image's tag, built only if the engine lacks it. Runs of the same content
        at once build it once: the others wait for the build (a lock per tag), then reuse it.

        The tag goes on the new image only if the context is still what was hashed into it
        (`Snapshot.changed`), so a tag always names the content it was built from.
        """
        tag, options = plan.tag, plan.build
        fresh = options.no_cache  # --no-cache: build again even where the tag exists
        if not fresh and self._has(tag):
            progress(f"Image {tag} is up to date; not rebuilding")
            return tag
        from radops.images import build
        from radops.images.builder import NO_BUILDKIT_HINT

        builder = self.builder
        if not builder.buildkit and options.needs_buildkit:
            flags = options.needs_buildkit
            raise UsageError(
                f"{' and '.join(flags)} {'need' if len(flags) > 1 else 'needs'} BuildKit, and "
                f"this machine has none ({builder.why})",
                NO_BUILDKIT_HINT,
            )
        with _build_lock(tag, progress):
            if not fresh and self._has(tag):  # built by another radops while this one waited
                progress(f"Image {tag} was just built by another radops; not rebuilding")
                return tag
            if not builder.buildkit:
                progress(f"Warning: no BuildKit ({builder.why}): using Docker's legacy builder, "
                         f"which cannot build RUN --mount. {NO_BUILDKIT_HINT}")  # fmt: skip
            how = " for " + plan.platform if plan.platform else ""
            progress(
                f"Building {tag} from {plan.context}{how}" + (" (--no-cache)" if fresh else "")
            )
            image_id = build.build_image(
                self.engine, builder, plan.context, plan.dockerfile, progress,
                plan.platform, options,
            )  # fmt: skip
            self._tag_unchanged(plan, image_id)
        return tag

    def _tag_unchanged(self, plan: ImagePlan, image_id: str) -> None:
        """Tag `image_id` as the plan's tag if its context still is what was hashed; otherwise
        drop the image: it may hold other content than the tag names."""
        changed = plan.snapshot.changed()
        if changed is not None:
            self._remove_if_untagged(image_id)
            raise BuildError(
                f"{changed!r} in {plan.context} changed while the image was building; "
                "the image was not tagged",
                "Run again once the edit is saved: a radops tag only ever names the exact "
                "content it was built from.",
            )
        repository, _, name = plan.tag.rpartition(":")
        # Under the build lock the tag was missing, unless --no-cache builds it again.
        replaced = self._image_id(plan.tag) if plan.build.no_cache else None
        self.engine.call(
            "POST", f"/images/{image_id}/tag", "tagging the image",
            query={"repo": repository, "tag": name},
        )  # fmt: skip
        if replaced and replaced != image_id:  # --no-cache rebuilt it: drop the old one
            self._remove_if_untagged(replaced)

    def _image_id(self, tag: str) -> str | None:
        from urllib.parse import quote

        what = "checking for the image"
        try:
            image = self.engine.call("GET", f"/images/{quote(tag, safe='/:')}/json", what)
        except NotFoundError:
            return None
        return str(image["Id"])

    def _remove_if_untagged(self, image_id: str) -> None:
        """Remove an image nothing names (no tag) and no container uses; leave it otherwise."""
        import docker.errors

        with docker_errors("removing an image"), contextlib.suppress(docker.errors.APIError):
            if not self.engine.api.inspect_image(image_id).get("RepoTags"):
                self.engine.api.remove_image(image_id)

    def _has(self, tag: str) -> bool:
        return self._image_id(tag) is not None

    def layers(self, tag: str) -> tuple[list[str], dict[str, int] | None]:
        """The image's layers (diff IDs, bottom first) and, when the engine's history tells
        them apart, each layer's size in bytes (else None)."""
        with docker_errors(f"inspecting {tag}"):
            info = self.engine.api.inspect_image(tag)
            history = self.engine.api.history(tag)
        diffs = list(info.get("RootFS", {}).get("Layers") or [])
        # History is newest first, one entry per Dockerfile step: a layer's entry has its size,
        # a step without a layer 0. An empty layer also says 0: then the sizes are not mapped.
        sizes = [int(h.get("Size") or 0) for h in reversed(history) if h.get("Size")]
        if len(sizes) != len(diffs):
            return diffs, None
        by_layer: dict[str, int] = {}
        for diff, size in zip(diffs, sizes, strict=True):
            by_layer[diff] = by_layer.get(diff, 0) + size
        return diffs, by_layer

    def uses_containerd_store(self) -> bool:
        """Whether this engine stores images in containerd (its `docker save` names layers by
        their compressed digest)."""
        with docker_errors("asking the engine about its storage"):
            status = self.engine.api.info().get("DriverStatus") or []
        return "io.containerd.snapshotter" in str(status)

    def export(self, tag: str) -> Iterator[bytes]:
        """`docker save` of `tag` as a stream of chunks."""
        from docker.errors import APIError, DockerException

        try:
            yield from self.engine.api.get_image(tag, chunk_size=1 << 20)
        except (APIError, DockerException) as e:
            raise RadopsError(f"cannot export {tag} from the local engine: {e}") from e

    def push(
        self, tag: str, ref: str, progress: ProgressCallback, auth: dict[str, str] | None = None
    ) -> str | None:
        """Push `tag` to a registry as `ref` (with `auth`, else this machine's login there);
        the digest of what was pushed, if the engine said."""
        from radops.images import registry

        return registry.push(self.engine.api, tag, ref, progress, auth)

    def untag(self, ref: str) -> None:
        """Remove the tag `ref` (the image stays under its other tags)."""
        from docker.errors import APIError, DockerException

        with contextlib.suppress(APIError, DockerException):
            self.engine.api.remove_image(ref, noprune=True)

    def close(self) -> None:
        self.engine.close()


@contextlib.contextmanager
def _build_lock(tag: str, progress: ProgressCallback) -> Iterator[None]:
    """Hold the lock for building `tag` on this machine (a file in radops' cache folder)."""
    from radops.images.locks import waiting_lock

    with waiting_lock("build-locks", tag, f"building {tag}", progress):
        yield
