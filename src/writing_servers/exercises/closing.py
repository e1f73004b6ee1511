"""Checks for notebook 2's exercises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols.basic import FileSender
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from .. import lab
from ..clients import Client, ReadTimeout, connect
from . import CHECK_TIMEOUT, Report, checked_server, client_of
from ._solutions import solution_for
from .protocols import WRITE_FIRST, connection_events, listen_to_the_end, writes_after_close

__all__ = ["check_file_server", "check_polite_but_firm", "solution"]

#: Larger than the socket buffers of both ends together, so a peer that does not read blocks the server.
BIG = 8 * 1024 * 1024
#: Grace period for the client that reads: long enough for 8 MiB on a loaded machine.
READER_GRACE = 2.0
#: Grace period for the client that never reads; unlike READER_GRACE, so a hard-coded number shows.
SLEEPER_GRACE = 0.25
#: What FileSender's Deferred fails with when the connection ends before the file is sent.
STOPPED = "Consumer asked us to stop producing"


def _pattern(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    return (line * (size // len(line) + 1))[:size]


def _reactor() -> IReactorTime:
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


@dataclass
class _Record:
    """What one connection's protocol did, as the reactor saw it."""

    #: ``(callback, seconds ahead, call)`` for each reactor.callLater the protocol made.
    timers: list[tuple[str, float, IDelayedCall]] = field(default_factory=list)
    #: ``(method, the callback it was called in or None for a timer, reactor time)``.
    closes: list[tuple[str, str | None, float]] = field(default_factory=list)
    producers: list[object] = field(default_factory=list)
    #: Timers still pending once connectionLost had run (the check cancels them).
    pending: list[tuple[str, float, IDelayedCall]] = field(default_factory=list)

    def closed_with(self, method: str) -> list[tuple[str | None, float]]:
        return [(during, at) for name, during, at in self.closes if name == method]


class _Watched(ProtocolWrapper):
    """Relay everything to the student's protocol, noting its timers, closes and producers."""

    factory: _Watching

    def makeConnection(self, transport: Any) -> None:
        self.record = _Record()
        self.factory.records.append(self.record)
        self._during: str | None = None
        self._ours: set[IDelayedCall] = set()  # calls Twisted itself scheduled (an abort's connectionLost)
        self._transfers: list[Deferred[object]] = []
        self._watch("connectionMade", lambda: super(_Watched, self).makeConnection(transport))

    def _watch(self, callback: str, run: Any) -> None:
        reactor = _reactor()
        before = set(reactor.getDelayedCalls())
        self._during = callback
        try:
            run()
        finally:
            self._during = None
            now = reactor.seconds()
            for call in reactor.getDelayedCalls():
                if call not in before and call not in self._ours:
                    self.record.timers.append((callback, call.getTime() - now, call))

    def dataReceived(self, data: bytes) -> None:
        self._watch("dataReceived", lambda: super(_Watched, self).dataReceived(data))

    def loseConnection(self) -> None:
        self.record.closes.append(("loseConnection", self._during, _reactor().seconds()))
        super().loseConnection()

    def abortConnection(self) -> None:
        reactor = _reactor()
        self.record.closes.append(("abortConnection", self._during, reactor.seconds()))
        before = set(reactor.getDelayedCalls())
        self.transport.abortConnection()  # type: ignore[union-attr]
        self._ours |= set(reactor.getDelayedCalls()) - before

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self.record.producers.append(producer)
        if isinstance(producer, FileSender) and producer.deferred is not None:
            self._transfers.append(producer.deferred)
        super().registerProducer(producer, streaming)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self.record.pending = [timer for timer in self.record.timers if timer[2].active()]
            for _, _, call in self.record.pending:
                call.cancel()  # so the student's forgotten timer cannot fire after the check
            for transfer in self._transfers:
                transfer.addErrback(_unless_stopped)


def _unless_stopped(failure: Failure) -> Failure | None:
    """Let a FileSender's "stopped" failure pass silently: the check names the close that stopped it.

    Left alone, it would be logged as an unhandled error whenever the Deferred
    is collected, burying the cause under its consequence.
    """
    return None if str(failure.value) == STOPPED else failure


