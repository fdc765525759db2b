"""The shared SSH connection's wire format, socket rules and client, without SSH or sshd.

Frames are checked byte for byte; the client (`MuxCommand`, `probe`, `retire`) talks to a tiny
server thread on a real unix socket that plays each of the server's answers, including the
ones that must end in an error rather than a fallback to a direct connection.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from radops.errors import EngineUnreachableError
from radops.ssh.mux import client, protocol, sockets
from radops.ssh.mux.client import MuxCommand, MuxUnavailable

Frame = tuple[bytes, bytes]
Script = Callable[[socket.socket, BinaryIO], None]

ALL_KINDS = (
    protocol.REQUEST,
    protocol.STDIN,
    protocol.STDIN_END,
    protocol.RETIRE,
    protocol.TAKEN,
    protocol.STARTED,
    protocol.NOT_STARTED,
    protocol.STDOUT,
    protocol.STDERR,
    protocol.EXIT,
)


def frames_of(data: bytes) -> list[Frame]:
    """Every whole frame in `data`, in order."""
    reader = io.BytesIO(data)
    found: list[Frame] = []
    while (frame := protocol.read_frame(reader)) is not None:
        found.append(frame)
    assert reader.tell() == len(data), "trailing bytes that are not a whole frame"
    return found


# protocol: frames ------------------------------------------------------------------------------


def test_every_frame_kind_is_one_distinct_byte() -> None:
    assert all(len(kind) == 1 for kind in ALL_KINDS)
    assert len(set(ALL_KINDS)) == len(ALL_KINDS)


def test_encode_is_kind_then_big_endian_length_then_payload() -> None:
    assert protocol.encode(protocol.STDOUT, b"hi") == b"O\x00\x00\x00\x02hi"
    assert protocol.encode(protocol.STDIN_END) == b"E\x00\x00\x00\x00"
    big = b"z" * 70_000
    encoded = protocol.encode(protocol.STDERR, big)
    assert encoded[:5] == b"e" + (70_000).to_bytes(4, "big")
    assert encoded[5:] == big


def test_read_frame_returns_frames_in_order_then_none_at_the_end() -> None:
    stream = io.BytesIO(
        protocol.encode(protocol.TAKEN)
        + protocol.encode(protocol.STDOUT, b"\x00\xffbinary\n")
        + protocol.encode(protocol.EXIT, b"0")
    )
    assert protocol.read_frame(stream) == (protocol.TAKEN, b"")
    assert protocol.read_frame(stream) == (protocol.STDOUT, b"\x00\xffbinary\n")
    assert protocol.read_frame(stream) == (protocol.EXIT, b"0")
    assert protocol.read_frame(stream) is None


@pytest.mark.parametrize("cut", [0, 1, 4], ids=["empty", "one-header-byte", "header-minus-one"])
def test_read_frame_with_a_torn_header_is_the_end(cut: int) -> None:
    whole = protocol.encode(protocol.STDOUT, b"payload")
    assert protocol.read_frame(io.BytesIO(whole[:cut])) is None


@pytest.mark.parametrize("missing", [1, 7], ids=["last-byte", "whole-payload"])
def test_read_frame_with_a_torn_payload_is_the_end(missing: int) -> None:
    whole = protocol.encode(protocol.STDOUT, b"payload")
    assert protocol.read_frame(io.BytesIO(whole[:-missing])) is None


def test_read_frame_over_a_socket_waits_for_a_frame_sent_in_pieces() -> None:
    left, right = socket.socketpair()
    data = protocol.encode(protocol.STDERR, b"slow frame")

    def dribble() -> None:
        for i in range(len(data)):
            right.sendall(data[i : i + 1])
            time.sleep(0.002)
        right.close()

    sender = threading.Thread(target=dribble)
    sender.start()
    with left, left.makefile("rb") as reader:
        assert protocol.read_frame(reader) == (protocol.STDERR, b"slow frame")
        assert protocol.read_frame(reader) is None
    sender.join(5)


def test_send_writes_one_encoded_frame() -> None:
    left, right = socket.socketpair()
    with left, right:
        protocol.send(left, protocol.NOT_STARTED, b"why")
        left.shutdown(socket.SHUT_WR)
        assert frames_of(right.makefile("rb").read()) == [(protocol.NOT_STARTED, b"why")]


def test_send_chunked_splits_at_chunk_size_and_sends_nothing_for_no_data() -> None:
    data = os.urandom(2 * protocol.CHUNK + 3)
    left, right = socket.socketpair()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(right.makefile("rb").read()))
    reader.start()
    with left:
        protocol.send_chunked(left, protocol.STDIN, data)
        protocol.send_chunked(left, protocol.STDIN, b"")
    reader.join(5)
    right.close()
    frames = frames_of(received[0])
    assert [kind for kind, _ in frames] == [protocol.STDIN] * 3
    assert [len(payload) for _, payload in frames] == [protocol.CHUNK, protocol.CHUNK, 3]
    assert b"".join(payload for _, payload in frames) == data


# protocol: requests ----------------------------------------------------------------------------


def test_a_request_round_trips_argv_exactly() -> None:
    argv = ["docker", "run", "--name", "a b", "sh", "-c", "echo 'é' \"$HOME\"", ""]
    assert protocol.decode_request(protocol.encode_request(argv)) == argv


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b'{"argv": ["ls"]}', b'"ls"', b'["ls", 1]', b"[null]", b"\xff\xfe"],
)
def test_decode_request_refuses_anything_but_a_json_list_of_strings(payload: bytes) -> None:
    assert protocol.decode_request(payload) is None


# sockets: where they live ----------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: unix socket paths are limited to about 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="rmux-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def runtime_dir(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))
    return short_dir


def test_socket_dir_is_a_private_radops_folder_in_xdg_runtime_dir(runtime_dir: Path) -> None:
    found = sockets.socket_dir()
    assert found == runtime_dir / "radops"
    info = found.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) & 0o077 == 0
    assert info.st_uid == os.getuid()
    assert sockets.socket_dir() == found  # an existing private folder is used again


def test_socket_dir_without_xdg_runtime_dir_is_per_user_in_tmpdir(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(short_dir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its first answer
    found = sockets.socket_dir()
    assert found == short_dir / f"radops-{os.getuid()}"
    assert stat.S_IMODE(found.lstat().st_mode) & 0o077 == 0


def test_an_empty_xdg_runtime_dir_counts_as_unset(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    monkeypatch.setenv("TMPDIR", str(short_dir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert sockets.socket_dir() == short_dir / f"radops-{os.getuid()}"


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777])
def test_socket_dir_that_others_can_enter_is_refused(runtime_dir: Path, mode: int) -> None:
    folder = runtime_dir / "radops"
    folder.mkdir()
    folder.chmod(mode)
    assert sockets.socket_dir() is None
    assert sockets.socket_path(["host", 22, None, None, None], runtime_dir / "kh") is None


def test_socket_dir_that_is_a_symlink_is_refused(runtime_dir: Path) -> None:
    target = runtime_dir / "elsewhere"
    target.mkdir(mode=0o700)
    (runtime_dir / "radops").symlink_to(target)
    assert sockets.socket_dir() is None


def test_socket_dir_that_is_a_file_is_refused(runtime_dir: Path) -> None:
    (runtime_dir / "radops").write_text("not a folder")
    assert sockets.socket_dir() is None


def test_socket_dir_owned_by_someone_else_is_refused(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = runtime_dir / "radops"
    folder.mkdir(mode=0o700)
    assert sockets.socket_dir() == folder
    # Seen from another uid, the same private folder belongs to someone else.
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)
    assert sockets.socket_dir() is None


def test_socket_path_is_stable_and_inside_the_private_folder(runtime_dir: Path) -> None:
    identity = ["gpu1.example", 2222, "me", "~/.ssh/id_ed25519", "cfg-hash"]
    known_hosts = runtime_dir / "known_hosts"
    path = sockets.socket_path(identity, known_hosts)
    assert path is not None
    assert path.parent == runtime_dir / "radops"
    assert path.suffix == ".sock" and len(path.stem) == 20
    assert sockets.socket_path(list(identity), known_hosts) == path
    assert sockets.lock_path(path) == str(path) + ".lock"


def test_socket_path_differs_for_each_thing_that_decides_the_connection(
    runtime_dir: Path,
) -> None:
    base = ["gpu1.example", 2222, "me", "~/.ssh/id_ed25519", "cfg-hash"]
    known_hosts = runtime_dir / "known_hosts"
    variants = [
        ["gpu2.example", 2222, "me", "~/.ssh/id_ed25519", "cfg-hash"],
        ["gpu1.example", 22, "me", "~/.ssh/id_ed25519", "cfg-hash"],
        ["gpu1.example", 2222, "root", "~/.ssh/id_ed25519", "cfg-hash"],
        ["gpu1.example", 2222, "me", "~/.ssh/other_key", "cfg-hash"],
        ["gpu1.example", 2222, "me", "~/.ssh/id_ed25519", "changed-config"],
        ["gpu1.example", 2222, "me", "~/.ssh/id_ed25519", None],
    ]
    paths = {sockets.socket_path(base, known_hosts)}
    paths |= {sockets.socket_path(v, known_hosts) for v in variants}
    paths.add(sockets.socket_path(base, runtime_dir / "other_known_hosts"))
    assert None not in paths
    assert len(paths) == len(variants) + 2


def test_socket_path_names_the_known_hosts_file_by_its_real_path(runtime_dir: Path) -> None:
    known_hosts = runtime_dir / "known_hosts"
    known_hosts.write_text("")
    alias = runtime_dir / "alias"
    alias.symlink_to(known_hosts)
    identity = ["h", None, None, None, None]
    assert sockets.socket_path(identity, alias) == sockets.socket_path(identity, known_hosts)


def test_socket_path_too_long_for_a_unix_socket_is_none(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = ["h", None, None, None, None]
    # "<runtime>/radops/" + 20 hex + ".sock" must stay within MAX_SOCKET_PATH bytes.
    fixed = len("/radops/") + 20 + len(".sock")
    room = sockets.MAX_SOCKET_PATH - fixed - len(os.fsencode(short_dir)) - 1
    fits = short_dir / ("f" * room)
    fits.mkdir(mode=0o700)  # private, as an XDG_RUNTIME_DIR is
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(fits))
    path = sockets.socket_path(identity, short_dir / "kh")
    assert path is not None and len(os.fsencode(path)) == sockets.MAX_SOCKET_PATH

    too_long = short_dir / ("f" * (room + 1))
    too_long.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(too_long))
    assert sockets.socket_dir() is not None
    assert sockets.socket_path(identity, short_dir / "kh") is None


# sockets: who is on the other end --------------------------------------------------------------


def test_same_user_is_true_for_a_peer_of_this_process() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert sockets.same_user(left) and sockets.same_user(right)


def test_same_user_is_false_for_a_peer_of_another_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 1)
        assert not sockets.same_user(left)


def test_same_user_is_false_when_the_os_cannot_say() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert not sockets.same_user(tcp)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unconnected:
        assert not sockets.same_user(unconnected)


# client: a server that plays a script ----------------------------------------------------------


class ScriptedServer:
    """Listens on a unix socket, accepts one client and runs `script` on it in a thread."""

    def __init__(self, path: Path, script: Script) -> None:
        self.path = path
        self.script = script
        self.errors: list[BaseException] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(5)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn, conn.makefile("rb") as reader:
                conn.settimeout(5)
                self.script(conn, reader)
        except BaseException as e:  # reported by join(), in the test's thread
            self.errors.append(e)

    def join(self) -> None:
        self.thread.join(5)
        assert not self.thread.is_alive(), "the scripted server never finished"
        self.listener.close()
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def serve(short_dir: Path) -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(short_dir / f"s{len(servers)}.sock", script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.listener.close()


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "SOCKET_TIMEOUT_S", 1.0)
    monkeypatch.setattr(client, "START_TIMEOUT_S", 1.0)


def read_request(reader: BinaryIO) -> list[str]:
    frame = protocol.read_frame(reader)
    assert frame is not None and frame[0] == protocol.REQUEST, frame
    argv = protocol.decode_request(frame[1])
    assert argv is not None
    return argv


def read_stdin(reader: BinaryIO) -> list[Frame]:
    """The client's STDIN frames up to and including STDIN_END."""
    frames: list[Frame] = []
    while True:
        frame = protocol.read_frame(reader)
        assert frame is not None, f"stdin ended without STDIN_END after {frames}"
        frames.append(frame)
        if frame[0] == protocol.STDIN_END:
            return frames


