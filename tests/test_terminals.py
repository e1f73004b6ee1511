"""The command line's wrapping: telnet answered and removed, half-close safe, the teacher's log.

Unit tests run the wrapping on ``StringTransport`` (no reactor, no socket);
the last tests run the real inetutils ``telnet`` in a pseudo-terminal over
loopback.  :class:`Terminal` is shared with ``tests/test_lan.py``.
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import shutil
import signal
import time
from collections.abc import Iterator

import pytest
from support import ADDR, CHUNKINGS, chunks
from twisted.conch.telnet import BRK, DO, DONT, ECHO, IAC, IP, NAWS, SGA, WILL, WONT
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IHalfCloseableProtocol, ITCPTransport
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import alsoProvides

from writing_servers import helper_protocols, protocols, state_machines
from writing_servers.terminals import (
    TIMING_MARK,
    ClassroomChatFactory,
    ClassroomChatRoom,
    TeacherLog,
    TerminalConnection,
    TerminalFactory,
    classroom_log,
)

#: What inetutils telnet sends for a byte it reads as Ctrl-\ (0x9C in "✓"): a break, then a TIMING-MARK.
BREAK_AND_TIMING_MARK = IAC + BRK + IAC + DO + TIMING_MARK
UTF8_LINE = "✓ “ ” ă"


def connect(factory: TerminalFactory, closes: bool = True) -> tuple[TerminalConnection, StringTransport]:
    """A wrapped connection from *factory* on a fresh StringTransport (whose loseConnection ends it if *closes*)."""
    connection = factory.buildProtocol(ADDR)
    assert connection is not None
    transport = StringTransportWithDisconnection() if closes else StringTransport()
    if closes:
        transport.protocol = connection
    connection.makeConnection(transport)
    return connection, transport


def echo_factory(speaks_telnet: bool = True) -> TerminalFactory:
    return TerminalFactory(Factory.forProtocol(protocols.Echo), speaks_telnet)


def ann_and_bob_chatting() -> tuple[TerminalConnection, StringTransport, StringTransport]:
    """ann's connection and wire, and bob's wire (cleared), both named in one wrapped chat."""
    factory = TerminalFactory(ClassroomChatFactory())
    ann, ann_wire = connect(factory)
    bob, bob_wire = connect(factory)
    ann.dataReceived(b"ann\r\n")
    bob.dataReceived(b"bob\n")
    bob_wire.clear()
    return ann, ann_wire, bob_wire


# -- telnet ----------------------------------------------------------------------------------------


def test_do_timing_mark_is_answered_will_every_time() -> None:
    """IAC DO TIMING-MARK gets IAC WILL TIMING-MARK at once, the second and third time too."""
    connection, transport = connect(echo_factory())
    for _ in range(3):
        transport.clear()
        connection.dataReceived(IAC + DO + TIMING_MARK)
        assert transport.value() == IAC + WILL + TIMING_MARK


def test_a_break_in_the_middle_of_a_line_is_answered_and_removed() -> None:
    """What telnet sends for "✓" (a break and a TIMING-MARK inside the bytes) is answered; the rest is echoed."""
    connection, transport = connect(echo_factory())
    connection.dataReceived(b"\xe2" + BREAK_AND_TIMING_MARK + b"\x93 ok\r\n")
    # The echo of what came before the break is written before the answer, as it arrived.
    assert transport.value() == b"\xe2" + IAC + WILL + TIMING_MARK + b"\x93 ok\r\n"


def test_every_other_option_is_refused() -> None:
    """DO ECHO gets WONT ECHO, WILL NAWS gets DONT NAWS, WILL SGA gets DONT SGA: the server offers nothing."""
    connection, transport = connect(echo_factory())
    connection.dataReceived(IAC + DO + ECHO + IAC + WILL + NAWS + IAC + WILL + SGA)
    assert transport.value() == IAC + WONT + ECHO + IAC + DONT + NAWS + IAC + DONT + SGA


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_telnet_commands_never_reach_the_chat(chunking: int | str) -> None:
    """Breaks, interrupts and negotiations between the bytes, split anywhere, leave only the text in the chat."""
    ann, ann_wire, bob_wire = ann_and_bob_chatting()
    sent = b"hi " + IAC + IP + IAC + DO + TIMING_MARK + b"there" + IAC + WILL + NAWS + b"\r\n"
    for piece in chunks(sent, chunking):
        ann.dataReceived(piece)
    assert bob_wire.value() == b"<ann> hi there\r\n"
    assert ann_wire.value().endswith(IAC + WILL + TIMING_MARK + IAC + DONT + NAWS)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_utf8_passes_through_the_chat_unchanged(chunking: int | str) -> None:
    """ "✓ “ ” ă" from nc (no telnet commands) reaches the others exactly, however the bytes are split."""
    ann, _, bob_wire = ann_and_bob_chatting()
    for piece in chunks(UTF8_LINE.encode() + b"\n", chunking):
        ann.dataReceived(piece)
    assert bob_wire.value() == f"<ann> {UTF8_LINE}\r\n".encode()


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_bytes_without_iac_pass_exactly_as_nc_sent_them(chunking: int | str) -> None:
    """CR LF, a bare LF, a bare CR and CR NUL reach the protocol as sent: twisted's NVT newline rules are not applied."""
    connection, transport = connect(echo_factory())
    sent = b"crlf\r\nlf\nlone\rcr-nul\r\0end"
    for piece in chunks(sent, chunking):
        connection.dataReceived(piece)
    assert transport.value() == sent


