"""The local Docker engine (DOCKER_HOST, or the default socket), through docker-py's low-level
API, loaded on first use; docker-py's and requests' errors become radops errors here."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from radops.errors import EngineUnreachableError, NotFoundError, RadopsError

# `uname -m` -> Docker's architecture names.
_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le"}

ENGINE_HINT = (
    "Start Docker (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at it."
)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def engine_unreachable(e: BaseException) -> EngineUnreachableError:
    return EngineUnreachableError(
        f"cannot reach the local Docker engine ({first_line(e)})", ENGINE_HINT
    )


@contextlib.contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Turn docker-py and connection errors into RadopsErrors that say what was being done."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except RadopsError:
        raise
    except docker.errors.NotFound as e:
        raise NotFoundError(f"{what}: {e.explanation or e}") from e
    except docker.errors.APIError as e:
        raise RadopsError(f"{what}: {e.explanation or e}") from e
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as e:
        raise engine_unreachable(e) from e


class LocalEngine:
    """One client of the local engine, made on first use and shared by whoever needs it."""

    def __init__(self) -> None:
        self._api: Any = None

    @property
    def api(self) -> Any:
        """docker-py's APIClient."""
        if self._api is None:
            import docker

            with docker_errors("connecting to Docker"):
                self._api = docker.from_env().api
        return self._api

    def version(self) -> dict[str, Any]:
        with docker_errors("asking the engine for its version"):
            version: dict[str, Any] = self.api.version()
        return version

    def platform(self) -> str:
        """The engine's own platform, e.g. linux/amd64."""
        # The engine on this machine (no DOCKER_HOST) runs on this machine's platform:
        # no need to load docker-py and ask it, which is most of an SSH re-submit's cost.
        arch = _DOCKER_ARCH.get(os.uname().machine)
        if arch is not None and not os.environ.get("DOCKER_HOST") and sys.platform == "linux":
            return f"linux/{arch}"
        version = self.version()
        return f"{version.get('Os', 'linux')}/{version.get('Arch', 'amd64')}"

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
