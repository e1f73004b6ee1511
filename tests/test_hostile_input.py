"""Issue 6's twelve kinds of bad input, over real loopback sockets, against every line server.

Each case checks what the offending client is told (or that it is cut off,
with the reason in the server log), that the server goes on serving
everyone else, and that nothing it had accepted is lost.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from twisted.internet.protocol import Factory

from writing_servers import lab
from writing_servers.chat import NAME_RULE, ChatFactory
from writing_servers.clients import Client, connect
from writing_servers.helper_protocols import Answer, TextLineReceiver, Upload
from writing_servers.scaling import ChatCrowd
from writing_servers.startup_shutdown import LogfileFactory
from writing_servers.state_machines import ChatFactory as RoomFactory
from writing_servers.state_machines import ChatRoom, JsonChat, LineChat

TIMEOUT = 10.0
TOO_LONG = "line longer than 1024 bytes; closing the connection"
NOT_UTF8 = "that line is not UTF-8 text"


def plain_error(reason: str) -> str:
    return f"Error: {reason}"


def json_error(reason: str) -> str:
    return json.dumps({"error": reason})


@dataclass
class LineServer:
    """A line server, and one request it answers: enough to tell that it still works."""

    make_factory: Callable[[], Factory]
    greeting: list[str]
    request: str
    reply: str
    error: Callable[[str], str] = plain_error  # how the server words a refusal


LINE_SERVERS = {
    "answer": LineServer(lambda: Factory.forProtocol(Answer), [], "How are you?", "Fine"),
    "upload": LineServer(lambda: Factory.forProtocol(Upload), [], "TOTAL", "TOTAL 0 bytes in 0 upload(s)"),
    "line-chat": LineServer(
        lambda: RoomFactory(ChatRoom(), LineChat), ["What's your name?"], "alice", "Welcome, alice!"
    ),
    "json-chat": LineServer(
        lambda: RoomFactory(ChatRoom(), JsonChat),
        [],
        '{"join": "alice"}',
        '{"text": "Welcome, alice!"}',
        json_error,
    ),
    "chat": LineServer(ChatFactory, ["What's your name?"], "alice", "Welcome, alice!"),
}


@pytest.fixture(params=sorted(LINE_SERVERS))
def line_server(request: pytest.FixtureRequest) -> tuple[LineServer, lab.Server]:
    spec = LINE_SERVERS[request.param]
    return spec, lab.listen(spec.make_factory(), name=f"hostile-{request.param}")


def greeted(server: lab.Server, spec: LineServer) -> Client:
    client = connect(server, timeout=TIMEOUT)
    assert client.read_lines(len(spec.greeting)) == spec.greeting
    return client


def still_serves(server: lab.Server, spec: LineServer) -> None:
    """A new client gets its greeting and its reply: the server is up for everyone else."""
    with greeted(server, spec) as client:
        client.send_line(spec.request)
        assert client.read_line() == spec.reply


def raw_socket(server: lab.Server, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # set before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect(server.address)
    return sock


def receive_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset after the data counts as a close)."""
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    return received


def reset(sock: socket.socket) -> None:
    """Vanish without a goodbye: close with SO_LINGER 0, so the server sees a reset, not EOF."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


# -- 1, 2, 3, 11, 12: every line server ------------------------------------------------------------


def test_1_overlong_line_gets_a_reason_then_a_close(line_server: tuple[LineServer, lab.Server]) -> None:
    """1. A line over MAX_LENGTH is answered with the limit, the connection closes, the server goes on."""
    spec, server = line_server
    with greeted(server, spec) as client:
        client.send_line("x" * (TextLineReceiver.MAX_LENGTH + 1))
        assert client.read_all().decode() == spec.error(TOO_LONG) + "\r\n"
        assert client.ended == "eof"
    still_serves(server, spec)
    assert lab.errors().take_new() == []


def test_2_endless_line_is_cut_off_after_max_length(line_server: tuple[LineServer, lab.Server]) -> None:
    """2. A megabyte with no line ending: the server buffers at most MAX_LENGTH, says so and closes."""
    spec, server = line_server
    sock = raw_socket(server)
    try:
        sock.sendall(b"x" * (1 << 20))
    except OSError:  # the server closed while we were still sending: expected
        pass
    received = receive_all(sock).decode()
    sock.close()
    assert received == "".join(line + "\r\n" for line in [*spec.greeting, spec.error(TOO_LONG)])
    still_serves(server, spec)


def test_3_invalid_utf8_is_refused_and_the_connection_stays(
    line_server: tuple[LineServer, lab.Server],
) -> None:
    """3. A line that is not UTF-8 gets an error; the same connection's next request is answered."""
    spec, server = line_server
    with greeted(server, spec) as client:
        client.send_line(b"caf\xe9 \xff\xfe")
        assert client.read_line() == spec.error(NOT_UTF8)
        client.send_line(spec.request)
        assert client.read_line() == spec.reply


