"""loseConnection and abortConnection: WriteThenLose/WriteThenAbort, BigReply, the deadline defence, and a producer that holds the close.

Unit tests drive the protocols through StringTransport and a fake clock;
loopback tests check what a real client sees over TCP.
"""

from __future__ import annotations

import time

import pytest
from support import ADDR, CHUNKINGS, connected, feed
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from writing_servers import lab
from writing_servers.clients import connect
from writing_servers.closing import (
    REPLY_SIZE,
    BigReply,
    BigReplyFactory,
    Countdown,
    CountdownFactory,
    DeadlineBigReply,
    DeadlineBigReplyFactory,
    LineProducer,
    WriteThenAbort,
    WriteThenLose,
    big_reply,
)

SMALL = 1000
GRACE = 0.3
COUNTDOWN = b"3\r\n2\r\n1\r\nliftoff!\r\n"


def with_clock(factory: DeadlineBigReplyFactory) -> tuple[DeadlineBigReply, StringTransport, Clock]:
    """A connected DeadlineBigReply whose timeouts run on a fake clock."""
    clock = Clock()
    protocol = factory.buildProtocol(ADDR)
    assert isinstance(protocol, DeadlineBigReply)
    protocol.callLater = clock.callLater  # type: ignore[method-assign]
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


# -- WriteThenLose and WriteThenAbort --------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, SMALL])
def test_big_reply_has_the_requested_size(size: int) -> None:
    """big_reply(size) is exactly *size* bytes of the same text lines; 8 MiB by default."""
    assert len(big_reply(size)) == size
    assert len(big_reply()) == REPLY_SIZE
    assert big_reply(size) == big_reply()[:size]


def test_write_then_lose_writes_everything_then_closes_politely() -> None:
    """The first bytes received get the whole reply, then loseConnection (no abort)."""
    protocol, transport = connected(Factory.forProtocol(WriteThenLose))
    assert transport.value() == b""
    protocol.dataReceived(b"hello\r\n")
    assert transport.value() == big_reply()
    assert transport.disconnecting and not transport.disconnected


def test_write_then_abort_writes_everything_then_aborts() -> None:
    """The first bytes received get the whole reply written, then abortConnection."""
    protocol, transport = connected(Factory.forProtocol(WriteThenAbort))
    protocol.dataReceived(b"hello\r\n")
    assert transport.value() == big_reply()
    assert transport.disconnected  # StringTransport sets this only on abortConnection


def test_write_then_lose_waits_for_a_slow_reader_then_delivers_all() -> None:
    """Over loopback the polite close waits while the client does not read; then every byte and a clean EOF."""
    server = lab.listen(Factory.forProtocol(WriteThenLose), name="write then lose")
    with connect(server, timeout=10) as client:
        client.send_line("hello")
        server.wait_for_event("loseConnection()")
        time.sleep(0.2)
        assert server.open_connections == 1
        assert client.read_all() == big_reply()
        assert client.ended == "eof"
    server.wait_until_idle()
    assert events(server)[-2:] == ["loseConnection()", "connectionLost(ConnectionDone)"]
    server.stop()


def test_write_then_abort_sends_nothing_and_resets() -> None:
    """Over loopback the abort ends the connection before the client reads: 0 bytes, then a reset."""
    server = lab.listen(Factory.forProtocol(WriteThenAbort), name="write then abort")
    with connect(server, timeout=10) as client:
        client.send_line("hello")
        server.wait_for_event("connectionLost")
        assert server.open_connections == 0
        assert client.read_all() == b""
        assert client.ended == "reset"
    assert events(server)[-2:] == ["abortConnection()", "connectionLost(ConnectionAborted)"]
    server.stop()


# -- BigReply -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, SMALL, REPLY_SIZE])
def test_reply_has_the_requested_size(size: int) -> None:
    """The factory's reply is exactly the size asked for (8 MiB by default)."""
    assert len(BigReplyFactory(size).reply) == size
    assert len(BigReplyFactory().reply) == REPLY_SIZE == 8 * 1024 * 1024


def test_big_reply_waits_for_a_request() -> None:
    """On connect, and until a whole line has arrived, BigReply writes nothing and stays open."""
    protocol, transport = connected(BigReplyFactory(SMALL))
    protocol.dataReceived(b"los")
    assert transport.value() == b""
    assert not transport.disconnecting


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_lose_sends_the_reply_and_closes_politely(chunking: int | str, ending: bytes) -> None:
    """'lose' (CRLF or LF, however chunked) writes the whole reply, then loseConnection, no abort."""
    factory = BigReplyFactory(SMALL)
    protocol, transport = connected(factory)
    feed(protocol, b"lose" + ending, chunking)
    assert transport.value() == factory.reply
    assert transport.disconnecting
    assert not transport.disconnected  # StringTransport sets this only on abortConnection


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_abort_writes_the_reply_then_aborts(chunking: int | str) -> None:
    """'abort' writes the reply and then calls abortConnection (a real transport drops the unsent part)."""
    factory = BigReplyFactory(SMALL)
    protocol, transport = connected(factory)
    feed(protocol, b"abort\r\n", chunking)
    assert transport.value() == factory.reply
    assert transport.disconnected


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_unknown_request_gets_a_complaint(chunking: int | str) -> None:
    """Anything but lose/abort gets a one-line complaint and a polite close, not the big reply."""
    protocol, transport = connected(BigReplyFactory(SMALL))
    feed(protocol, b"hello\r\n", chunking)
    assert transport.value() == b"say lose or abort\r\n"
    assert transport.disconnecting and not transport.disconnected


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_only_the_first_line_counts(chunking: int | str) -> None:
    """Lines after the request are ignored: one reply, and a later 'abort' does not abort."""
    factory = BigReplyFactory(SMALL)
    protocol, transport = connected(factory)
    feed(protocol, b"lose\r\nabort\r\nlose\r\n", chunking)
    assert transport.value() == factory.reply
    assert not transport.disconnected


