"""`--gpus` and `-e` values translated the way the docker CLI reads them."""

from __future__ import annotations

from typing import Any

import pytest

from radops.errors import UsageError
from radops.executors.docker.options import parse_env, parse_gpus


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", {"Count": -1, "DeviceIDs": []}),
        ("2", {"Count": 2, "DeviceIDs": []}),
        ("count=all", {"Count": -1, "DeviceIDs": []}),
        ("count=1", {"Count": 1, "DeviceIDs": []}),
        ("device=0", {"Count": 0, "DeviceIDs": ["0"]}),
        ('"device=0,1"', {"Count": 0, "DeviceIDs": ["0", "1"]}),
        ("device=GPU-3a5e", {"Count": 0, "DeviceIDs": ["GPU-3a5e"]}),
    ],
)
def test_parse_gpus(value: str, expected: dict[str, Any]) -> None:
    request = parse_gpus(value)
    assert {k: request[k] for k in expected} == expected
    assert request["Capabilities"] == [["gpu"]]
    assert request["Driver"] == ""


def test_parse_gpus_driver_and_capabilities() -> None:
    request = parse_gpus('all,driver=nvidia,"capabilities=compute,utility"')
    assert request["Driver"] == "nvidia"
    assert request["Count"] == -1
    assert request["Capabilities"] == [["compute", "utility"]]


@pytest.mark.parametrize("value", ["", "many", "-1", "colour=red", "2,device=0", "count=x"])
def test_parse_gpus_rejects(value: str) -> None:
    with pytest.raises(UsageError):
        parse_gpus(value)


def test_parse_env_key_value() -> None:
    items = ["A=1", "B=", "C=x=y", "D=with space", "A=2"]
    assert parse_env(items, {}) == {"A": "2", "B": "", "C": "x=y", "D": "with space"}


def test_parse_env_key_alone_takes_this_shells_value() -> None:
    assert parse_env(["HOME"], {"HOME": "/home/ana"}) == {"HOME": "/home/ana"}


def test_parse_env_key_alone_must_be_set() -> None:
    with pytest.raises(UsageError, match="not set"):
        parse_env(["MISSING"], {})


@pytest.mark.parametrize("item", ["=value", "", "A B=1", " A=1"])
def test_parse_env_rejects_bad_keys(item: str) -> None:
    with pytest.raises(UsageError):
        parse_env([item], {"A B": "x"})
