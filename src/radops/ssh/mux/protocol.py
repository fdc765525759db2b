"""The shared connection's wire format: frames of a 1-byte kind and a 4-byte length.

The client sends `REQUEST` (JSON argv), then `STDIN` (bytes) and one `STDIN_END`, and keeps
its socket open until the end. The server answers `TAKEN` as soon as it has the request (until
then nothing ran: a client that hears nothing connects itself), then `STARTED` once the remote
command runs or `NOT_STARTED` (message) if it did not start it (then the client connects
itself too), then `STDOUT`/`STDERR` (bytes) and `EXIT` (status). After `TAKEN`, a connection
that ends before `EXIT` is a lost connection, never a reason to run the command again.
`RETIRE` instead of `REQUEST` retires the server: it takes no new commands and ends once
those under way are done.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import BinaryIO

REQUEST = b"R"
STDIN = b"I"
STDIN_END = b"E"
RETIRE = b"Q"
TAKEN = b"A"
STARTED = b"S"
NOT_STARTED = b"F"
STDOUT = b"O"
STDERR = b"e"
EXIT = b"X"

HEADER = struct.Struct(">BI")
CHUNK = 1 << 16  # the largest payload a side sends in one frame


def encode(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind[0], len(payload)) + payload


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(encode(kind, payload))


def send_chunked(sock: socket.socket, kind: bytes, data: bytes) -> None:
    """`data` as frames of at most CHUNK bytes."""
    for start in range(0, len(data), CHUNK):
        send(sock, kind, data[start : start + CHUNK])


def read_frame(reader: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next frame, or None at the end of the stream (or a torn frame)."""
    header = reader.read(HEADER.size)  # a buffered socket file: blocks for all n bytes or EOF
    if len(header) < HEADER.size:
        return None
    kind, length = HEADER.unpack(header)
    payload = reader.read(length) if length else b""
    if len(payload) < length:
        return None
    return bytes([kind]), payload


def encode_request(argv: list[str]) -> bytes:
    return json.dumps(argv).encode()


def decode_request(payload: bytes) -> list[str] | None:
    """The argv of a `REQUEST`, or None if it is not a JSON list of strings."""
    try:
        argv = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return None
    return argv
