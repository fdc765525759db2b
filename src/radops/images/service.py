"""`LocalImages`: the images a job needs, made on the local engine only when missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from radops.errors import RadopsError
from radops.images import build, context, registry
from radops.images.engine import LocalEngine, docker_errors
from radops.progress import ProgressCallback


class ImagePlan(NamedTuple):
    """What to build, and the content-hash tag it gets."""

    context: Path
    dockerfile: str
    platform: str | None  # None: the local engine's own
    tag: str


class LocalImages:
    """Plan, build, export and push images on the local engine (shared with its owner)."""

    def __init__(self, engine: LocalEngine | None = None) -> None:
        self.engine = engine or LocalEngine()

    def plan(self, folder: Path, dockerfile: str, platform: str | None = None) -> ImagePlan:
        """Check the context and hash it into its tag; touches no engine unless `platform`
        must be compared with a non-default engine's own.

        `platform` (e.g. linux/arm64 for a remote executor) builds for another architecture
        when it differs from the local engine's own.
        """
        folder, dockerfile = context.check_context(folder, dockerfile)
        if platform is not None and platform == self.engine.platform():
            platform = None
        tag = context.tag_for_context(folder, dockerfile, platform)
        return ImagePlan(folder, dockerfile, platform, tag)

    def ensure(self, plan: ImagePlan, progress: ProgressCallback) -> str:
        """The planned image's tag, built only if the engine lacks it."""
        import docker.errors

        folder, dockerfile, platform, tag = plan
        with docker_errors("checking for the image"):
            try:
                self.engine.api.inspect_image(tag)
                progress(f"Image {tag} is up to date; not rebuilding")
                return tag
            except docker.errors.ImageNotFound:
                pass
        progress(f"Building {tag} from {folder}" + (f" for {platform}" if platform else ""))
        build.build_image(self.engine.api, folder, dockerfile, tag, progress, platform)
        return tag

    def export(self, tag: str) -> Iterator[bytes]:
        """`docker save` of `tag` as a stream of chunks."""
        from docker.errors import APIError, DockerException

        try:
            yield from self.engine.api.get_image(tag, chunk_size=1 << 20)
        except (APIError, DockerException) as e:
            raise RadopsError(f"cannot export {tag} from the local engine: {e}") from e

    def push(self, tag: str, ref: str, progress: ProgressCallback) -> None:
        """Push `tag` to a registry as `ref`."""
        registry.push(self.engine.api, tag, ref, progress)

    def close(self) -> None:
        self.engine.close()
