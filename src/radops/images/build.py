"""Build an image on the local engine into an untagged image, streaming the build's output lines
as progress: with BuildKit through the docker CLI (`builder`), else the engine API's legacy
builder. Tagging is the caller's, after it has checked the context did not change meanwhile."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import BuildError
from radops.images.builder import NO_BUILDKIT_HINT, Builder
from radops.images.context import BuildOptions, read_dockerignore
from radops.progress import ProgressCallback

if TYPE_CHECKING:
    from radops.images.engine import LocalEngine

TAIL_LINES = 6
_NOISE = re.compile(r"^#\d+ sha256:[0-9a-f]+$")  # BuildKit's vertex digests: nothing to read
# Lines that frame an error or mark a step done: not worth a place in the error's last lines.
_FRAME = re.compile(r"^(------| > |#\d+ (DONE [\d.]+s|CACHED)$)")
# What BuildKit wraps around the one thing that went wrong.
_WRAPPER = re.compile(
    r"^(?:ERROR: |error: |failed to solve(?: with frontend [\w.]+)?: |"
    r"failed to create LLB definition: |rpc error: code = \w+ desc = )"
)


def build_image(
    engine: LocalEngine,
    builder: Builder,
    context: Path,
    dockerfile: str,
    progress: ProgressCallback,
    platform: str | None = None,
    options: BuildOptions | None = None,
) -> str:
    """Build `context` (Dockerfile `dockerfile`, relative to it or absolute) and return the new
    image's ID; the image has no tag yet. BuildKit builds go through the docker CLI; only the
    legacy builder needs `engine`'s docker-py client."""
    options = options or BuildOptions()
    if builder.buildkit:
        return _buildkit_build(builder, context, dockerfile, progress, platform, options)
    return _legacy_build(engine.api, context, dockerfile, progress, platform, options)


def buildkit_argv(
    builder: Builder,
    context: Path,
    dockerfile: str,
    iidfile: Path,
    platform: str | None,
    options: BuildOptions,
) -> list[str]:
    """The docker CLI's build command: plain progress, the image ID to a file, no tag."""
    argv = [*builder.command(), "--progress=plain", "--iidfile", str(iidfile)]
    argv += ["--file", str(Path(dockerfile) if os.path.isabs(dockerfile) else context / dockerfile)]
    argv += options_argv(options)
    if platform:
        argv += ["--platform", platform]
    for secret_id, source in options.secrets:  # the path only: the CLI reads the file itself
        argv += ["--secret", f"id={secret_id},src={source}"]
    for spec in options.ssh:
        argv += ["--ssh", spec]
    return [*argv, "--", str(context)]


def options_argv(options: BuildOptions) -> list[str]:
    """`--build-arg`, `--target` and `--no-cache` as the docker CLI takes them."""
    argv: list[str] = []
    for key, value in options.build_args:
        argv += ["--build-arg", f"{key}={value}"]
    if options.target:
        argv += ["--target", options.target]
    if options.no_cache:
        argv.append("--no-cache")
    return argv


def worth_showing(line: str) -> bool:
    """A build output line with something to read (not blank, not a bare vertex digest)."""
    return bool(line.strip()) and not _NOISE.match(line)


def build_failure(lines: list[str]) -> BuildError:
    """A failed build's error, from its last output lines: the one line that says what went
    wrong, and the lines before it as a hint."""
    error = _error_line(lines)
    return BuildError(f"docker build failed: {error}", _tail_hint(lines, error))


def _buildkit_build(
    builder: Builder,
    context: Path,
    dockerfile: str,
    progress: ProgressCallback,
    platform: str | None,
    options: BuildOptions,
) -> str:
    with tempfile.TemporaryDirectory(prefix="radops-build-") as tmp:
        iidfile = Path(tmp) / "image-id"
        argv = buildkit_argv(builder, context, dockerfile, iidfile, platform, options)
        tail: deque[str] = deque(maxlen=4 * TAIL_LINES)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **builder.environment()},
            )
        except OSError as e:
            raise BuildError(f"cannot start {builder.docker}: {e.strerror or e}") from e
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                if worth_showing(line):
                    tail.append(line)
                    progress(line)
            status = proc.wait()
        except BaseException:  # ^C: the CLI cancels the build when it is stopped
            proc.terminate()
            proc.wait()
            raise
        if status != 0:
            raise build_failure(list(tail))
        try:
            return iidfile.read_text().strip()
        except OSError as e:
            raise BuildError(f"docker build wrote no image ID ({e.strerror})") from e


def _error_line(lines: list[str]) -> str:
    """The one line that says what went wrong, without BuildKit's wrappers around it."""
    for line in reversed(lines):
        if line.startswith(("#", "------", " > ")) or not line.strip():
            continue
        text = line.strip()
        while match := _WRAPPER.match(text):
            text = text[match.end() :]
        return text or line.strip()
    return "the build stopped without saying why"


def _legacy_build(
    api: Any,
    context: Path,
    dockerfile: str,
    progress: ProgressCallback,
    platform: str | None,
    options: BuildOptions,
) -> str:
    """The engine's classic builder, sent the context as radops lists and hashes it (so a
    `<Dockerfile>.dockerignore` is honoured, which docker-py's own packing ignores)."""
    from docker.api.build import process_dockerfile
    from docker.utils import tar

    name, inline = process_dockerfile(dockerfile, str(context))
    patterns = read_dockerignore(context, dockerfile) or None
    try:
        packed = tar(str(context), exclude=patterns, dockerfile=(name, inline))
    except OSError as e:
        raise BuildError(f"cannot pack the build context: {e}") from e
    with packed:
        return _stream_legacy(api, packed, name, progress, platform, options)


def _stream_legacy(
    api: Any, packed: Any, dockerfile: str, progress: ProgressCallback,
    platform: str | None, options: BuildOptions,
) -> str:  # fmt: skip
    from docker.errors import APIError, DockerException

    tail: list[str] = []
    image_id = ""
    try:
        for event in api.build(
            fileobj=packed,
            custom_context=True,
            dockerfile=dockerfile,
            rm=True,
            forcerm=True,
            decode=True,
            platform=platform,
            buildargs=dict(options.build_args) or None,
            target=options.target,
            nocache=options.no_cache,
        ):
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                hint = NO_BUILDKIT_HINT if "BuildKit" in detail else _tail_hint(tail)
                raise BuildError(f"docker build failed: {detail.strip()}", hint)
            image_id = (event.get("aux") or {}).get("ID") or image_id
            for line in str(event.get("stream", "")).splitlines():
                if line.strip():
                    tail = [*tail[-(TAIL_LINES - 1) :], line]
                    progress(line)
                    if line.startswith("Successfully built "):
                        image_id = image_id or line.split()[-1]
    except APIError as e:  # the engine refused the build: say what it said, not the HTTP call
        detail = str(e.explanation or e).strip()
        raise BuildError(f"docker build failed: {detail}", _tail_hint(tail)) from e
    except DockerException as e:
        raise BuildError(f"docker build failed: {e}") from e
    if not image_id:
        raise BuildError("docker build finished without naming the image it built")
    return str(image_id)


def _tail_hint(tail: list[str], error: str | None = None) -> str | None:
    lines = [line for line in tail if not _FRAME.match(line) and not (error and error in line)]
    lines = lines[-TAIL_LINES:]
    return ("Last build output:\n  " + "\n  ".join(lines)) if lines else None
