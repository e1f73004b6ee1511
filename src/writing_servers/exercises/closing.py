"""Checks for notebook 2's exercises, and a wait the notebook shares with them."""

from __future__ import annotations

from twisted.internet.protocol import Factory

from .. import lab
from ..clients import Client, ReadTimeout, connect
from . import CHECK_TIMEOUT, Report, checked_server, client_of
from ._solutions import solution_for

__all__ = ["check_file_server", "check_polite_but_firm", "solution"]

#: Larger than the socket buffers of both ends together, so a peer that does not read blocks the server.
BIG = 8 * 1024 * 1024
#: Grace period the checks give PoliteButFirm before it must abort.
GRACE = 0.3


def _pattern(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    return (line * (size // len(line) + 1))[:size]


def _read_to_the_end(report: Report, client: Client, who: str) -> bytes | None:
    """Everything until the server closes; None (and a ✗ line) if it never does.

    The client's own timeout message would quote every byte received, megabytes here.
    """
    try:
        return client.read_all()
    except ReadTimeout:
        got = len(client.transcript.received())
        report.wrong(
            f"{who}: the connection was still open after {client.timeout:g} s, with {got:,} bytes "
            "received: the server never closed it"
        )
        return None


def _connection_events(server: lab.Server, number: int) -> list[str]:
    """Trace events of connection *number*, without the ``#n`` prefix."""
    prefix = f"#{number} "
    return [entry.removeprefix(prefix) for entry in server.trace.events() if entry.startswith(prefix)]


def check_polite_but_firm(protocol: type) -> Report:
    """Exercise 1: close politely, abort after factory.grace_period, cancel the abort after a clean close."""
    report = Report("PoliteButFirm closes politely, and aborts if the client has not read it all in time")
    factory = Factory.forProtocol(protocol)
    factory.reply = _pattern(BIG)  # type: ignore[attr-defined]
    factory.grace_period = GRACE  # type: ignore[attr-defined]
    with checked_server(report, factory) as server:
        # 1. A client that reads at once gets everything, then a clean close.
        with connect(server, timeout=5.0, title="reader") as reader:
            reader.send_line("hello")
            received = _read_to_the_end(report, reader, "a client that reads")
        if received is None:
            return report
        good = report.expect(
            len(received) == BIG and reader.ended == "eof",
            f"a client that reads got all {BIG:,} bytes, then a clean close",
            f"a client that reads got {len(received):,} of {BIG:,} bytes, then {reader.ended} "
            "(expected everything, then eof)",
        )
        server.wait_until_idle()
        if not good:
            return report
        # 2. A client that never reads: the polite close must turn into an abort.
        with client_of(server) as sleeper:
            sleeper.send_line("hello")
            try:
                server.wait_for_event("loseConnection()", timeout=CHECK_TIMEOUT)
            except lab.LabTimeout:
                report.wrong("the server never called loseConnection() for a client that does not read")
                return report
            try:
                server.wait_until_idle(timeout=GRACE + 2.0)
            except lab.LabTimeout:
                report.wrong(
                    f"with grace_period = {GRACE}, a client that never reads was still connected "
                    f"{GRACE + 2.0:g} s later: nothing aborted the connection"
                )
                return report
            sleeper.read_all()
        events = _connection_events(server, 2)
        aborted = "abortConnection()" in events
        report.expect(
            aborted and events.index("loseConnection()") < events.index("abortConnection()"),
            "a client that never reads: loseConnection() first, abortConnection() after the grace period",
            f"a client that never reads: expected loseConnection() then abortConnection(); the server did {events}",
        )
        report.expect(
            sleeper.ended == "reset",
            "so that client saw a reset",
            f"that client saw {sleeper.ended!r}, not a reset",
        )
        # Connection 1's timer, had it not been cancelled, was due before connection 2's, so it has fired by now.
        late = [event for event in _connection_events(server, 1) if event == "abortConnection()"]
        report.expect(
            not late,
            "after a clean close, no abort was left waiting to fire",
            "the abort scheduled for the first client fired after it had closed cleanly: "
            "cancel the delayed call in connectionLost",
        )
    return report


def check_file_server(protocol: type) -> Report:
    """Exercise 2: the data goes out through FileSender, and the connection then closes cleanly."""
    report = Report("FileServer sends factory.data with a producer, then closes")
    size = 1024 * 1024
    factory = Factory.forProtocol(protocol)
    factory.data = _pattern(size)  # type: ignore[attr-defined]
    with checked_server(report, factory) as server, client_of(server) as client:
        received = _read_to_the_end(report, client, "the client")
        if received is None:
            return report
        report.expect(
            received == factory.data,  # type: ignore[attr-defined]
            f"received all {size:,} bytes, in order",
            f"received {len(received):,} bytes (expected {size:,}, in order)",
        )
        report.expect(
            client.ended == "eof",
            "then the server closed the connection cleanly",
            f"then the connection ended with {client.ended!r}, not a clean close",
        )
        server.wait_until_idle()
        writes = sum(1 for event in _connection_events(server, 1) if event.startswith("write("))
        report.expect(
            writes > 1,
            f"the data went out in {writes} pieces, each when the connection asked for more",
            f"the data went out in {writes} write(s): let a FileSender produce it, chunk by chunk",
        )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("closing")
