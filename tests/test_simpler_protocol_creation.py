"""The configurable QOTD, forProtocol, the simple counting echo and the limited factory.

Unit tests drive protocols through StringTransport (no reactor, no socket);
the loopback tests serve them on the lab's background reactor.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import ADDR, CHUNKINGS, connected, feed
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from writing_servers import lab
from writing_servers.clients import connect
from writing_servers.protocols import CountingEchoFactory
from writing_servers.simpler_protocol_creation import (
    DEFAULT_QUOTE,
    ConfigurableQOTD,
    ConfigurableQOTDFactory,
    LimitedCountingEchoFactory,
    SimpleCountingEcho,
    SimpleCountingEchoFactory,
)

MESSAGE = b"hello, world\r\nsecond line\n\x00\xff\xfe caf\xc3\xa9 \xe2\x98\x83\r\n"
GERMAN = "Übung macht den Meister."
ELSEWHERE = IPv4Address("TCP", "203.0.113.7", 40000)


def welcome(count: int) -> bytes:
    return b"Welcome! There are currently %d open connections.\r\n" % count


def lose(protocol: Protocol) -> None:
    protocol.connectionLost(Failure(ConnectionError("gone")))


# -- ConfigurableQOTD through StringTransport --------------------------------------


def test_default_quote_is_the_howtos() -> None:
    """With no quote given, the factory serves the howto's apple quote, with a CRLF, and closes."""
    _, transport = connected(ConfigurableQOTDFactory())
    assert transport.value() == b"An apple a day keeps the doctor away\r\n"
    assert DEFAULT_QUOTE == "An apple a day keeps the doctor away"
    assert transport.disconnecting


def test_quote_comes_from_the_factory() -> None:
    """The protocol writes whatever quote its factory holds."""
    _, transport = connected(ConfigurableQOTDFactory("Carpe diem."))
    assert transport.value() == b"Carpe diem.\r\n"
    assert transport.disconnecting


def test_non_ascii_quote_is_sent_as_utf8() -> None:
    """A quote with non-ASCII letters goes on the wire as UTF-8 bytes."""
    _, transport = connected(ConfigurableQOTDFactory(GERMAN))
    assert transport.value() == b"\xc3\x9cbung macht den Meister.\r\n"
    assert transport.value().decode("utf-8") == GERMAN + "\r\n"


def test_quote_stays_text_on_the_factory() -> None:
    """The factory keeps the quote as str: encoding happens only when writing."""
    factory = ConfigurableQOTDFactory(GERMAN)
    connected(factory)
    assert factory.quote == GERMAN
    assert isinstance(factory.quote, str)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_configurable_qotd_ignores_input(chunking: int | str) -> None:
    """Whatever a client sends, the protocol writes its one quote and nothing more."""
    protocol, transport = connected(ConfigurableQOTDFactory("Carpe diem."))
    feed(protocol, MESSAGE, chunking)
    assert transport.value() == b"Carpe diem.\r\n"


def test_changing_the_factory_changes_the_next_quote() -> None:
    """The factory is live configuration: a new quote reaches the next connection, not earlier ones."""
    factory = ConfigurableQOTDFactory("first")
    _, before = connected(factory)
    factory.quote = "second"
    _, after = connected(factory)
    assert (before.value(), after.value()) == (b"first\r\n", b"second\r\n")


def test_two_factories_keep_their_own_quotes() -> None:
    """The quote lives on each factory instance, not on the class."""
    apple, german = ConfigurableQOTDFactory(), ConfigurableQOTDFactory(GERMAN)
    assert connected(german)[1].value() == GERMAN.encode() + b"\r\n"
    assert connected(apple)[1].value() == DEFAULT_QUOTE.encode() + b"\r\n"


def test_howto_listing_fails_on_python_3() -> None:
    """The howto's listing (str quote + '\\r\\n' written to the transport) raises TypeError today."""

    class QOTDAsWritten(Protocol):
        def connectionMade(self) -> None:
            self.transport.write(self.factory.quote + "\r\n")  # type: ignore[union-attr, attr-defined]

    class QOTDFactoryAsWritten(Factory[QOTDAsWritten]):
        protocol = QOTDAsWritten

        def __init__(self, quote: str | None = None) -> None:
            self.quote = quote or "An apple a day keeps the doctor away"

    protocol = QOTDFactoryAsWritten("configurable quote").buildProtocol(ADDR)
    assert protocol is not None
    with pytest.raises(TypeError):
        protocol.makeConnection(StringTransport())


