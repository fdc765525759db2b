"""RADOPS_GCP_POLL_S: the seconds between radops' checks on a VM, for tests and tuning."""

from __future__ import annotations

import pytest

from radops.errors import ConfigError
from radops.gcp import waiting
from radops.gcp.settings import POLL_ENV, poll_interval


def test_unset_each_check_keeps_its_own_interval() -> None:
    assert poll_interval(2.0) == 2.0
    assert poll_interval(1.0) == 1.0


def test_set_it_is_every_checks_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLL_ENV, " 0.2 ")
    assert poll_interval(2.0) == 0.2
    slept: list[float] = []
    monkeypatch.setattr(waiting.time, "sleep", slept.append)
    answers = iter([False, False, True])
    assert waiting.poll(lambda: next(answers), timeout=60, interval=2.0)
    assert slept == [0.2, 0.2]


@pytest.mark.parametrize("value", ["soon", "0", "-1", "61", "nan"])
def test_a_bad_value_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(POLL_ENV, value)
    with pytest.raises(ConfigError) as caught:
        poll_interval(1.0)
    assert caught.value.message == (
        f"RADOPS_GCP_POLL_S must be seconds above 0, up to 60, not {value!r}"
    )