def test_bytes_answer_still_needs_telnets_crlf() -> None:
    """The howto's bytes Answer answers telnet's CR LF through the wrapping, even with a TIMING-MARK before it."""
    connection, transport = connect(TerminalFactory(Factory.forProtocol(helper_protocols.BytesAnswer)))
    connection.dataReceived(b"How are you?" + IAC + DO + TIMING_MARK + b"\r\n")
    assert transport.value() == IAC + WILL + TIMING_MARK + b"Fine\r\n"


def test_a_data_byte_255_is_doubled_for_telnet_and_left_alone_without_it() -> None:
    """Telnet's escaped IAC IAC arrives as one 255 and is written back as two; a length-framed server passes it as is."""
    connection, transport = connect(echo_factory())
    connection.dataReceived(b"a" + IAC + IAC + b"b")
    assert transport.value() == b"a" + IAC + IAC + b"b"
    raw, raw_wire = connect(echo_factory(speaks_telnet=False))
    raw.dataReceived(b"a" + IAC + DO + TIMING_MARK)
    assert raw_wire.value() == b"a" + IAC + DO + TIMING_MARK


def test_the_protocol_sees_the_real_transports_interfaces() -> None:
    """Producers, TCP_NODELAY and disconnecting reach the real transport through the wrapping."""
    connection = echo_factory().buildProtocol(ADDR)
    assert connection is not None
    transport = StringTransport()
    alsoProvides(transport, ITCPTransport)
    transport.setTcpNoDelay = lambda enabled: None  # type: ignore[attr-defined]
    connection.makeConnection(transport)
    assert ITCPTransport.providedBy(connection)
    consumer = IConsumer(connection)
    consumer.registerProducer(connection.protocol, True)
    assert transport.producer is connection.protocol
    assert not connection.disconnecting
    connection.protocol.transport.loseConnection()
    assert connection.disconnecting


# -- half-close ------------------------------------------------------------------------------------


def test_a_half_close_after_echo_sends_the_echo_then_closes() -> None:
    """Echo is not half-closeable: on read EOF the wrapping calls loseConnection, which sends the echo first."""
    connection, transport = connect(echo_factory(), closes=False)
    assert IHalfCloseableProtocol.providedBy(connection)
    connection.dataReceived(b"hi\n")
    connection.readConnectionLost()
    assert transport.value() == b"hi\n"
    assert transport.disconnecting


def test_a_half_close_reaches_a_half_closeable_line_server() -> None:
    """Answer handles half-close itself: its last line, with no line ending, is still answered."""
    connection, transport = connect(
        TerminalFactory(Factory.forProtocol(helper_protocols.Answer)), closes=False
    )
    connection.dataReceived(b"How are you?")
    connection.readConnectionLost()
    assert transport.value() == b"Fine\r\n"
    assert transport.disconnecting


def test_a_refused_connection_stays_refused() -> None:
    """When the section's factory returns None for a connection, so does the wrapping factory."""

    class Refusing(Factory):
        def buildProtocol(self, addr: object) -> None:
            return None

    assert TerminalFactory(Refusing()).buildProtocol(ADDR) is None


# -- the teacher's log -----------------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[list[dict[str, object]]]:
    """Every event logged to classroom_log (and the chat's warnings) while the test runs."""
    from twisted.logger import globalLogPublisher

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


def printed(events: list[dict[str, object]], quiet: bool = False) -> tuple[list[str], list[str]]:
    """What TeacherLog prints for *events*: (stdout lines, stderr lines), without the time."""
    out, problems = io.StringIO(), io.StringIO()
    log = TeacherLog(out, problems, quiet=quiet)
    for event in events:
        log(event)

    def untimed(stream: io.StringIO) -> list[str]:
        lines = stream.getvalue().splitlines()
        assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
        return [line[9:] for line in lines]

    return untimed(out), untimed(problems)


