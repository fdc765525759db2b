"""`LocalImages`: the images a job needs, made on the local engine only when missing."""

from __future__ import annotations

import contextlib
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
    build: context.BuildOptions = context.BuildOptions()


class LocalImages:
    """Plan, build, export and push images on the local engine (shared with its owner)."""

    def __init__(self, engine: LocalEngine | None = None) -> None:
        self.engine = engine or LocalEngine()

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
        tag = context.tag_for_context(folder, dockerfile, platform, build)
        return ImagePlan(folder, dockerfile, platform, tag, build)

    def ensure(self, plan: ImagePlan, progress: ProgressCallback) -> str:
        """The planned image's tag, built only if the engine lacks it. Runs of the same content
        at once build it once: the others wait for the build (a lock per tag), then reuse it."""
        folder, dockerfile, platform, tag, options = plan
        fresh = options.no_cache  # --no-cache: build again even where the tag exists
        if not fresh and self._has(tag):
            progress(f"Image {tag} is up to date; not rebuilding")
            return tag
        with _build_lock(tag, progress):
            if not fresh and self._has(tag):  # built by another radops while this one waited
                progress(f"Image {tag} was just built by another radops; not rebuilding")
                return tag
            how = " for " + platform if platform else ""
            progress(f"Building {tag} from {folder}{how}" + (" (--no-cache)" if fresh else ""))
            build.build_image(self.engine.api, folder, dockerfile, tag, progress, platform, options)
        return tag

    def _has(self, tag: str) -> bool:
        import docker.errors

        with docker_errors("checking for the image"):
            try:
                self.engine.api.inspect_image(tag)
            except docker.errors.ImageNotFound:
                return False
        return True

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


BUILD_LOCK_WAIT_S = 3600  # a build may take long; a waiting run says what it waits for


@contextlib.contextmanager
def _build_lock(tag: str, progress: ProgressCallback) -> Iterator[None]:
    """Hold the lock for building `tag` on this machine (a file in radops' cache folder)."""
    import hashlib

    import platformdirs
    from filelock import FileLock, Timeout

    folder = Path(platformdirs.user_cache_dir("radops", appauthor=False)) / "build-locks"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = hashlib.sha256(tag.encode()).hexdigest()[:24] + ".lock"
    lock = FileLock(str(folder / name), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"Waiting for another radops that is building {tag}")
        try:
            lock.acquire(timeout=BUILD_LOCK_WAIT_S)
        except Timeout as e:
            raise RadopsError(
                f"another radops was still building {tag} after {BUILD_LOCK_WAIT_S}s",
                "Check for a stuck radops or docker build (`ps`); the lock goes with it.",
            ) from e
    try:
        yield
    finally:
        lock.release()
