"""What a transfer drew on a terminal, read back from its output: every `DONE of [about] TOTAL`
figure, for tests that check progress shows and never claims more than the total."""

from __future__ import annotations

import re

_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_FIGURE = re.compile(r"([\d.]+) (B|kB|MB|GB|TB) of (?:about )?([\d.]+) (B|kB|MB|GB|TB) \((\d+)%\)")


def figures(text: str) -> list[tuple[float, float, int]]:
    """(done, total, percent) of each progress figure in `text`, in order."""
    return [
        (float(done) * _UNITS[u1], float(total) * _UNITS[u2], int(percent))
        for done, u1, total, u2, percent in _FIGURE.findall(text)
    ]


def check_sane(text: str, size: int) -> None:
    """Progress showed while the transfer ran, with rates, and its figures are sane: never more
    done than the total, totals near `size` bytes, the done part never going back."""
    shown = figures(text)
    assert shown, f"no progress figure drawn:\n{text}"
    assert "/s" in text, text
    for done, total, percent in shown:
        assert done <= total * 1.01 and percent <= 100, (done, total, text)  # 3 digits shown
        assert size * 0.98 <= total <= size * 1.05, (total, size)
    dones = [done for done, _, _ in shown]
    assert dones == sorted(dones), dones
