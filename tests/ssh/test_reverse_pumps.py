"""The byte count of a remote port forward (radops.ssh.reverse), fed by several pump threads at
once over real socket pairs: no addition is lost."""

from __future__ import annotations

import socket
import threading

from radops.ssh import reverse


def test_pumps_at_once_count_every_byte() -> None:
    count = reverse._Counter()
    done = threading.Event()
    pumps, readers, total = [], [], 0
    for n in range(8):
        source_in, source_out = socket.socketpair()
        sink_in, sink_out = socket.socketpair()
        data = bytes([n]) * (1 << 20 if n % 2 else 12345)
        total += len(data)
        pumps.append(
            threading.Thread(target=reverse._pump, args=(source_out, sink_in, done, count))
        )
        got = bytearray()

        def read(s: socket.socket = sink_out, into: bytearray = got) -> None:
            while chunk := s.recv(1 << 16):
                into.extend(chunk)

        readers.append((threading.Thread(target=read), got, data))

        def write(s: socket.socket = source_in, payload: bytes = data) -> None:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)

        pumps.append(threading.Thread(target=write))
    for thread in pumps + [r[0] for r in readers]:
        thread.start()
    for thread in pumps + [r[0] for r in readers]:
        thread.join(30)
    assert all(bytes(got) == data for _, got, data in readers)
    assert count.value == total
