"""Notebook 1's checks reject the mistakes beginners make, and their first ✗ line names the cause.

Each wrong attempt is written as a student would write it; each check runs
for real, over loopback, as in the notebook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from support import first_wrong
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from writing_servers.exercises.protocols import (
    check_goodbye_qotd,
    check_shouting_echo,
    check_total_connections,
)
from writing_servers.protocols import CountingEcho, CountingEchoFactory
from writing_servers.solutions import protocols as solutions

QUOTE = b"An apple a day keeps the doctor away\r\n"


def line_of(method: Callable[..., object], code: str) -> int:
    """The line number, in its file, of the first line of *method* that contains *code*."""
    lines, start = inspect.getsourcelines(method)
    return start + next(index for index, line in enumerate(lines) if code in line)


# -- exercise 1: ShoutingEcho ---------------------------------------------


class WritesText(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.decode().upper())


class DecodesEachChunk(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.decode().upper().encode())


class DecodesWithReplace(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.decode("utf-8", "replace").upper().encode())


class ForgetsToShout(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Capitalises(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.capitalize())


class StripsTheLineEnding(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.strip().upper())


class HangsUpAfterOneReply(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.upper())
        self.transport.loseConnection()


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            WritesText,
            f"WritesText.dataReceived, line {line_of(WritesText.dataReceived, 'write')}: TypeError"
            ': Data must be bytes — write b"..." or text.encode()',
        ),
        (ForgetsToShout, "sent 'hello', got 'hello' (expected 'HELLO')"),
        (Capitalises, "sent 'hello', got 'Hello' (expected 'HELLO')"),
        (
            StripsTheLineEnding,
            "sent 'hello', got b'HELLO' with no line ending: send back every byte, \\r\\n too",
        ),
        (
            HangsUpAfterOneReply,
            "HangsUpAfterOneReply called loseConnection() after its first reply: an echo answers every line, "
            "and leaves closing to the client",
        ),
        (
            DecodesWithReplace,
            "sent 'grüße' with its ü split across two dataReceived calls, got 'GR\ufffd\ufffdSSE' "
            "(expected 'GRüßE' from bytes.upper or 'GRÜSSE' from str.upper)",
        ),
    ],
)
def test_shouting_echo_mistake_is_named(attempt: type, expected: str) -> None:
    """Each wrong ShoutingEcho fails, and its first ✗ line says what is wrong."""
    assert first_wrong(check_shouting_echo(attempt)) == expected


def test_decoding_each_chunk_fails_on_a_split_character() -> None:
    """Decoding each chunk breaks on a ü split across two dataReceived calls; the line names the student's."""
    wrong = first_wrong(check_shouting_echo(DecodesEachChunk))
    assert wrong.startswith(
        f"DecodesEachChunk.dataReceived, line {line_of(DecodesEachChunk.dataReceived, 'decode')}: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 "
        "in position 2: unexpected end of data"
    )


# -- exercise 2: GoodbyeQOTD ----------------------------------------------


