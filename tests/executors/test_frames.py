"""Docker's multiplexed log stream, split back into stdout and stderr bytes."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import pytest

from radops.executors.docker.frames import demux_frames


def frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def reader(data: bytes, max_read: int) -> Callable[[int], bytes]:
    """A `read(n)` that, like a socket, returns at most `max_read` bytes at a time."""
    source = io.BytesIO(data)
    return lambda n: source.read(min(n, max_read))


def by_stream(chunks: list[tuple[str, bytes]]) -> dict[str, bytes]:
    out = {"stdout": b"", "stderr": b""}
    for stream, data in chunks:
        out[stream] += data
    return out


FRAMES = [
    (1, b"first line\n"),
    (2, b"oops\n"),
    (1, b"\xff\xfe not utf-8 "),
    (1, b""),
    (1, b"[bold]no newline[/bold]"),
    (2, b"x" * 70_000),  # longer than one read
    (0, b"stdin-id counts as stdout\n"),
]
STREAM = b"".join(frame(i, p) for i, p in FRAMES)


@pytest.mark.parametrize("max_read", [1, 3, 7, 8, 9, 64, 1 << 16, 1 << 20])
def test_any_read_size_gives_back_the_same_bytes(max_read: int) -> None:
    out = by_stream(list(demux_frames(reader(STREAM, max_read))))
    assert out["stdout"] == b"".join(p for i, p in FRAMES if i in (0, 1))
    assert out["stderr"] == b"".join(p for i, p in FRAMES if i == 2)


def test_order_between_streams_is_kept() -> None:
    data = frame(1, b"a") + frame(2, b"b") + frame(1, b"c")
    assert list(demux_frames(reader(data, 1 << 16))) == [
        ("stdout", b"a"),
        ("stderr", b"b"),
        ("stdout", b"c"),
    ]


def test_consecutive_frames_of_one_stream_are_joined() -> None:
    data = b"".join(frame(1, f"{i}\n".encode()) for i in range(100))
    chunks = list(demux_frames(reader(data, 1 << 16)))
    assert chunks == [("stdout", b"".join(f"{i}\n".encode() for i in range(100)))]


def test_chunks_arrive_as_soon_as_a_frame_is_complete() -> None:
    reads = iter([frame(1, b"early"), frame(2, b"late"), b""])
    chunks = demux_frames(lambda n: next(reads))
    assert next(chunks) == ("stdout", b"early")
    assert next(chunks) == ("stderr", b"late")
    assert list(chunks) == []


def test_empty_stream_yields_nothing() -> None:
    assert list(demux_frames(reader(b"", 10))) == []
