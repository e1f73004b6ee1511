"""Notebook 2's checks reject the mistakes beginners make, and their first ✗ line names the cause.

Each wrong attempt is written as a student would write it; each check runs
for real, over loopback, as in the notebook.
"""

from __future__ import annotations

from io import BytesIO

import pytest
from support import first_wrong
from test_mistakes_protocols import line_of
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure

from writing_servers.exercises.closing import check_file_server, check_polite_but_firm
from writing_servers.solutions import closing as solutions

# -- exercise 1: PoliteButFirm --------------------------------------------


class CancelsInConnectionLost(Protocol):
    """The part most attempts share: a deadline, cancelled when the connection ends in time."""

    deadline: IDelayedCall

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.deadline.active():
            self.deadline.cancel()


class AbortsAtOnce(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.transport.abortConnection()


class NeverCloses(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(self.factory.reply)


class AbortsOnTheNextTick(CancelsInConnectionLost):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.deadline = reactor.callLater(0, self.transport.abortConnection)


class HardCodedGrace(CancelsInConnectionLost):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.deadline = reactor.callLater(0.3, self.transport.abortConnection)


class NeverCancels(Protocol):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        reactor.callLater(self.factory.grace_period, self.transport.abortConnection)


class CancelsWhatAlreadyFired(Protocol):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.deadline = reactor.callLater(self.factory.grace_period, self.transport.abortConnection)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.deadline.cancel()


class LosesAgain(CancelsInConnectionLost):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.deadline = reactor.callLater(self.factory.grace_period, self.transport.loseConnection)


class CallsTheAbortNow(CancelsInConnectionLost):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.deadline = reactor.callLater(self.factory.grace_period, self.transport.abortConnection())


class WritesAfterClosing(CancelsInConnectionLost):
    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        self.transport.loseConnection()
        self.transport.write(self.factory.reply)
        self.deadline = reactor.callLater(self.factory.grace_period, self.transport.abortConnection)


class StartsTheClockOnConnecting(CancelsInConnectionLost):
    def connectionMade(self) -> None:
        from twisted.internet import reactor

        self.deadline = reactor.callLater(self.factory.grace_period, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(self.factory.reply)
        self.transport.loseConnection()


AT_ONCE = (
    "called abortConnection() in dataReceived, at once, so even a client that reads lost the reply: "
    "close with loseConnection(), and schedule the abort with reactor.callLater"
)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (AbortsAtOnce, f"AbortsAtOnce {AT_ONCE}"),
        (CallsTheAbortNow, f"CallsTheAbortNow {AT_ONCE}"),
        (NeverCloses, "NeverCloses never called loseConnection() after the reply: close politely first"),
        (
            AbortsOnTheNextTick,
            "AbortsOnTheNextTick scheduled its abort 0 s ahead, but this factory's grace_period is 2: "
            "use self.factory.grace_period",
        ),
        (
            HardCodedGrace,
            "HardCodedGrace scheduled its abort 0.3 s ahead, but this factory's grace_period is 2: "
            "use self.factory.grace_period",
        ),
        (
            NeverCancels,
            "after a clean close, the abort NeverCancels scheduled was still pending: cancel it in "
            "connectionLost (if it is .active())",
        ),
        (
            CancelsWhatAlreadyFired,
            f"CancelsWhatAlreadyFired.connectionLost, line {line_of(CancelsWhatAlreadyFired.connectionLost, 'cancel')}"
            ": AlreadyCalled: Tried to cancel an already-called event.",
        ),
        (
            LosesAgain,
            "LosesAgain's timer called loseConnection() again, which waits for the same unsent data: "
            "the timer must call abortConnection()",
        ),
        (
            WritesAfterClosing,
            "WritesAfterClosing called write(b'0123456789abcdefghijklmn'… (8,388,608 bytes)) after "
            "loseConnection(): write everything first, then close (Twisted does not promise to send a write "
            "made after loseConnection; over TLS it is dropped)",
        ),
        (
            StartsTheClockOnConnecting,
            "StartsTheClockOnConnecting scheduled its abort in connectionMade, before any line arrived: "
            "start the grace period when you close, in dataReceived",
        ),
    ],
)
def test_polite_but_firm_mistake_is_named(attempt: type, expected: str) -> None:
    """Each wrong PoliteButFirm fails, and its first ✗ line says what is wrong."""
    assert first_wrong(check_polite_but_firm(attempt)) == expected


# -- exercise 2: FileServer -----------------------------------------------


class WritesItAll(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.factory.data)
        self.transport.loseConnection()


class WritesInChunks(Protocol):
    def connectionMade(self) -> None:
        for start in range(0, len(self.factory.data), 16384):
            self.transport.write(self.factory.data[start : start + 16384])
        self.transport.loseConnection()


class AbortsTheSender(Protocol):
    def connectionMade(self) -> None:
        FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)
        self.transport.abortConnection()


class SendsButNeverCloses(Protocol):
    def connectionMade(self) -> None:
        FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)


class SendsBytesNotAFile(Protocol):
    def connectionMade(self) -> None:
        FileSender().beginFileTransfer(self.factory.data, self.transport)
        self.transport.loseConnection()


class SendsTwice(Protocol):
    def connectionMade(self) -> None:
        FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)
        self.transport.write(self.factory.data)
        self.transport.loseConnection()


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            WritesItAll,
            "WritesItAll registered no FileSender (the data went out in 1 write(s)): send it with "
            "FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)",
        ),
        (
            WritesInChunks,
            "WritesInChunks registered no FileSender (the data went out in 64 write(s)): send it with "
            "FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)",
        ),
        (
            AbortsTheSender,
            "AbortsTheSender called abortConnection(), which drops what the FileSender has not sent yet: "
            "loseConnection() waits for it",
        ),
        (
            SendsButNeverCloses,
            "SendsButNeverCloses never closed the connection (still open after 1 s, 1,048,576 bytes received): "
            "call self.transport.loseConnection(); it waits for the FileSender to finish",
        ),
        (
            SendsBytesNotAFile,
            f"SendsBytesNotAFile.connectionMade, line {line_of(SendsBytesNotAFile.connectionMade, 'Sender')}: "
            "AttributeError: 'bytes' object has no attribute 'read'",
        ),
        (SendsTwice, "received 2,097,152 bytes (expected 1,048,576, in order)"),
    ],
)
def test_file_server_mistake_is_named(attempt: type, expected: str) -> None:
    """Each wrong FileServer fails, and its first ✗ line says what is wrong."""
    assert first_wrong(check_file_server(attempt)) == expected


class ClosesInTheCallback(Protocol):
    def connectionMade(self) -> None:
        sent = FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)
        sent.addCallback(lambda _: self.transport.loseConnection())


@pytest.mark.parametrize(
    ("check", "solution"),
    [
        (check_polite_but_firm, solutions.PoliteButFirm),
        (check_file_server, solutions.FileServer),
        (check_file_server, ClosesInTheCallback),  # the hint's other way, which works too
    ],
)
def test_right_answers_pass(check: object, solution: type) -> None:
    """Beside the wrong attempts, the reference solutions (and the hint's alternative) pass every line."""
    report = check(solution)  # type: ignore[operator]
    assert report.passed, repr(report)
