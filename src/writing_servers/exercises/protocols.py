"""Checks for notebook 1's exercises."""

from __future__ import annotations

import re
from dataclasses import dataclass

from twisted.internet.protocol import Factory

from .. import lab
from ..clients import Client, ConnectionEnded, ReadTimeout
from . import CHECK_TIMEOUT, Report, checked_server, client_of, reply_to, trouble
from ._solutions import solution_for

__all__ = [
    "Heard",
    "check_goodbye_qotd",
    "check_shouting_echo",
    "check_total_connections",
    "connection_events",
    "listen_to_the_end",
    "solution",
    "writes_after_close",
]

QUOTE = "An apple a day keeps the doctor away"
#: Why a write must come before loseConnection(), for a ✗ line.
WRITE_FIRST = (
    "write everything first, then close (Twisted does not promise to send a write made after "
    "loseConnection; over TLS it is dropped)"
)


def connection_events(server: lab.Server, number: int) -> list[str]:
    """Trace events of connection *number*, without the ``#n`` prefix."""
    prefix = f"#{number} "
    return [entry.removeprefix(prefix) for entry in server.trace.events() if entry.startswith(prefix)]


def writes_after_close(events: list[str]) -> list[str]:
    """The ``write(...)`` events that came after the connection's first ``loseConnection()``."""
    if "loseConnection()" not in events:
        return []
    return [event for event in events[events.index("loseConnection()") :] if event.startswith("write(")]


def _send(client: Client, data: bytes) -> None:
    """Send *data*; a connection the server has already dropped ends the conversation, as a read would."""
    try:
        client.send(data)
    except OSError as error:
        raise ConnectionEnded(f"the server dropped the connection before {data!r} could be sent") from error


def check_shouting_echo(protocol: type) -> Report:
    """Exercise 1: every line comes back upper-cased, even one whose ü arrives in two pieces."""
    report = Report("ShoutingEcho sends back what it receives, upper-cased")
    with checked_server(report, Factory.forProtocol(protocol)) as server, client_of(server) as client:
        try:
            reply = reply_to(client, "hello")
        except ReadTimeout:
            got = client.transcript.received()
            if not got or got.endswith(b"\n"):
                raise  # nothing came back at all: checked_server names the message that went unanswered
            report.wrong(f"sent 'hello', got {got!r} with no line ending: send back every byte, \\r\\n too")
            return report
        if not report.expect(
            reply == "HELLO",
            "'hello' came back as 'HELLO'",
            f"sent 'hello', got {reply!r} (expected 'HELLO')",
        ):
            return report
        closes = [event for event in connection_events(server, 1) if "Connection()" in event]
        if closes:
            report.wrong(
                f"{protocol.__name__} called {closes[0]} after its first reply: an echo answers every line, "
                "and leaves closing to the client"
            )
            return report
        # UTF-8 writes ü as two bytes; TCP may deliver them in two pieces, so the check does.
        word = "grüße\r\n".encode()
        cut = word.index("ü".encode()) + 1
        _send(client, word[:cut])
        server.wait_for_event(f"#1 dataReceived({word[:cut]!r})", timeout=1.0)
        _send(client, word[cut:])
        reply = client.read_line()
        report.expect(
            reply in ("GRüßE", "GRÜSSE"),
            f"'grüße', its ü split across two dataReceived calls, came back as {reply!r}",
            f"sent 'grüße' with its ü split across two dataReceived calls, got {reply!r} "
            "(expected 'GRüßE' from bytes.upper or 'GRÜSSE' from str.upper)",
        )
    return report


@dataclass
class Heard:
    """What a client that only listens heard: everything, then how the connection ended."""

    #: Everything received, or None if the server never closed the connection.
    received: bytes | None
    #: ``"eof"`` or ``"reset"``; None if the server never closed.
    ended: str | None
    #: Bytes received, whether or not the server closed.
    size: int


def listen_to_the_end(server: lab.Server) -> Heard:
    """Connect, send nothing, and read until the server closes (or CHECK_TIMEOUT passes)."""
    try:
        with client_of(server) as client:
            try:
                received = client.read_all()
            except ReadTimeout:
                return Heard(None, None, len(client.transcript.received()))
            return Heard(received, client.ended, len(received))
    except ConnectionEnded:  # aborted so fast that connecting already saw the reset
        return Heard(b"", "reset", 0)