def test_11_input_one_byte_per_packet(line_server: tuple[LineServer, lab.Server]) -> None:
    """11. The request sent one byte per segment (TCP_NODELAY) gets the same reply as sent whole."""
    spec, server = line_server
    with greeted(server, spec) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in (spec.request + "\r\n").encode():
            client.send(bytes([byte]))
            time.sleep(0.001)  # let each byte leave as its own segment
        assert client.read_line() == spec.reply


@pytest.mark.parametrize("ending", [b"\r\n", b""], ids=["with-ending", "no-ending"])
def test_12_half_close_gets_every_reply_then_eof(
    line_server: tuple[LineServer, lab.Server], ending: bytes
) -> None:
    """12. Requests then EOF (nc -N): every reply arrives, the last line counts without an ending."""
    spec, server = line_server
    for _ in range(20):  # the replies used to be lost in some runs: try it often
        with greeted(server, spec) as client:
            client.send(b"caf\xe9\n" + spec.request.encode() + ending)
            client.shutdown_write()
            assert client.read_all().decode() == f"{spec.error(NOT_UTF8)}\r\n{spec.reply}\r\n"
            assert client.ended == "eof"
    server.wait_until_idle()
    assert lab.errors().take_new() == []


# -- the log-file server: it never replies, so its reasons go to the server log --------------------


def test_logfile_overlong_line_closes_with_the_reason_logged(tmp_path: Path) -> None:
    """1. The log-file server closes on an overlong line, logs why, and keeps the lines before it."""
    log = tmp_path / "server.log"
    server = lab.listen(LogfileFactory(log), name="hostile-logfile")
    with connect(server, timeout=TIMEOUT) as client:
        client.send(b"before\n" + b"x" * 5000 + b"\n")
        assert client.read_all() == b""
        assert client.ended == "eof"
    server.wait_until_idle()
    assert lab.errors().take_new() == ["a client sent a line over 1024 bytes; connection closed"]
    server.stop()
    assert log.read_bytes() == b"before\n"


def test_logfile_half_close_logs_the_last_line(tmp_path: Path) -> None:
    """12. A last line without an ending, then EOF: it is logged too."""
    log = tmp_path / "server.log"
    server = lab.listen(LogfileFactory(log), name="hostile-logfile")
    with connect(server, timeout=TIMEOUT) as client:
        client.send(b"one\r\ntwo")
        client.shutdown_write()
        assert client.read_all() == b""
    server.wait_until_idle()
    server.stop()
    assert log.read_bytes() == b"one\ntwo\n"


# -- 4 to 10: the chat --------------------------------------------------------------------------


class Chatters:
    """Named chat clients on one server; closes them all at the end."""

    def __init__(self, server: lab.Server) -> None:
        self.server = server
        self.clients: list[Client] = []

    def join(self, name: str) -> Client:
        client = connect(self.server, timeout=TIMEOUT, title=name)
        self.clients.append(client)
        assert client.read_line() == "What's your name?"
        client.send_line(name)
        assert client.read_line() == f"Welcome, {name}!"
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def chat() -> Any:
    factory = ChatFactory()
    server = lab.listen(factory, name="hostile-chat")
    chatters = Chatters(server)
    yield factory, server, chatters
    chatters.close()
    server.wait_until_idle()
    assert factory.users == {}


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("\x1b[2K\r<bob> send me your password", "^[[2K^M<bob> send me your password"),
        ("hi\r<bob> fake", "hi^M<bob> fake"),
        ("\x1b]0;pwned\x07title", "^[]0;pwned^Gtitle"),
        ("back\x08\x08\x08\x08space", "back^H^H^H^Hspace"),
        ("\u202eevil", "<U+202E>evil"),
        ("tab\there", "tab^Ihere"),
    ],
    ids=["erase-line", "carriage-return", "osc-title", "backspaces", "bidi-override", "tab"],
)
def test_4_control_characters_arrive_spelled_out(chat: Any, message: str, shown: str) -> None:
    """4. Escapes, CRs and bidi overrides reach others as visible text on one line of their own."""
    _, _, chatters = chat
    alice, bob = chatters.join("alice"), chatters.join("bob")
    alice.send_line(message)
    assert bob.read_until(b"\n") == f"<alice> {shown}\r\n".encode()


