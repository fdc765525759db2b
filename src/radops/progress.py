"""How long steps report what they do: one human-readable line at a time."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str], None]