def check_goodbye_qotd(protocol: type) -> Report:
    """Exercise 2: the quote, then "Goodbye!", then loseConnection(), with nothing written after it."""
    report = Report("GoodbyeQOTD sends a quote and 'Goodbye!', then closes")
    name = protocol.__name__
    with checked_server(report, Factory.forProtocol(protocol)) as server:
        heard = listen_to_the_end(server)
        events = connection_events(server, 1)
        if not any(event.startswith("write(") for event in events):
            report.wrong(
                f"{name} wrote nothing when the client connected: a QOTD server speaks first, "
                "in connectionMade"
            )
            return report
        if "abortConnection()" in events:
            report.wrong(
                f"{name} closed with abortConnection(), which throws away what is not sent yet: "
                "close with loseConnection(), which sends it first"
            )
            return report
        if heard.received is None or "loseConnection()" not in events:
            report.wrong(
                f"{name} never closed the connection (still open after {CHECK_TIMEOUT:g} s): "
                "call self.transport.loseConnection() after the two writes"
            )
            return report
        late = writes_after_close(events)
        if late:
            report.wrong(f"{name} called {late[0]} after loseConnection(): {WRITE_FIRST}")
            return report
        report.ok("both lines were written before loseConnection()")
        lines = heard.received.decode("utf-8", "replace").splitlines()
        if len(lines) == 1 and lines[0].endswith("Goodbye!") and lines[0] != "Goodbye!":
            report.wrong(
                f"the quote and 'Goodbye!' arrived as one line, {lines[0]!r}: end each line with \\r\\n"
            )
        else:
            report.expect(
                len(lines) == 2 and lines[0] not in ("", "Goodbye!") and lines[1] == "Goodbye!",
                "received two lines, the quote and then 'Goodbye!'",
                f"expected the quote and then 'Goodbye!', received {lines!r}",
            )
        report.expect(
            heard.ended == "eof",
            "then the server closed the connection cleanly",
            f"expected a clean close, the connection ended with: {heard.ended}",
        )
    return report


def _counts(factory: Factory) -> tuple[object, object]:
    """``(numProtocols, totalConnections)`` as the reactor thread sees them."""
    return lab.call(
        lambda: (getattr(factory, "numProtocols", None), getattr(factory, "totalConnections", None)),
        what="the factory's counts",
    )


def _numbers(greeting: str) -> list[int]:
    return [int(number) for number in re.findall(r"\d+", greeting)]


def check_total_connections(factory_class: type[Factory]) -> Report:
    """Exercise 3: the factory counts open and total connections, and each greeting shows both."""
    report = Report("the factory counts every connection since it started")
    try:
        factory = factory_class()
    except Exception as error:
        report.wrong(trouble(error, f"{factory_class.__name__}()", f"{factory_class.__name__}()"))
        return report
    with checked_server(report, factory) as server:
        clients: dict[str, Client] = {}
        try:
            # Who comes and goes: clients overlap, and one arrives after all have left.
            for step, who, (open_now, total) in [
                ("arrives", "A", (1, 1)),
                ("arrives", "B", (2, 2)),
                ("leaves", "A", (1, 2)),
                ("arrives", "C", (2, 3)),
                ("leaves", "B", (1, 3)),
                ("leaves", "C", (0, 3)),
                ("arrives", "D", (1, 4)),
            ]:
                if step == "arrives":
                    clients[who] = client_of(server)
                    greeting = clients[who].read_line()
                else:
                    clients.pop(who).close()
                    server.wait_for_open_connections(open_now, timeout=1.0)
                if not _counted(report, factory, f"client {who} {step}", open_now, total):
                    return report
                if step == "leaves":
                    report.ok(f"client {who} left: numProtocols {open_now}, totalConnections {total}")
                elif not report.expect(
                    _numbers(greeting) == [open_now, total],
                    f"client {who} arrived and was greeted with {greeting!r}",
                    f"client {who} ({open_now} open, {total} in all) was greeted with {greeting!r}: "
                    f"expected the numbers {open_now} and {total}, in that order",
                ):
                    return report
        finally:
            for client in clients.values():
                client.close()
    return report


def _counted(report: Report, factory: Factory, moment: str, open_now: int, total: int) -> bool:
    """Whether the factory's counts are right after *moment*; if not, a ✗ line names the slip."""
    numbers, totals = _counts(factory)
    if totals != total:
        if totals == 0 or totals is None:
            report.wrong(
                f"factory.totalConnections is {totals!r} after {moment} (expected {total}): "
                "count on self.factory, which every connection shares; each connection gets a new protocol"
            )
        elif moment.endswith("leaves") and totals == total - 1:
            report.wrong(
                f"totalConnections went down to {totals} when {moment.removesuffix(' leaves')} left: "
                "a total never goes down, so connectionLost takes one from numProtocols only"
            )
        else:
            report.wrong(f"factory.totalConnections is {totals!r} after {moment} (expected {total})")
        return False
    if numbers != open_now:
        report.wrong(
            f"factory.numProtocols is {numbers!r} after {moment} (expected {open_now}): your connectionMade "
            "replaces CountingEcho's, so it must add 1 to numProtocols too"
        )
        return False
    return True


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("protocols")