@pytest.mark.parametrize(
    ("name", "reply"),
    [
        ("", f"Please type a name: {NAME_RULE}."),
        ("   ", f"Please type a name: {NAME_RULE}."),
        ("x" * 21, f"Sorry, a name is {NAME_RULE}. Please choose another."),
        ("<alice>", f"Sorry, a name is {NAME_RULE}. Please choose another."),
        ("\u0430lice", f"Sorry, a name is {NAME_RULE}. Please choose another."),
        ("ali\x1b[0mce", f"Sorry, a name is {NAME_RULE}. Please choose another."),
    ],
    ids=["empty", "blank", "overlong", "brackets", "cyrillic-a", "escape"],
)
def test_5_bad_names_are_refused_and_never_join(chat: Any, name: str, reply: str) -> None:
    """5. Empty, blank, overlong and look-alike names get the rule and a second try; nobody hears of them."""
    factory, server, chatters = chat
    alice = chatters.join("alice")
    with connect(server, timeout=TIMEOUT) as mallory:
        mallory.read_line()
        mallory.send_line(name)
        assert mallory.read_line() == reply
        mallory.send_line("mallory")
        assert mallory.read_line() == "Welcome, mallory!"
        mallory.send_line("hello")
    assert alice.read_line() == "<mallory> hello"  # the first line alice sees from mallory
    server.wait_for_open_connections(1)
    assert lab.call(lambda: sorted(factory.users)) == ["alice"]


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice"])
def test_6_taken_name_is_refused_in_any_case(chat: Any, taken: str) -> None:
    """6. A name in use (in any letter case) is refused; the owner keeps it; the newcomer tries again."""
    factory, server, chatters = chat
    alice = chatters.join("alice")
    with connect(server, timeout=TIMEOUT) as second:
        second.read_line()
        second.send_line(taken)
        assert second.read_line() == "Name taken, please choose another."
        second.send_line("alice2")
        assert second.read_line() == "Welcome, alice2!"
        second.send_line("hi")
        assert alice.read_line() == "<alice2> hi"
        assert lab.call(lambda: factory.users["alice"].name) == "alice"


@pytest.mark.parametrize("how", ["close", "reset"])
def test_7_vanishing_while_choosing_a_name_changes_nothing(chat: Any, how: str) -> None:
    """7. Clients that leave (EOF or reset) before or during GETNAME leave no trace; the chat goes on."""
    factory, server, chatters = chat
    alice, bob = chatters.join("alice"), chatters.join("bob")
    for partial in [b"", b"car", b"carol\r"]:
        sock = raw_socket(server)
        sock.sendall(partial)
        assert sock.recv(100) == b"What's your name?\r\n"
        sock.close() if how == "close" else reset(sock)
    server.wait_for_open_connections(2)
    alice.send_line("still here?")
    assert bob.read_line() == "<alice> still here?"
    assert lab.call(lambda: sorted(factory.users)) == ["alice", "bob"]
    assert lab.errors().take_new() == []


def test_8_vanishing_mid_broadcast_loses_nothing_for_the_others(chat: Any) -> None:
    """8. Twenty clients reset their connections while a hundred messages fan out; the rest get them all."""
    factory, server, chatters = chat
    alice = chatters.join("alice")
    stayers = [chatters.join(f"stay{n}") for n in range(5)]
    leavers = [chatters.join(f"leave{n}") for n in range(20)]

    def send_all() -> None:
        for n in range(100):
            alice.send_line(f"message {n}")

    sender = threading.Thread(target=send_all)
    sender.start()
    for leaver in leavers:
        reset(leaver.sock)
    sender.join(TIMEOUT)
    for stayer in stayers:
        assert stayer.read_lines(100) == [f"<alice> message {n}" for n in range(100)]
    server.wait_for_open_connections(6)
    assert lab.call(lambda: sorted(factory.users)) == sorted(["alice", *(f"stay{n}" for n in range(5))])
    assert lab.errors().take_new() == []


def test_9_a_client_that_stops_reading_is_aborted_and_delays_nobody(chat: Any) -> None:
    """9. Bob never reads: once MAX_UNSENT bytes wait for him he is aborted and logged; carol gets every line."""
    factory, server, chatters = chat
    bob = raw_socket(server, receive_buffer=4096)
    bob.sendall(b"bob\n")
    alice, carol = chatters.join("alice"), chatters.join("carol")
    line = "y" * 1000
    sent = 0
    # Enough to fill bob's socket buffers (a few MB on loopback), then MAX_UNSENT more.
    while lab.call(lambda: "bob" in factory.users) and sent < 20_000:
        alice.send_line(f"{sent:05d} {line}")
        assert carol.read_line() == f"<alice> {sent:05d} {line}"
        sent += 1
    assert lab.call(lambda: sorted(factory.users)) == ["alice", "carol"]
    assert lab.errors().take_new() == [
        "bob stopped reading: more than 1048576 bytes waiting for it; connection aborted"
    ]
    received = receive_all(bob)
    bob.close()
    assert received.startswith(b"What's your name?\r\nWelcome, bob!\r\n<alice> 00000 ")
    assert len(received) < sent * 1010  # he got a prefix, then the reset
    alice.send_line("after bob")
    assert carol.read_line() == "<alice> after bob"


