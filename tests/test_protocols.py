"""Echo, QOTD, CountingEcho and IdleTimeoutEcho, driven by StringTransport: no reactor, no sockets."""

from __future__ import annotations

import pytest
from support import ADDR, CHUNKINGS, chunks, connected, feed
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from writing_servers.protocols import (
    QOTD,
    CountingEcho,
    CountingEchoFactory,
    Echo,
    IdleTimeoutEcho,
    IdleTimeoutEchoFactory,
)

QUOTE = b"An apple a day keeps the doctor away\r\n"
#: Text, a CRLF, a lone LF, a NUL, bytes that are not UTF-8, and non-ASCII UTF-8.
MESSAGE = b"hello, world\r\nsecond line\n\x00\xff\xfe caf\xc3\xa9 \xe2\x98\x83\r\n"
#: How a test feeds its input: in chunks of 1..9 bytes, in two halves, or whole.


def welcome(count: int) -> bytes:
    return b"Welcome! There are currently %d open connections.\r\n" % count


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_chunks_rejoin_to_the_input(chunking: int | str) -> None:
    """The splitting helper loses and reorders nothing, and really splits (so the other tests mean something)."""
    pieces = list(chunks(MESSAGE, chunking))
    assert b"".join(pieces) == MESSAGE
    expected = {"whole": 1, "halves": 2}.get(str(chunking)) or -(-len(MESSAGE) // int(chunking))
    assert len(pieces) == expected


def test_string_transport_rejects_text() -> None:
    """StringTransport raises TypeError on str, so every test below also proves we write only bytes."""
    with pytest.raises(TypeError):
        StringTransport().write("text")  # type: ignore[arg-type]


# -- Echo ---------------------------------------------------------------------


def test_echo_says_nothing_on_connect() -> None:
    """Echo writes nothing until something arrives, and keeps the connection open."""
    _, transport = connected(Factory.forProtocol(Echo))
    assert transport.value() == b""
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_echo_writes_back_every_byte(chunking: int | str) -> None:
    """Echo writes back exactly the bytes it received, however they were chunked, and stays open."""
    protocol, transport = connected(Factory.forProtocol(Echo))
    feed(protocol, MESSAGE, chunking)
    assert transport.value() == MESSAGE
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_echo_answers_each_chunk_as_it_arrives(chunking: int | str) -> None:
    """Echo does not buffer: after each chunk the transport holds everything received so far."""
    protocol, transport = connected(Factory.forProtocol(Echo))
    so_far = b""
    for piece in chunks(MESSAGE, chunking):
        protocol.dataReceived(piece)
        so_far += piece
        assert transport.value() == so_far


def test_echo_connections_are_independent() -> None:
    """Two Echo protocols from one factory each answer only their own client."""
    factory = Factory.forProtocol(Echo)
    first, first_transport = connected(factory)
    second, second_transport = connected(factory)
    first.dataReceived(b"one\r\n")
    second.dataReceived(b"two\r\n")
    assert first_transport.value() == b"one\r\n"
    assert second_transport.value() == b"two\r\n"


# -- QOTD ---------------------------------------------------------------------


def test_qotd_sends_the_quote_and_closes() -> None:
    """QOTD writes the quote with a CRLF as soon as the connection is made, then closes it."""
    _, transport = connected(Factory.forProtocol(QOTD))
    assert transport.value() == QUOTE
    assert transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_qotd_ignores_what_the_client_sends(chunking: int | str) -> None:
    """Whatever a client sends after connecting, QOTD writes nothing more than its one quote."""
    protocol, transport = connected(Factory.forProtocol(QOTD))
    feed(protocol, MESSAGE, chunking)
    assert transport.value() == QUOTE


def test_qotd_gives_every_client_the_quote() -> None:
    """Each new connection gets the quote again (nothing is used up on the factory)."""
    factory = Factory.forProtocol(QOTD)
    for _ in range(3):
        _, transport = connected(factory)
        assert transport.value() == QUOTE
        assert transport.disconnecting


# -- CountingEcho ---------------------------------------------------------------


def test_counting_factory_builds_counting_echo_sharing_itself() -> None:
    """buildProtocol returns a CountingEcho whose factory is the one that built it; nothing is counted yet."""
    factory = CountingEchoFactory()
    protocol = factory.buildProtocol(ADDR)
    assert isinstance(protocol, CountingEcho)
    assert protocol.factory is factory
    assert factory.numProtocols == 0


def test_counting_echo_greets_with_the_open_connection_count() -> None:
    """Three protocols from one factory greet with 1, 2 and 3 open connections, and stay open."""
    factory = CountingEchoFactory()
    transports = [connected(factory)[1] for _ in range(3)]
    assert [transport.value() for transport in transports] == [welcome(1), welcome(2), welcome(3)]
    assert not any(transport.disconnecting for transport in transports)
    assert factory.numProtocols == 3


def test_counting_echo_connection_lost_decrements_the_count() -> None:
    """After two of three connections are lost the factory counts one, and the next greeting says 2."""
    factory = CountingEchoFactory()
    protocols = [connected(factory)[0] for _ in range(3)]
    protocols[0].connectionLost(Failure(Exception("gone")))
    protocols[2].connectionLost(Failure(Exception("gone")))
    assert factory.numProtocols == 1
    _, transport = connected(factory)
    assert transport.value() == welcome(2)


def test_counting_is_per_factory() -> None:
    """Two factories keep separate counts: the count lives on the factory, not on the class."""
    first, second = CountingEchoFactory(), CountingEchoFactory()
    connected(first)
    connected(first)
    _, transport = connected(second)
    assert transport.value() == welcome(1)
    assert (first.numProtocols, second.numProtocols) == (2, 1)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_counting_echo_echoes_after_the_greeting(chunking: int | str) -> None:
    """After its greeting, CountingEcho writes back exactly what it received, however it was chunked."""
    protocol, transport = connected(CountingEchoFactory())
    transport.clear()
    feed(protocol, MESSAGE, chunking)
    assert transport.value() == MESSAGE
    assert not transport.disconnecting


# -- IdleTimeoutEcho --------------------------------------------------------------


def idle_connected(idle_timeout: float) -> tuple[IdleTimeoutEcho, StringTransport, Clock]:
    """An IdleTimeoutEcho on a StringTransport whose timeouts run on a fake clock."""
    clock = Clock()
    protocol = IdleTimeoutEchoFactory(idle_timeout).buildProtocol(ADDR)
    protocol.callLater = clock.callLater  # type: ignore[method-assign]
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def test_idle_timeout_echo_closes_a_silent_client() -> None:
    """A client that says nothing is closed once idle_timeout seconds pass, and not before."""
    _, transport, clock = idle_connected(10)
    clock.advance(9.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    assert transport.value() == b""


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_idle_timeout_echo_keeps_a_client_that_talks(chunking: int | str) -> None:
    """Each dataReceived restarts the idle clock, and the data is echoed, however it was chunked."""
    protocol, transport, clock = idle_connected(10)
    for piece in chunks(MESSAGE, chunking):
        clock.advance(6)
        protocol.dataReceived(piece)
    assert transport.value() == MESSAGE
    assert not transport.disconnecting
    clock.advance(10)
    assert transport.disconnecting


def test_idle_timeout_echo_cancels_its_timer_when_the_connection_ends() -> None:
    """A connection lost before the timeout leaves no delayed call behind."""
    protocol, _, clock = idle_connected(10)
    protocol.connectionLost(Failure(Exception("gone")))
    assert clock.getDelayedCalls() == []