def test_the_log_has_a_line_per_connection_join_clash_and_leave(logged: list[dict[str, object]]) -> None:
    """Two people connect, one asks for a taken name, both leave: one readable line each, in order."""
    factory = TerminalFactory(ClassroomChatFactory())
    ann, ann_wire = connect(factory)
    bob, bob_wire = connect(factory)
    ann.dataReceived(b"ann\n")
    bob.dataReceived(b"ANN\nbob\n")
    ann_wire.loseConnection()
    bob_wire.loseConnection()
    out, problems = printed(logged)
    assert out == ann_and_bob_logged(bob_disconnected="closed")
    assert problems == []
    assert printed(logged, quiet=True) == ([], [])


def ann_and_bob_logged(bob_disconnected: str) -> list[str]:
    """The teacher's lines when ann joins, bob asks for 'ANN', then takes bob, ann leaves, then bob."""
    peer = "192.168.1.1:54321"  # StringTransport's peer
    return [
        f"{peer} connected",
        f"{peer} connected",
        f"{peer} joined as ann",
        f"{peer} asked for 'ANN', already taken",
        f"{peer} joined as bob",
        f"ann left ({peer})",
        f"{peer} disconnected (closed)",
        f"bob left ({peer})",
        f"{peer} disconnected ({bob_disconnected})",
    ]


@pytest.mark.parametrize(
    ("front_end", "ann_joins", "bob_tries"),
    [
        (state_machines.LineChat, b"ann\n", b"ANN\nbob\n"),
        (state_machines.JsonChat, b'{"join": "ann"}\n', b'{"join": "ANN"}\n{"join": "bob"}\n'),
    ],
    ids=["line-chat", "json-chat"],
)
def test_notebook_5s_chats_log_joins_clashes_and_leaves(
    logged: list[dict[str, object]], front_end: type, ann_joins: bytes, bob_tries: bytes
) -> None:
    """`serve line-chat` and `serve json-chat` tell the teacher the same events as `serve chat`."""
    factory = TerminalFactory(state_machines.ChatFactory(ClassroomChatRoom(), front_end))
    ann, ann_wire = connect(factory)
    bob, _ = connect(factory)
    ann.dataReceived(ann_joins)
    bob.dataReceived(bob_tries)
    ann_wire.loseConnection()
    bob.connectionLost(Failure(ConnectionLost()))  # bob's cable is pulled
    out, problems = printed(logged)
    assert out == ann_and_bob_logged("Connection to the other side was lost in a non-clean fashion")
    assert problems == []


def test_a_room_without_connections_logs_an_unknown_peer(logged: list[dict[str, object]]) -> None:
    """The room is application logic: an Inbox (no transport) can join it, and the log says "?"."""
    room = ClassroomChatRoom()
    room.join("ann", state_machines.Inbox())
    room.leave("ann")
    room.leave("ann")  # leaving twice logs once
    assert printed(logged)[0] == ["? joined as ann", "ann left (?)"]


def test_a_cut_off_reader_and_an_error_are_printed_even_when_quiet() -> None:
    """A warning (a reader cut off) and a logged failure go to the problems stream, also with --quiet."""
    log = Logger(namespace="writing_servers.chat.Chat")
    events: list[dict[str, object]] = []
    log.observer = events.append  # type: ignore[assignment]
    log.warn("{who} stopped reading; connection aborted", who="ann (10.0.0.7:5000)")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.failure("Unhandled Error", level=LogLevel.critical)
    for quiet in (False, True):
        out, problems = printed(events, quiet=quiet)
        assert out == []
        assert problems[0] == "ann (10.0.0.7:5000) stopped reading; connection aborted"
        assert problems[1].startswith("error in ")
        assert problems[1].endswith("ZeroDivisionError: division by zero")


def test_twisteds_own_chatter_is_not_printed() -> None:
    """Info events outside classroom_log, such as "Starting factory", print nothing."""
    events: list[dict[str, object]] = []
    Logger(namespace="twisted.internet.protocol.Factory", observer=events.append).info("Starting factory")
    other = Logger(namespace="writing_servers.terminals.TerminalFactory", observer=events.append)
    other.info("Starting factory {f}", f="x")
    Logger(namespace=classroom_log.namespace, observer=events.append).info("counted")
    assert printed(events) == (["counted"], [])


