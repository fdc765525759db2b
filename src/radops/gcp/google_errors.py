"""Google's errors made radops': `google_errors` around every Compute Engine call, and an
operation's own error (`operation_error`), so that each failure is one line saying what failed."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from radops.errors import (
    CloudError,
    ConfigError,
    EngineUnreachableError,
    NotFoundError,
    RadopsError,
)

_CAPACITY_CODES = ("ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS")


class CapacityError(CloudError):
    """The zone has no room for this machine type now; another zone may."""


def last_part(url: str) -> str:
    """The last part of a Compute Engine URL (a zone's, a machine type's): its name."""
    return url.rstrip("/").rsplit("/", 1)[-1]


@contextlib.contextmanager
def google_errors(what: str) -> Iterator[None]:
    """Turn google.api_core and google.auth errors into RadopsErrors that say what failed."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except RadopsError:
        raise
    except auth_exc.DefaultCredentialsError as e:
        raise ConfigError(
            "no Google Cloud credentials found",
            "Run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS).",
        ) from e
    except gexc.NotFound as e:
        raise NotFoundError(f"{what}: {e.message}") from e
    except gexc.Forbidden as e:
        reason = (e.errors[0].get("reason") if e.errors else "") or ""
        if "quota" in reason.lower():
            raise CloudError(f"quota exceeded while {what}: {e.message}") from e
        raise CloudError(f"permission denied while {what}: {e.message}") from e
    except gexc.GoogleAPICallError as e:
        raise CloudError(f"Google Cloud error while {what}: {e.message}") from e
    except auth_exc.TransportError as e:  # refreshing the credentials: Google's sign-in is away
        raise _unreachable(e) from e
    except auth_exc.GoogleAuthError as e:
        raise ConfigError(f"Google Cloud credentials failed: {e}") from e
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise _unreachable(e) from e


def _unreachable(error: Exception) -> RadopsError:
    """No answer from Compute Engine (offline, DNS, a closed endpoint): the reason the socket
    gave ("Connection refused", "Name or service not known"), not the transport's layers."""
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    reason = found[-1].strip() if found else "no answer"
    return EngineUnreachableError(
        f"cannot reach Compute Engine: {reason}",
        "Check this machine's network connection (and gcp_api_endpoint, if set).",
    )


def operation_error(op: Any, what: str) -> RadopsError:
    errors = list(op.error.errors) if op.error else []
    code = errors[0].code if errors else str(op.http_error_status_code)
    message = errors[0].message if errors else op.http_error_message
    if code in _CAPACITY_CODES or code.startswith("ZONE_RESOURCE_POOL_EXHAUSTED"):
        return CapacityError(f"zone {last_part(op.zone)} is out of capacity: {message}")
    if "QUOTA" in code:
        return CloudError(f"quota exceeded while {what}: {message}")
    return CloudError(f"{what} failed ({code}): {message}")