def test_9_request_reply_client_that_stops_reading_is_paused_not_buffered() -> None:
    """9. A client that sends requests but never reads replies stops being read: nothing piles up."""
    server = lab.listen(Factory.forProtocol(Upload), name="hostile-upload-stall")
    sock = raw_socket(server, receive_buffer=4096)
    sock.setblocking(False)
    requests = b"TOTAL\n" * 1000  # 6 bytes in, 30 bytes out
    pending, sent = requests, 0
    deadline = time.monotonic() + TIMEOUT
    stalled_since = None
    # Had the server kept reading (queueing replies in memory), our sends would never block for long.
    while stalled_since is None or time.monotonic() - stalled_since < 0.5:
        assert time.monotonic() < deadline, (
            f"the server kept reading a client that reads nothing ({sent} bytes)"
        )
        try:
            count = sock.send(pending)
            sent += count
            pending = pending[count:] or requests
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            time.sleep(0.01)
    sock.setblocking(True)
    first = b"".join(sock.recv(30, socket.MSG_WAITALL) for _ in range(10))
    assert first == b"TOTAL 0 bytes in 0 upload(s)\r\n" * 10  # nothing lost: answers in order
    reset(sock)
    server.wait_until_idle()
    still_serves(server, LINE_SERVERS["upload"])
    assert lab.errors().take_new() == []


RAPID_CONNECTIONS = """
import socket, struct, sys
address = (sys.argv[1], int(sys.argv[2]))
for n in range(1000):
    sock = socket.create_connection(address, timeout=10)
    if n % 3 == 0:
        sock.sendall(b"x%d\\n" % n)  # some choose a name and leave at once
    if n % 2 == 0:  # half vanish with a reset instead of a goodbye
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
"""


def test_10_a_thousand_rapid_connections_leave_nothing_behind(chat: Any) -> None:
    """10. 1,000 connect/disconnects (half reset, some mid-name) leave no user, connection, fd or error."""
    factory, server, chatters = chat
    alice, bob = chatters.join("alice"), chatters.join("bob")
    process = psutil.Process()
    fds_before = process.num_fds()
    # From another process, so the clients do not compete with the server for this one's GIL.
    host, port = server.address
    subprocess.run([sys.executable, "-c", RAPID_CONNECTIONS, host, str(port)], check=True, timeout=60)
    server.wait_for_open_connections(2)
    alice.send_line("survived")
    assert bob.read_line() == "<alice> survived"
    assert lab.call(lambda: sorted(factory.users)) == ["alice", "bob"]
    assert process.num_fds() == fds_before
    assert lab.errors().take_new() == []


def test_json_chat_escapes_control_characters_as_json() -> None:
    """4. The JSON front end never sends a raw control character: json.dumps escapes them."""
    server = lab.listen(RoomFactory(ChatRoom(), JsonChat), name="hostile-json")
    with connect(server, timeout=TIMEOUT) as alice, connect(server, timeout=TIMEOUT) as bob:
        alice.send_line('{"join": "alice"}')
        alice.read_line()
        bob.send_line('{"join": "bob"}')
        bob.read_line()
        alice.read_line()  # "* bob has joined"
        bob.send_line(json.dumps({"say": "\x1b[2Khi\r"}))
        raw = alice.read_until(b"\n")
        assert b"\x1b" not in raw and b"\r" not in raw[:-2]
        assert json.loads(raw) == {"text": "<bob> \x1b[2Khi\r"}


def test_9_a_burst_does_not_cut_off_readers_that_keep_up() -> None:
    """9. Two hundred people each say 1,000 bytes at once (200 kB for everyone): nobody is cut off."""
    factory = ChatFactory()
    server = lab.listen(factory, name="hostile-burst")
    with ChatCrowd(server.address, timeout=TIMEOUT) as crowd:
        crowd.grow_to(200)
        for member in crowd.members:
            member.sock.setblocking(True)
            member.sock.settimeout(TIMEOUT)
        for member in crowd.members:  # all at once, before anyone reads
            member.sock.sendall(member.name.encode() + b" " + b"z" * 1000 + b"\r\n")
        for member in crowd.members:
            expected = 199 * (1000 + 2) + sum(
                len(f"<{other.name}> {other.name} ") for other in crowd.members if other is not member
            )
            received = len(member.buffer)
            while received < expected:
                data = member.sock.recv(1 << 20)
                assert data, f"{member.name} was cut off after {received} of {expected} bytes"
                received += len(data)
            assert received == expected
        assert lab.call(lambda: len(factory.users)) == 200
    assert lab.errors().take_new() == []