def wait_for_eof(reader: BinaryIO) -> bytes:
    """Whatever else the client sends, until it closes its end."""
    return reader.read()


def test_command_runs_and_output_yields_streams_then_the_exit_status(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    seen: dict[str, object] = {}

    def script(conn: socket.socket, reader: BinaryIO) -> None:
        seen["argv"] = read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        protocol.send(conn, protocol.STARTED)
        seen["stdin"] = read_stdin(reader)
        protocol.send(conn, protocol.STDOUT, b"out 1\n")
        protocol.send(conn, protocol.STDERR, b"\xffwarning\n")
        protocol.send(conn, protocol.STDOUT, b"out 2\n")
        protocol.send(conn, protocol.EXIT, b"3")
        seen["after"] = wait_for_eof(reader)

    server = serve(script)
    command = MuxCommand(server.path, ["docker", "logs", "radops-abc"], "gpu1")
    output = list(command.output([b"hello"]))
    server.join()
    assert output == [
        ("stdout", b"out 1\n"),
        ("stderr", b"\xffwarning\n"),
        ("stdout", b"out 2\n"),
        ("exit", b"3"),
    ]
    assert seen["argv"] == ["docker", "logs", "radops-abc"]
    assert seen["stdin"] == [(protocol.STDIN, b"hello"), (protocol.STDIN_END, b"")]
    assert seen["after"] == b""  # the client closed its socket after EXIT


def test_stdin_bigger_than_a_chunk_is_split_into_frames_then_stdin_end(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    big = os.urandom(protocol.CHUNK + 10)
    small = b"tail"
    got: list[list[Frame]] = []

    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        protocol.send(conn, protocol.STARTED)
        got.append(read_stdin(reader))
        protocol.send(conn, protocol.EXIT, b"0")

    server = serve(script)
    output = list(MuxCommand(server.path, ["docker", "load"], "gpu1").output(iter([big, small])))
    server.join()
    assert output == [("exit", b"0")]
    frames = got[0]
    assert [kind for kind, _ in frames] == [protocol.STDIN] * 3 + [protocol.STDIN_END]
    assert [len(p) for _, p in frames] == [protocol.CHUNK, 10, len(small), 0]
    assert b"".join(p for _, p in frames) == big + small


def test_no_stdin_sends_only_stdin_end(serve: Callable[[Script], ScriptedServer]) -> None:
    got: list[list[Frame]] = []

    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        protocol.send(conn, protocol.STARTED)
        got.append(read_stdin(reader))
        protocol.send(conn, protocol.EXIT, b"0")

    server = serve(script)
    assert list(MuxCommand(server.path, ["true"], "h").output(None)) == [("exit", b"0")]
    server.join()
    assert got == [[(protocol.STDIN_END, b"")]]


def test_no_server_at_the_path_is_unavailable(short_dir: Path) -> None:
    with pytest.raises(MuxUnavailable):
        MuxCommand(short_dir / "nobody.sock", ["true"], "h")


def test_server_closing_before_taken_is_unavailable(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    argvs: list[list[str]] = []
    server = serve(lambda conn, reader: argvs.append(read_request(reader)))
    with pytest.raises(MuxUnavailable, match="no answer"):
        MuxCommand(server.path, ["true"], "h")
    server.join()
    assert argvs == [["true"]]


def client_sockets(monkeypatch: pytest.MonkeyPatch) -> list[socket.socket]:
    """Every socket the client connects, to read the timeout it was left waiting with."""
    made: list[socket.socket] = []
    real = client.connect

    def connect(path: Path) -> socket.socket:
        made.append(real(path))
        return made[-1]

    monkeypatch.setattr(client, "connect", connect)
    return made


HOLD_GUARD_S = 60


def hold_until_the_client_leaves(conn: socket.socket, reader: BinaryIO) -> None:
    """Never answer and never close first: only the client's own timeout can end its wait.
    (The bound is a guard against a hang, not a measurement.)"""
    conn.settimeout(HOLD_GUARD_S)
    assert wait_for_eof(reader) == b""


def test_server_silent_before_taken_is_unavailable_after_the_socket_timeout(
    serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "SOCKET_TIMEOUT_S", 0.2)
    made = client_sockets(monkeypatch)

    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        hold_until_the_client_leaves(conn, reader)

    server = serve(script)
    with pytest.raises(MuxUnavailable) as caught:
        MuxCommand(server.path, ["true"], "h")
    server.join()
    # It gave up on its own, waiting with the socket timeout (not at the server's close).
    assert isinstance(caught.value.__cause__, TimeoutError), caught.value.__cause__
    assert [sock.gettimeout() for sock in made] == [0.2]


def test_bad_request_refused_before_taken_is_unavailable_with_its_message(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.NOT_STARTED, b"bad request")

    server = serve(script)
    with pytest.raises(MuxUnavailable, match=r"^bad request$"):
        MuxCommand(server.path, ["true"], "h")
    server.join()


def test_not_started_after_taken_is_unavailable_with_the_servers_message(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        protocol.send(conn, protocol.NOT_STARTED, b"the host key is no longer trusted")

    server = serve(script)
    with pytest.raises(MuxUnavailable, match=r"^the host key is no longer trusted$"):
        MuxCommand(server.path, ["true"], "h")
    server.join()


def test_taken_then_closed_before_started_is_an_error_never_a_fallback(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)

    server = serve(script)
    with pytest.raises(EngineUnreachableError) as caught:
        MuxCommand(server.path, ["docker", "run"], "gpu1")
    server.join()
    assert not isinstance(caught.value, MuxUnavailable)
    assert caught.value.message == (
        "the shared SSH connection to gpu1 failed while starting a command"
    )
    assert caught.value.hint and "radops executors jobs" in caught.value.hint
    assert caught.value.exit_code == 5


def test_taken_then_silence_past_the_start_timeout_is_an_error(
    serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "START_TIMEOUT_S", 0.2)
    made = client_sockets(monkeypatch)

    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        hold_until_the_client_leaves(conn, reader)

    server = serve(script)
    with pytest.raises(EngineUnreachableError, match="failed while starting"):
        MuxCommand(server.path, ["docker", "run"], "gpu1")
    server.join()
    # The server never closed first, and the client's wait for STARTED had the start timeout.
    assert [sock.gettimeout() for sock in made] == [0.2]


def test_taken_then_an_unexpected_frame_is_an_error(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        protocol.send(conn, protocol.STDOUT, b"too early")

    server = serve(script)
    with pytest.raises(EngineUnreachableError, match="failed while starting"):
        MuxCommand(server.path, ["true"], "h")
    server.join()


@pytest.mark.parametrize(
    "ending",
    [b"", protocol.encode(protocol.STDOUT, b"torn payload")[:-3], b"O\x00"],
    ids=["closed", "payload-cut", "header-cut"],
)
def test_connection_lost_after_started_raises_while_iterating(
    serve: Callable[[Script], ScriptedServer], ending: bytes
) -> None:
    def script(conn: socket.socket, reader: BinaryIO) -> None:
        read_request(reader)
        protocol.send(conn, protocol.TAKEN)
        protocol.send(conn, protocol.STARTED)
        read_stdin(reader)
        protocol.send(conn, protocol.STDOUT, b"partial\n")
        conn.sendall(ending)

    server = serve(script)
    command = MuxCommand(server.path, ["docker", "logs", "-f", "x"], "gpu1")
    output = command.output(None)
    assert next(output) == ("stdout", b"partial\n")
    with pytest.raises(EngineUnreachableError) as caught:
        next(output)
    server.join()
    assert caught.value.message == "lost the SSH connection to gpu1"


def wait_for_eof_script(conn: socket.socket, reader: BinaryIO) -> None:
    assert wait_for_eof(reader) == b""  # a probe connects and says nothing


def test_probe_tells_whether_a_server_answers(
    serve: Callable[[Script], ScriptedServer], short_dir: Path
) -> None:
    server = serve(wait_for_eof_script)
    assert client.probe(server.path)
    server.join()
    assert not client.probe(short_dir / "nobody.sock")
    # A socket file whose server is gone (it died without removing it) does not answer.
    stale = short_dir / "stale.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()
    assert stale.exists()
    assert not client.probe(stale)


def test_retire_sends_retire_and_nothing_else(serve: Callable[[Script], ScriptedServer]) -> None:
    received: list[bytes] = []
    server = serve(lambda conn, reader: received.append(wait_for_eof(reader)))
    client.retire(server.path)
    server.join()
    assert frames_of(received[0]) == [(protocol.RETIRE, b"")]


def test_retire_without_a_server_does_nothing(short_dir: Path) -> None:
    client.retire(short_dir / "nobody.sock")
    assert list(short_dir.iterdir()) == []