# -- the real telnet, in a pseudo-terminal ---------------------------------------------------------


class Terminal:
    """A program in a pseudo-terminal, as a person at a screen runs it; every read has a deadline."""

    def __init__(self, command: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the program
            os.execvp(command[0], command)
        self.screen = b""

    def type(self, text: str | bytes) -> None:
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def wait_for(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        """Read the screen until *pattern* (a regex) appears after what was already matched; return it."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while not (match := compiled.search(self.screen)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {pattern!r}; the screen shows {self.screen[-500:]!r}"
                )
            if select.select([self.fd], [], [], min(left, 0.2))[0]:
                try:
                    self.read()
                except OSError:  # the program ended
                    raise AssertionError(f"{pattern!r} never appeared: {self.screen[-500:]!r}") from None
        found = self.screen[: match.end()]
        self.screen = self.screen[match.end() :]
        return found

    def read(self) -> None:
        """Add what the program wrote to :attr:`screen` (blocks until there is something)."""
        # The terminal turns a program's LF into CR LF (ONLCR), so nc shows the server's CR LF as
        # CR CR LF; on a screen both look the same, and so they do here.
        self.screen = (self.screen + os.read(self.fd, 65536)).replace(b"\r\r\n", b"\r\n")

    def close(self) -> None:
        """Kill the program if it still runs, reap it, and close the terminal."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


needs_telnet = pytest.mark.skipif(shutil.which("telnet") is None, reason="telnet is not installed")


@needs_telnet
def test_a_telnet_screen_stays_alive_after_utf8_and_ctrl_c() -> None:
    """The real telnet on loopback: after "✓ “ ” ă" and Ctrl-C its screen still shows the chat, and its lines arrive."""
    from test_cli import server  # the CLI in a subprocess, on a free loopback port

    from writing_servers.clients import connect as connect_client

    with server("chat") as chat, connect_client(chat.address) as bob:
        host, port = chat.address
        ann = Terminal(["telnet", host, str(port)])
        try:
            ann.wait_for(b"What's your name\\?\r\n")
            ann.type("ann\r")
            ann.wait_for(b"Welcome, ann!\r\n")
            assert bob.read_line() == "What's your name?"
            bob.send(b"bob\n")
            assert bob.read_line() == "Welcome, bob!"
            type_utf8_and_ctrl_c(ann)
            assert bob.read_line() == "<ann> yes"
            bob.send(b"still there?\n")
            ann.wait_for(b"<bob> still there\\?\r\n")
        finally:
            ann.close()
        chat.stop()


def type_utf8_and_ctrl_c(terminal: Terminal) -> None:
    """In a telnet chat session: type "✓ “ ” ă" and Enter, then Ctrl-C, then "yes"; the screen must keep working.

    inetutils telnet strips the 8th bit before comparing a byte with its
    control keys.  The 0x9C of "✓" and "“" reads as Ctrl-\\: telnet sends a
    break and DO TIMING-MARK in place of that byte, and shows nothing more
    until the server answers.  The 0x9D of "”" reads as Ctrl-], which opens
    the ``telnet>`` prompt and takes the rest of the line as a command (an
    empty line goes back).  Both happen in the client, whatever the server
    does; what reaches the server is no longer UTF-8, and it says so.
    """
    terminal.type(UTF8_LINE + "\r")
    terminal.wait_for(b"\\?Invalid command\r\ntelnet> ")
    terminal.type("\r")  # back to the session
    # End the broken line.  Telnet may drop what is typed while it leaves the prompt: Enter again until
    # the answer shows (an empty line is ignored by the chat).
    for attempt in range(5):
        terminal.type("\r")
        try:
            terminal.wait_for(b"Error: that line is not UTF-8 text\r\n", timeout=2.0)
            break
        except AssertionError:
            if attempt == 4:
                raise
    terminal.type(b"\x03")  # Ctrl-C: telnet sends an interrupt and DO TIMING-MARK, and waits for the answer
    terminal.type("yes\r")


def test_adapting_the_connection_never_adapts_its_transport() -> None:
    """IHalfCloseableProtocol(connection) is the connection, even over a transport that adapts to anything.

    A wrapper around it (the notebooks' tracer) adapts it to hand on a half-close; were ``__conform__``
    handed on to the transport, that wrapper would get itself back and call itself forever.
    """

    class Conforming(StringTransport):
        def __conform__(self, interface: object) -> object:
            return self

    connection = echo_factory().buildProtocol(ADDR)
    assert connection is not None
    connection.makeConnection(Conforming())
    assert IHalfCloseableProtocol(connection) is connection