# -- DeadlineBigReply -----------------------------------------------------------


def test_deadline_factory_builds_deadline_protocols() -> None:
    """DeadlineBigReplyFactory keeps its grace period (30 s unless told) and builds DeadlineBigReply."""
    assert DeadlineBigReplyFactory().grace_period == 30.0
    factory = DeadlineBigReplyFactory(SMALL, grace_period=GRACE)
    assert factory.grace_period == GRACE
    assert isinstance(factory.buildProtocol(ADDR), DeadlineBigReply)
    assert issubclass(DeadlineBigReply, BigReply)


def test_deadline_aborts_after_the_grace_period() -> None:
    """After 'lose', the connection is aborted once grace_period has passed, not before."""
    protocol, transport, clock = with_clock(DeadlineBigReplyFactory(SMALL, grace_period=GRACE))
    protocol.dataReceived(b"lose\r\n")
    assert transport.disconnecting and not transport.disconnected
    clock.advance(GRACE * 0.99)
    assert not transport.disconnected
    clock.advance(GRACE * 0.02)
    assert transport.disconnected


def test_clean_close_cancels_the_deadline() -> None:
    """A connection that closes in time leaves no abort pending."""
    protocol, transport, clock = with_clock(DeadlineBigReplyFactory(SMALL, grace_period=GRACE))
    protocol.dataReceived(b"lose\r\n")
    assert len(clock.getDelayedCalls()) == 1
    protocol.connectionLost()
    assert clock.getDelayedCalls() == []
    clock.advance(GRACE * 10)
    assert not transport.disconnected


def test_no_deadline_before_a_request_or_after_an_abort() -> None:
    """The timer starts with a polite close only: none while waiting, none after 'abort'."""
    protocol, transport, clock = with_clock(DeadlineBigReplyFactory(SMALL, grace_period=GRACE))
    assert clock.getDelayedCalls() == []
    protocol.dataReceived(b"abort\r\n")
    assert transport.disconnected
    assert clock.getDelayedCalls() == []


# -- LineProducer and Countdown -------------------------------------------------


def registered(lines: list[bytes], unregister_when_done: bool = True) -> tuple[LineProducer, StringTransport]:
    transport = StringTransport()
    producer = LineProducer(transport, lines, unregister_when_done)
    transport.registerProducer(producer, False)
    return producer, transport


def test_line_producer_writes_one_line_per_request_then_unregisters() -> None:
    """Each resumeProducing writes the next line; the one after the last unregisters the producer."""
    producer, transport = registered([b"a", b"b"])
    producer.resumeProducing()
    assert transport.value() == b"a\r\n"
    producer.resumeProducing()
    assert transport.value() == b"a\r\nb\r\n"
    assert transport.producer is producer and not producer.finished
    producer.resumeProducing()
    assert transport.producer is None and producer.finished
    assert transport.value() == b"a\r\nb\r\n"


def test_forgetful_producer_stays_registered_until_finished() -> None:
    """With unregister_when_done=False the producer stays registered; finish() unregisters, once only."""
    producer, transport = registered([b"a"], unregister_when_done=False)
    for _ in range(3):
        producer.resumeProducing()
    assert transport.value() == b"a\r\n"
    assert transport.producer is producer
    producer.finish()
    assert transport.producer is None
    producer.finish()  # StringTransport raises if a producer unregisters twice


def test_stopped_producer_writes_nothing_more() -> None:
    """After stopProducing (the connection is gone) the producer neither writes nor unregisters."""
    producer, transport = registered([b"a", b"b"])
    producer.stopProducing()
    producer.resumeProducing()
    assert transport.value() == b""
    assert producer.finished and transport.producer is producer


def test_countdown_registers_a_pull_producer_and_asks_to_close() -> None:
    """Countdown registers its producer as a pull producer and calls loseConnection before any line."""
    factory = CountdownFactory()
    protocol, transport = connected(factory)
    assert isinstance(protocol, Countdown)
    assert transport.producer is factory.producers[0]
    assert transport.streaming is False
    assert transport.disconnecting
    assert transport.value() == b""  # StringTransport never asks a producer for data itself