# -- What the default buildProtocol does ----------------------------------------------


def test_build_protocol_sets_the_factory() -> None:
    """buildProtocol returns a new instance of factory.protocol whose .factory is that factory."""
    factory = ConfigurableQOTDFactory()
    protocol = factory.buildProtocol(ADDR)
    assert type(protocol) is ConfigurableQOTD
    assert protocol.factory is factory


def test_build_protocol_makes_a_new_protocol_each_time() -> None:
    """Two calls give two distinct protocols sharing one factory."""
    factory = ConfigurableQOTDFactory()
    first, second = factory.buildProtocol(ADDR), factory.buildProtocol(ELSEWHERE)
    assert first is not second
    assert first is not None and second is not None
    assert first.factory is second.factory is factory


def test_a_protocol_made_by_hand_has_no_factory() -> None:
    """Protocol.factory is None until buildProtocol sets it, so __init__ could never use it."""
    assert ConfigurableQOTD().factory is None


# -- forProtocol ----------------------------------------------------------------------


def test_for_protocol_passes_arguments_to_the_factory() -> None:
    """Subclass.forProtocol(P, *args, **kwargs) builds the subclass with those arguments, then sets protocol."""
    positional = ConfigurableQOTDFactory.forProtocol(ConfigurableQOTD, "Carpe diem.")
    keyword = ConfigurableQOTDFactory.forProtocol(ConfigurableQOTD, quote=GERMAN)
    assert type(positional) is ConfigurableQOTDFactory and type(keyword) is ConfigurableQOTDFactory
    assert (positional.quote, keyword.quote) == ("Carpe diem.", GERMAN)  # type: ignore[attr-defined]
    assert connected(positional)[1].value() == b"Carpe diem.\r\n"


def test_for_protocol_sets_protocol_on_the_instance() -> None:
    """forProtocol stores the protocol on the new factory only; the class attribute is untouched."""

    class OtherQOTD(ConfigurableQOTD):
        pass

    factory = ConfigurableQOTDFactory.forProtocol(OtherQOTD, "x")
    assert vars(factory)["protocol"] is OtherQOTD
    assert ConfigurableQOTDFactory.protocol is ConfigurableQOTD
    assert type(factory.buildProtocol(ADDR)) is OtherQOTD


def test_plain_factory_for_protocol_has_no_quote() -> None:
    """Factory.forProtocol(ConfigurableQOTD) builds protocols fine but they fail on connect: no quote."""
    protocol = Factory.forProtocol(ConfigurableQOTD).buildProtocol(ADDR)
    assert protocol is not None
    with pytest.raises(AttributeError, match="quote"):
        protocol.makeConnection(StringTransport())


# -- SimpleCountingEcho ------------------------------------------------------------------


def test_simple_counting_echo_counts_one_two_three() -> None:
    """Three protocols from one factory greet with 1, 2 and 3 open connections, and stay open."""
    factory = SimpleCountingEchoFactory()
    built = [connected(factory) for _ in range(3)]
    assert [transport.value() for _, transport in built] == [welcome(1), welcome(2), welcome(3)]
    assert all(type(protocol) is SimpleCountingEcho for protocol, _ in built)
    assert all(protocol.factory is factory for protocol, _ in built)
    assert not any(transport.disconnecting for _, transport in built)
    assert factory.numProtocols == 3


def test_simple_counting_echo_lost_connections_count_back() -> None:
    """Each lost connection takes one off the count; the next greeting shows it."""
    factory = SimpleCountingEchoFactory()
    protocols = [connected(factory)[0] for _ in range(3)]
    lose(protocols[0])
    lose(protocols[1])
    assert factory.numProtocols == 1
    _, transport = connected(factory)
    assert transport.value() == welcome(2)
    lose(protocols[2])
    assert factory.numProtocols == 1


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_simple_counting_echo_echoes(chunking: int | str) -> None:
    """After its greeting the simple counting echo writes back exactly what arrives, however chunked."""
    protocol, transport = connected(SimpleCountingEchoFactory())
    transport.clear()
    feed(protocol, MESSAGE, chunking)
    assert transport.value() == MESSAGE


def _run_scenario(factory: Factory[Any]) -> tuple[list[bytes], list[int]]:
    """Connect three, echo on each, lose two, connect one more: what was written and the counts seen."""
    counts = []
    built = [connected(factory) for _ in range(3)]
    counts.append(factory.numProtocols)  # type: ignore[attr-defined]
    for protocol, _ in built:
        protocol.dataReceived(b"ping\r\n")
    lose(built[0][0])
    lose(built[2][0])
    counts.append(factory.numProtocols)  # type: ignore[attr-defined]
    built.append(connected(factory))
    counts.append(factory.numProtocols)  # type: ignore[attr-defined]
    return [transport.value() for _, transport in built], counts