class _Watching(WrappingFactory):
    """Wrap the student's factory so that each connection's :class:`_Record` is kept, in order."""

    protocol = _Watched
    noisy = False

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self.records: list[_Record] = []

    def record(self, number: int) -> _Record:
        """Connection *number*'s record (from 1), read on the reactor thread; empty if it never started.

        (A protocol whose ``__init__`` raised never did; the check reports that error instead.)
        """

        def read() -> _Record:
            return self.records[number - 1] if len(self.records) >= number else _Record()

        return lab.call(read, what="the check's notes on the connection")


def _seconds(value: float) -> str:
    """``2``, ``0.3``, ``0``: seconds as a person writes them (a timer due now is never less than 0)."""
    return f"{max(value, 0.0):.2f}".rstrip("0").rstrip(".")


def _read_to_the_end(client: Client) -> bytes | None:
    """Everything until the server closes; None if it never does (judged later, from what the server did)."""
    try:
        return client.read_all()
    except ReadTimeout:  # its message would quote every byte received, megabytes here
        return None


def _judge_timer(report: Report, name: str, record: _Record, grace: float) -> bool:
    """One abort timer, scheduled in dataReceived, *grace* seconds ahead; a ✗ line otherwise."""
    at_once = [during for during, _ in record.closed_with("abortConnection") if during is not None]
    if at_once:
        report.wrong(
            f"{name} called abortConnection() in {at_once[0]}, at once, so even a client that reads "
            "lost the reply: close with loseConnection(), and schedule the abort with reactor.callLater"
        )
        return False
    if not record.closed_with("loseConnection"):
        report.wrong(f"{name} never called loseConnection() after the reply: close politely first")
        return False
    if not record.timers:
        report.wrong(
            f"{name} scheduled no abort: reactor.callLater(self.factory.grace_period, "
            "self.transport.abortConnection) after loseConnection()"
        )
        return False
    callback, ahead, _ = record.timers[0]
    if callback != "dataReceived":
        report.wrong(
            f"{name} scheduled its abort in {callback}, before any line arrived: start the grace period "
            "when you close, in dataReceived"
        )
        return False
    return report.expect(
        abs(ahead - grace) < 0.05,
        f"dataReceived scheduled the abort factory.grace_period ({grace:g} s) ahead",
        f"{name} scheduled its abort {_seconds(ahead)} s ahead, but this factory's grace_period is "
        f"{grace:g}: use self.factory.grace_period",
    )


def _served(protocol: type, **settings: object) -> _Watching:
    """``Factory.forProtocol(protocol)`` with *settings* as attributes, watched by the check."""
    factory = Factory.forProtocol(protocol)
    for attribute, value in settings.items():
        setattr(factory, attribute, value)
    return _Watching(factory)


def check_polite_but_firm(protocol: type) -> Report:
    """Exercise 1: close politely, abort after factory.grace_period, cancel the abort after a clean close."""
    report = Report("PoliteButFirm closes politely, and aborts if the client has not read it all in time")
    name = protocol.__name__
    factory = _served(protocol, reply=_pattern(BIG), grace_period=READER_GRACE)
    with checked_server(report, cast(Factory, factory)) as server:
        # 1. A client that reads at once gets everything, then a clean close.
        with connect(server, timeout=5.0, title="reader") as reader:
            reader.send_line("hello")
            received = _read_to_the_end(reader)
        server.wait_until_idle(timeout=CHECK_TIMEOUT)
        record = factory.record(1)
        if not _judge_timer(report, name, record, READER_GRACE):
            return report
        if received is None:
            report.wrong(
                f"a client that reads was still connected after {reader.timeout:g} s, with "
                f"{len(reader.transcript.received()):,} bytes received: the server never closed it"
            )
            return report
        late = writes_after_close(connection_events(server, 1))
        if late:
            report.wrong(f"{name} called {late[0]} after loseConnection(): {WRITE_FIRST}")
            return report
        if not report.expect(
            len(received) == BIG and reader.ended == "eof",
            f"a client that reads got all {BIG:,} bytes, then a clean close",
            f"a client that reads got {len(received):,} of {BIG:,} bytes, then {reader.ended} "
            "(expected everything, then eof)",
        ) or not report.expect(
            not record.pending,
            "after that clean close, connectionLost had cancelled the abort",
            f"after a clean close, the abort {name} scheduled was still pending: cancel it in "
            "connectionLost (if it is .active())",
        ):
            return report
        # 2. A client that never reads: the polite close must turn into an abort, after the grace period.
        factory.wrappedFactory.grace_period = SLEEPER_GRACE
        with client_of(server) as sleeper:
            sleeper.send_line("hello")
            server.wait_for_event("#2 loseConnection()", timeout=CHECK_TIMEOUT)
            try:
                server.wait_until_idle(timeout=SLEEPER_GRACE + 2.0)
            except lab.LabTimeout:
                report.wrong(_not_aborted(name, connection_events(server, 2)))
                return report
            sleeper.read_all()
        _judge_abort(report, name, factory.record(2))
        report.expect(
            sleeper.ended == "reset",
            "so that client saw a reset",
            f"that client saw {sleeper.ended!r}, not a reset",
        )
    return report


