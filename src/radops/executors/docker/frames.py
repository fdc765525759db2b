"""Docker's multiplexed log stream: 8-byte headers (stream id, length) before each payload."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from radops.executors.model import Stream

_HEADER = struct.Struct(">BxxxL")


def demux_frames(
    read: Callable[[int], bytes], chunk_size: int = 1 << 16
) -> Iterator[tuple[Stream, bytes]]:
    """Yield (stream, bytes) from a multiplexed stream, as soon as bytes arrive.

    `read(n)` returns up to n bytes, fewer if that is all there is now, and b"" at the end.
    Consecutive payloads of the same stream in one read are joined, so a log of short lines
    costs one write per read, not one per line.
    """
    unpack_from, header_size = _HEADER.unpack_from, _HEADER.size  # hot loop: local names
    buf = b""
    while True:
        data = read(chunk_size)
        if not data:
            return
        buf = buf + data if buf else data
        pos, end = 0, len(buf)
        current: Stream | None = None
        parts: list[bytes] = []
        while end - pos >= header_size:
            stream_id, length = unpack_from(buf, pos)
            stop = pos + header_size + length
            if stop > end:
                break
            stream: Stream = "stderr" if stream_id == 2 else "stdout"  # 0 (stdin) and 1
            if stream != current and parts:
                yield current, b"".join(parts)  # type: ignore[misc]
                parts = []
            current = stream
            parts.append(buf[pos + header_size : stop])
            pos = stop
        if parts:
            yield current, b"".join(parts)  # type: ignore[misc]
        buf = buf[pos:]
