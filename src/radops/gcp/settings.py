"""Which project, zone and API endpoint: flags, then RADOPS_GCP_*, then the store, then Google's."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from radops.config import Settings
from radops.errors import ConfigError, UsageError
from radops.plainconfig import resolve_setting


@dataclass(frozen=True)
class GCPTarget:
    project: str
    zone: str | None
    endpoint: str | None

    @property
    def anonymous(self) -> bool:
        """A plain-http endpoint is an emulator or a local fake: no credentials, as Google's
        storage client does for its emulator variable."""
        return bool(self.endpoint and self.endpoint.startswith("http://"))


def gcloud_property(section: str, key: str) -> str | None:
    """A value from gcloud's active configuration, if gcloud has been set up here."""
    root = Path(os.environ.get("CLOUDSDK_CONFIG") or Path("~/.config/gcloud").expanduser())
    try:
        active = (root / "active_config").read_text().strip() or "default"
    except OSError:
        active = "default"
    parser = configparser.ConfigParser()
    try:
        parser.read(root / "configurations" / f"config_{active}")
    except configparser.Error:
        return None
    value = parser.get(section, key, fallback=None)
    return value.strip() if value else None


def _adc_project() -> str | None:
    """The project of Application Default Credentials (a service-account key file's own, or
    GOOGLE_CLOUD_PROJECT), without failing when there are none."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        project: str | None = google.auth.default()[1]
    except DefaultCredentialsError:
        return None
    return project


def resolve_target(
    settings: Settings, project: str | None = None, zone: str | None = None
) -> GCPTarget:
    """Project and zone from flags, RADOPS_GCP_PROJECT/ZONE, the store, then Google's defaults."""
    endpoint = resolve_setting(settings, "gcp_api_endpoint")
    project = resolve_setting(settings, "gcp_project", project)
    if not project and not (endpoint and endpoint.startswith("http://")):
        project = _adc_project() or gcloud_property("core", "project")
    if not project:
        raise UsageError(
            "no Google Cloud project given",
            "Pass --project, set RADOPS_GCP_PROJECT, or `radops config set gcp_project ID`.",
        )
    zone = resolve_setting(settings, "gcp_zone", zone) or gcloud_property("compute", "zone")
    return GCPTarget(project=project, zone=zone, endpoint=endpoint)


# For tests against a fake Compute Engine that boots in a fraction of a second, and for tuning:
# the seconds between all of radops' checks on a VM (its state, SSH, the watcher). Unset, each
# check keeps its own interval.
POLL_ENV = "RADOPS_GCP_POLL_S"


def poll_interval(default: float) -> float:
    """RADOPS_GCP_POLL_S if set, else `default`."""
    value = os.environ.get(POLL_ENV, "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 60:
        raise ConfigError(f"{POLL_ENV} must be seconds above 0, up to 60, not {value!r}")
    return seconds