def _not_aborted(name: str, events: list[str]) -> str:
    if events.count("loseConnection()") > 1:
        return (
            f"{name}'s timer called loseConnection() again, which waits for the same unsent data: "
            "the timer must call abortConnection()"
        )
    return (
        f"with grace_period = {SLEEPER_GRACE:g}, a client that never reads was still connected "
        f"{SLEEPER_GRACE + 2.0:g} s later: nothing aborted the connection"
    )


def _judge_abort(report: Report, name: str, record: _Record) -> None:
    """The client that never reads: its timer, then an abort no sooner than the grace period."""
    if not _judge_timer(report, name, record, SLEEPER_GRACE):
        return
    closed, aborted = record.closed_with("loseConnection"), record.closed_with("abortConnection")
    if not aborted:
        report.wrong(f"{name} never called abortConnection() for a client that does not read")
        return
    waited = aborted[0][1] - closed[0][1]
    report.expect(
        waited >= SLEEPER_GRACE - 0.01,
        f"a client that never reads: loseConnection(), then abortConnection() {SLEEPER_GRACE:g} s later",
        f"a client that never reads was aborted {_seconds(waited)} s after loseConnection(), "
        f"before the grace period of {SLEEPER_GRACE:g} s",
    )


def check_file_server(protocol: type) -> Report:
    """Exercise 2: the data goes out through a FileSender, and loseConnection() then closes cleanly."""
    report = Report("FileServer sends factory.data with a producer, then closes")
    name = protocol.__name__
    size = 1024 * 1024
    data = _pattern(size)
    factory = _served(protocol, data=data)
    with checked_server(report, cast(Factory, factory)) as server:
        heard = listen_to_the_end(server)
        record = factory.record(1)
        senders = [producer for producer in record.producers if isinstance(producer, FileSender)]
        if not senders:
            report.wrong(
                f"{name} registered no FileSender (the data went out in "
                f"{_writes(server)} write(s)): send it with "
                "FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)"
            )
            return report
        report.ok(f"{name} sends with a FileSender")
        if record.closed_with("abortConnection"):
            report.wrong(
                f"{name} called abortConnection(), which drops what the FileSender has not sent yet: "
                "loseConnection() waits for it"
            )
            return report
        if heard.received is None:
            report.wrong(
                f"{name} never closed the connection (still open after {CHECK_TIMEOUT:g} s, "
                f"{heard.size:,} bytes received): call self.transport.loseConnection(); "
                "it waits for the FileSender to finish"
            )
            return report
        report.expect(
            heard.received == data,
            f"received all {size:,} bytes, in order",
            f"received {len(heard.received):,} bytes (expected {size:,}, in order)",
        )
        report.expect(
            heard.ended == "eof",
            "then the server closed the connection cleanly",
            f"then the connection ended with {heard.ended!r}, not a clean close",
        )
    return report


def _writes(server: lab.Server) -> int:
    return sum(1 for event in connection_events(server, 1) if event.startswith("write("))


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("closing")
