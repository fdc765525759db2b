"""What radops writes on a job's container, and how a Job is read back from the engine."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from radops.errors import NotFoundError, UsageError
from radops.executors._labels import job_from_inspect, job_from_summary, job_labels, match_job_id
from radops.executors.model import JobRequest, container_name, new_job_id

COMMAND = ["python", "train.py", "--lr", "3e-4", "a b", "$(id)"]


def labels(name: str | None = None) -> dict[str, str]:
    request = JobRequest(context=Path("."), command=COMMAND, name=name)
    return job_labels("0123456789ab", "gpu1", "radops/train:feedbeef00000000", request)


def test_job_ids_are_12_hex_digits_and_differ() -> None:
    ids = {new_job_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    assert container_name("0123456789ab") == "radops-0123456789ab"


def test_labels_carry_everything_needed_to_find_a_job_again() -> None:
    written = labels()
    assert written["dev.radops.job-id"] == "0123456789ab"
    assert written["dev.radops.executor"] == "gpu1"
    assert written["dev.radops.image"] == "radops/train:feedbeef00000000"
    assert json.loads(written["dev.radops.command"]) == COMMAND
    created = datetime.fromisoformat(written["dev.radops.created-at"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert "dev.radops.name" not in written
    assert labels("my run")["dev.radops.name"] == "my run"


def inspect(status: str, exit_code: int, label_set: dict[str, str]) -> dict[str, Any]:
    return {"Config": {"Labels": label_set}, "State": {"Status": status, "ExitCode": exit_code}}


def test_job_from_inspect_round_trips_the_labels() -> None:
    job = job_from_inspect(inspect("exited", 3, labels("my run")), "fallback")
    assert job.id == "0123456789ab"
    assert job.executor == "gpu1"
    assert (job.status, job.exit_code) == ("exited", 3)
    assert job.command == COMMAND
    assert job.image == "radops/train:feedbeef00000000"
    assert job.name == "my run"
    assert job.created_at is not None and job.created_at.tzinfo is not None


def test_running_job_has_no_exit_code() -> None:
    assert job_from_inspect(inspect("running", 0, labels()), "gpu1").exit_code is None


def test_job_to_json() -> None:
    data = job_from_inspect(inspect("exited", 0, labels()), "gpu1").to_json()
    assert data["job_id"] == "0123456789ab"
    assert data["executor"] == "gpu1"
    assert data["command"] == COMMAND
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("status", "state", "expected"),
    [
        ("Exited (0) 3 seconds ago", "exited", 0),
        ("Exited (137) About a minute ago", "exited", 137),
        ("Exited (-1) 2 hours ago", "exited", -1),
        ("Up 5 seconds", "running", None),
        ("Created", "created", None),
    ],
)
def test_job_from_summary_reads_the_exit_code(status: str, state: str, expected: int) -> None:
    job = job_from_summary({"State": state, "Status": status, "Labels": labels()}, "gpu1")
    assert (job.status, job.exit_code) == (state, expected)
    assert job.command == COMMAND


def test_damaged_labels_do_not_break_reading() -> None:
    damaged = {**labels(), "dev.radops.command": "not json", "dev.radops.created-at": "yesterday"}
    job = job_from_summary({"State": "exited", "Status": "Exited (1)", "Labels": damaged}, "g")
    assert job.command == [] and job.created_at is None and job.exit_code == 1


CANDIDATES = ["3f2a9c1b7d4e", "3f2a00000000", "a1b2c3d4e5f6", "a1b2"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("3f2a9c1b7d4e", "3f2a9c1b7d4e"), ("3f2a9", "3f2a9c1b7d4e"), ("a1b2", "a1b2")],
)
def test_match_job_id(given: str, expected: str) -> None:
    assert match_job_id(given, CANDIDATES, "gpu1") == expected


def test_match_job_id_ambiguous_prefix() -> None:
    with pytest.raises(UsageError) as info:
        match_job_id("3f2a", CANDIDATES, "gpu1")
    assert "3f2a" in info.value.message


@pytest.mark.parametrize("given", ["ffff", "", "3f2a9c1b7d4e0"])
def test_match_job_id_unknown(given: str) -> None:
    with pytest.raises(NotFoundError):
        match_job_id(given, CANDIDATES, "gpu1")