def test_simple_counting_echo_behaves_like_notebook_1s() -> None:
    """The same connections and losses give the same bytes and counts as notebook 1's CountingEcho."""
    assert _run_scenario(SimpleCountingEchoFactory()) == _run_scenario(CountingEchoFactory())
    assert _run_scenario(SimpleCountingEchoFactory())[1] == [3, 1, 2]


# -- LimitedCountingEchoFactory ------------------------------------------------------------


def test_limited_factory_refuses_past_the_limit() -> None:
    """With `limit` connections open, buildProtocol returns None; below it, a wired-up protocol."""
    factory = LimitedCountingEchoFactory(2)
    first, _ = connected(factory)
    connected(factory)
    assert factory.buildProtocol(ADDR) is None
    assert factory.numProtocols == 2
    lose(first)
    protocol = factory.buildProtocol(ADDR)
    assert type(protocol) is SimpleCountingEcho
    assert protocol.factory is factory


def test_limited_factory_counts_only_accepted_connections() -> None:
    """A refused connection never reaches the count: the third greeting after a loss says 2."""
    factory = LimitedCountingEchoFactory(2)
    first, _ = connected(factory)
    connected(factory)
    for _ in range(3):
        assert factory.buildProtocol(ADDR) is None
    lose(first)
    _, transport = connected(factory)
    assert transport.value() == welcome(2)


def test_limit_zero_refuses_everyone() -> None:
    """limit=0 turns every client away."""
    assert LimitedCountingEchoFactory(0).buildProtocol(ADDR) is None


# -- Loopback, through lab -------------------------------------------------------------------


def test_two_quote_servers_at_once() -> None:
    """Two servers with different quotes, listening at the same time, each serve their own quote."""
    apple = lab.listen(ConfigurableQOTDFactory(), name="apple")
    german = lab.listen(ConfigurableQOTDFactory(GERMAN), name="german")
    with connect(german, timeout=5) as first, connect(apple, timeout=5) as second:
        assert first.read_all() == GERMAN.encode("utf-8") + b"\r\n"
        assert second.read_all() == DEFAULT_QUOTE.encode("utf-8") + b"\r\n"
        assert (first.ended, second.ended) == ("eof", "eof")
    assert lab.errors().take_new() == []


def test_changed_quote_reaches_the_next_client() -> None:
    """A quote changed on the reactor thread is what the next loopback client reads."""
    factory = ConfigurableQOTDFactory()
    server = lab.listen(factory)
    lab.call(setattr, factory, "quote", "A stitch in time saves nine.")
    with connect(server, timeout=5) as client:
        assert client.read_all() == b"A stitch in time saves nine.\r\n"


def test_simple_counting_echo_over_loopback() -> None:
    """Live: greetings count 1, 2, 3; after two leave the factory counts 1 and echo still works."""
    factory = SimpleCountingEchoFactory()
    server = lab.listen(factory)
    clients = []
    for number in (1, 2, 3):
        client = connect(server, timeout=5)
        assert client.read_line() == welcome(number).decode().removesuffix("\r\n")
        clients.append(client)
    clients[0].close()
    clients[1].close()
    server.wait_for_open_connections(1)
    assert factory.numProtocols == 1
    clients[2].send_line("still here?")
    assert clients[2].read_line() == "still here?"
    clients[2].close()
    server.wait_until_idle()
    assert factory.numProtocols == 0


def test_limited_factory_refuses_over_loopback() -> None:
    """Live: with two connections open the third is closed at once with nothing sent; after one leaves, it's 2 again."""
    factory = LimitedCountingEchoFactory(2)
    server = lab.listen(factory)
    first, second = connect(server, timeout=5), connect(server, timeout=5)
    first.read_line()
    second.read_line()
    with connect(server, timeout=5) as third:
        assert third.read_all() == b""
        assert third.ended == "eof"
    assert any("refused" in event for event in server.trace.events())
    first.close()
    server.wait_for_open_connections(1)
    with connect(server, timeout=5) as fourth:
        assert fourth.read_line() == welcome(2).decode().removesuffix("\r\n")
    second.close()
    server.wait_until_idle()
    assert factory.numProtocols == 0