def test_countdown_lines_come_out_as_a_transport_asks() -> None:
    """Asked as a TCP transport asks (until it unregisters), the producer sends the countdown."""
    factory = CountdownFactory()
    _, transport = connected(factory)
    for _ in range(10):
        if transport.producer is None:
            break
        transport.producer.resumeProducing()
    assert transport.producer is None
    assert transport.value() == COUNTDOWN


# -- over loopback ----------------------------------------------------------------


def events(server: lab.Server) -> list[str]:
    """Connection #1's events, without the prefix."""
    return [event.removeprefix("#1 ") for event in server.trace.events() if event.startswith("#1 ")]


def test_lose_delivers_everything_then_eof() -> None:
    """loseConnection: the server stays open while the client has not read; then all 8 MiB and a clean EOF."""
    server = lab.listen(BigReplyFactory())
    with connect(server, timeout=10) as client:
        client.send_line("lose")
        server.wait_for_event("loseConnection()")
        assert server.open_connections == 1  # 8 MiB cannot fit in the socket buffers
        data = client.read_all()
        assert len(data) == REPLY_SIZE and data == BigReplyFactory().reply
        assert client.ended == "eof"
    server.wait_until_idle()
    assert events(server)[-2:] == ["loseConnection()", "connectionLost(ConnectionDone)"]


def test_abort_drops_everything_and_resets() -> None:
    """abortConnection: the server is done before the client reads; the client gets 0 bytes and a reset."""
    server = lab.listen(BigReplyFactory())
    with connect(server, timeout=10) as client:
        client.send_line("abort")
        server.wait_until_idle()
        assert client.read_all() == b""
        assert client.ended == "reset"
    assert events(server)[-2:] == ["abortConnection()", "connectionLost(ConnectionAborted)"]


def test_a_client_that_never_reads_keeps_a_lost_connection_open() -> None:
    """After loseConnection to a non-reader the connection stays open; it ends, uncleanly, when the client goes."""
    server = lab.listen(BigReplyFactory())
    client = connect(server, timeout=10)
    client.send_line("lose")
    server.wait_for_event("loseConnection()")
    with pytest.raises(lab.LabTimeout):
        server.wait_until_idle(timeout=0.3)
    assert server.open_connections == 1
    client.close()
    server.wait_until_idle()
    assert events(server)[-1] == "connectionLost(ConnectionLost)"


def test_deadline_aborts_a_client_that_never_reads() -> None:
    """DeadlineBigReply turns the stuck polite close into an abort: the client sees a reset."""
    server = lab.listen(DeadlineBigReplyFactory(grace_period=GRACE))
    with connect(server, timeout=10) as client:
        client.send_line("lose")
        server.wait_for_event("loseConnection()")
        server.wait_until_idle(timeout=GRACE + 5)
        data = client.read_all()
        assert len(data) < REPLY_SIZE
        assert client.ended == "reset"
    assert events(server)[-3:] == [
        "loseConnection()",
        "abortConnection()",
        "connectionLost(ConnectionAborted)",
    ]


def test_deadline_leaves_a_reading_client_alone() -> None:
    """A client that reads at once gets everything and a clean EOF, and no abort fires later."""
    server = lab.listen(DeadlineBigReplyFactory(grace_period=GRACE))
    with connect(server, timeout=10) as client:
        client.send_line("lose")
        assert len(client.read_all()) == REPLY_SIZE
        assert client.ended == "eof"
    server.wait_until_idle()
    time.sleep(GRACE + 0.1)  # long enough for a forgotten timer to have fired
    assert "abortConnection()" not in events(server)
    assert events(server)[-1] == "connectionLost(ConnectionDone)"


def test_countdown_close_waits_for_the_producer() -> None:
    """loseConnection comes before most lines are written, yet every line arrives, then a clean EOF."""
    server = lab.listen(CountdownFactory())
    with connect(server) as client:
        assert client.read_all() == COUNTDOWN
        assert client.ended == "eof"
    server.wait_until_idle()
    seen = events(server)
    assert seen.index("loseConnection()") < seen.index("write(b'2\\r\\n')")
    assert seen[-1] == "connectionLost(ConnectionDone)"


def test_forgetful_producer_holds_the_connection_open_until_finished() -> None:
    """A producer that never unregisters keeps the connection open after every line; finish() closes it."""
    factory = CountdownFactory(unregister_when_done=False)
    server = lab.listen(factory)
    with connect(server) as client:
        assert client.read_lines(4) == ["3", "2", "1", "liftoff!"]
        with pytest.raises(lab.LabTimeout):
            server.wait_until_idle(timeout=0.3)
        lab.call(factory.producers[0].finish)
        assert client.read_all() == b""
        assert client.ended == "eof"
    server.wait_until_idle()


def test_server_wait_for_event_returns_once_seen_and_times_out_otherwise() -> None:
    """Server.wait_for_event returns for an event in the trace and raises LabTimeout for one that never comes."""
    server = lab.listen(CountdownFactory())
    with connect(server) as client:
        client.read_all()
    server.wait_for_event("connectionLost(")
    began = time.monotonic()
    with pytest.raises(lab.LabTimeout, match="never-happens"):
        server.wait_for_event("never-happens", timeout=0.05)
    assert time.monotonic() - began < 5.0  # the timeout, not the default wait, ended it (generous under load)