class WritesAfterClosing(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(QUOTE)
        self.transport.loseConnection()
        self.transport.write(b"Goodbye!\r\n")


class Aborts(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(QUOTE)
        self.transport.write(b"Goodbye!\r\n")
        self.transport.abortConnection()


class NeverCloses(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(QUOTE)
        self.transport.write(b"Goodbye!\r\n")


class NoLineEnding(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(QUOTE.rstrip())
        self.transport.write(b"Goodbye!\r\n")
        self.transport.loseConnection()


class QuoteAsText(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(QUOTE.decode())
        self.transport.write(b"Goodbye!\r\n")
        self.transport.loseConnection()


class WaitsForTheClient(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(QUOTE + b"Goodbye!\r\n")
        self.transport.loseConnection()


class GoodbyeFirst(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"Goodbye!\r\n")
        self.transport.write(QUOTE)
        self.transport.loseConnection()


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            WritesAfterClosing,
            "WritesAfterClosing called write(b'Goodbye!\\r\\n') after loseConnection(): write everything first, "
            "then close (Twisted does not promise to send a write made after loseConnection; over TLS it is dropped)",
        ),
        (
            Aborts,
            "Aborts closed with abortConnection(), which throws away what is not sent yet: close with "
            "loseConnection(), which sends it first",
        ),
        (
            NeverCloses,
            "NeverCloses never closed the connection (still open after 1 s): call self.transport.loseConnection() "
            "after the two writes",
        ),
        (
            NoLineEnding,
            "the quote and 'Goodbye!' arrived as one line, 'An apple a day keeps the doctor awayGoodbye!': "
            "end each line with \\r\\n",
        ),
        (
            QuoteAsText,
            f"QuoteAsText.connectionMade, line {line_of(QuoteAsText.connectionMade, 'decode')}: TypeError: "
            'Data must be bytes — write b"..." or text.encode()',
        ),
        (
            WaitsForTheClient,
            "WaitsForTheClient wrote nothing when the client connected: a QOTD server speaks first, in connectionMade",
        ),
        (
            GoodbyeFirst,
            "expected the quote and then 'Goodbye!', received ['Goodbye!', 'An apple a day keeps the doctor away']",
        ),
    ],
)
def test_goodbye_qotd_mistake_is_named(attempt: type, expected: str) -> None:
    """Each wrong GoodbyeQOTD fails, and its first ✗ line says what is wrong."""
    assert first_wrong(check_goodbye_qotd(attempt)) == expected


# -- exercise 3: TotalCountingEcho ----------------------------------------


def greeting(open_now: int, total: int) -> bytes:
    return b"Welcome! There are currently %d open connections; %d since the server started.\r\n" % (
        open_now,
        total,
    )


class HardCodedGreeting(CountingEcho):
    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.factory.totalConnections = self.factory.totalConnections + 1
        self.transport.write(greeting(1, 2))


class TotalOnTheProtocol(CountingEcho):
    total = 0

    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        TotalOnTheProtocol.total += 1
        self.transport.write(greeting(self.factory.numProtocols, self.total))


class TotalGoesDown(CountingEcho):
    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.factory.totalConnections = self.factory.totalConnections + 1
        self.transport.write(greeting(self.factory.numProtocols, self.factory.totalConnections))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.numProtocols = self.factory.numProtocols - 1
        self.factory.totalConnections = self.factory.totalConnections - 1


class CountsOnlyTheTotal(CountingEcho):
    def connectionMade(self) -> None:
        self.factory.totalConnections = self.factory.totalConnections + 1
        self.transport.write(greeting(self.factory.numProtocols, self.factory.totalConnections))


class GreetsBeforeCounting(CountingEcho):
    def connectionMade(self) -> None:
        self.transport.write(greeting(self.factory.numProtocols, self.factory.totalConnections))
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.factory.totalConnections = self.factory.totalConnections + 1


class TotalFirst(CountingEcho):
    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.factory.totalConnections = self.factory.totalConnections + 1
        self.transport.write(
            b"%d since the start, %d open\r\n" % (self.factory.totalConnections, self.factory.numProtocols)
        )


def factory_for(protocol: type[CountingEcho]) -> type[CountingEchoFactory]:
    """The exercise's factory, as the starter gives it, building *protocol*."""

    class TotalCountingEchoFactory(CountingEchoFactory):
        def __init__(self) -> None:
            super().__init__()
            self.totalConnections = 0

        def buildProtocol(self, addr: IAddress) -> CountingEcho:
            return protocol(self)

    return TotalCountingEchoFactory


class ForgetsSuper(CountingEchoFactory):
    def __init__(self) -> None:
        self.totalConnections = 0

    def buildProtocol(self, addr: IAddress) -> CountingEcho:
        return TotalGoesDown(self)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            factory_for(HardCodedGreeting),
            "client A (1 open, 1 in all) was greeted with 'Welcome! There are currently 1 open connections; 2 since "
            "the server started.': expected the numbers 1 and 1, in that order",
        ),
        (
            factory_for(TotalOnTheProtocol),
            "factory.totalConnections is 0 after client A arrives (expected 1): count on self.factory, which every "
            "connection shares; each connection gets a new protocol",
        ),
        (
            factory_for(TotalGoesDown),
            "totalConnections went down to 1 when client A left: a total never goes down, so connectionLost takes "
            "one from numProtocols only",
        ),
        (
            factory_for(CountsOnlyTheTotal),
            "factory.numProtocols is 0 after client A arrives (expected 1): your connectionMade replaces "
            "CountingEcho's, so it must add 1 to numProtocols too",
        ),
        (
            factory_for(GreetsBeforeCounting),
            "client A (1 open, 1 in all) was greeted with 'Welcome! There are currently 0 open connections; 0 since "
            "the server started.': expected the numbers 1 and 1, in that order",
        ),
        (
            factory_for(TotalFirst),
            "client C (2 open, 3 in all) was greeted with '3 since the start, 2 open': expected the numbers 2 and 3, "
            "in that order",
        ),
        (
            ForgetsSuper,
            f"TotalGoesDown.connectionMade, line {line_of(TotalGoesDown.connectionMade, 'numProtocols')}: AttributeError: 'ForgetsSuper' object has no attribute "
            "'numProtocols'",
        ),
    ],
)
def test_total_connections_mistake_is_named(attempt: type[Factory], expected: str) -> None:
    """Each wrong counting factory fails, and its first ✗ line says what is wrong."""
    assert first_wrong(check_total_connections(attempt)) == expected


@pytest.mark.parametrize(
    ("check", "solution"),
    [
        (check_shouting_echo, solutions.ShoutingEcho),
        (check_goodbye_qotd, solutions.GoodbyeQOTD),
        (check_total_connections, solutions.TotalCountingEchoFactory),
    ],
)
def test_reference_solution_passes(check: object, solution: type) -> None:
    """Beside the wrong attempts, the reference solution passes every line."""
    report = check(solution)  # type: ignore[operator]
    assert report.passed, repr(report)
