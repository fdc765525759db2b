"""Waiting on Compute Engine and on a VM: bounded polls, never forever, at the interval the
settings give (RADOPS_GCP_POLL_S, for tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from radops.gcp.settings import poll_interval

T = TypeVar("T")


def poll(check: Callable[[], bool], timeout: float, interval: float = 1.0) -> bool:
    """Call `check` until it is true or `timeout` seconds pass (bounded, never forever)."""
    return poll_for(lambda: True if check() else None, timeout, interval) is not None


def poll_for(attempt: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T | None:
    """Call `attempt` until it returns something (not None), or `timeout` seconds pass: then
    None (bounded, never forever)."""
    interval = poll_interval(interval)
    deadline = time.monotonic() + timeout
    while True:
        found = attempt()
        if found is not None:
            return found
        if time.monotonic() + interval > deadline:
            return None
        time.sleep(interval)
