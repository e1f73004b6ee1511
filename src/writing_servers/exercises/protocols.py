"""Checks for notebook 1's exercises."""

from __future__ import annotations

from twisted.internet.protocol import Factory

from . import Report, checked_server, client_of, reply_to
from ._solutions import solution_for

QUOTE = "An apple a day keeps the doctor away"


def check_shouting_echo(protocol: type) -> Report:
    """Exercise 1: every line comes back upper-cased."""
    report = Report("ShoutingEcho sends back what it receives, upper-cased")
    with checked_server(report, Factory.forProtocol(protocol)) as server, client_of(server) as client:
        reply = reply_to(client, "hello")
        report.expect(reply == "HELLO", "'hello' came back as 'HELLO'", f"sent 'hello', got {reply!r}")
        reply = reply_to(client, "grüße")
        report.expect(
            reply in ("GRüßE", "GRÜSSE"),
            f"'grüße' came back as {reply!r}",
            f"sent 'grüße', expected 'GRüßE' (bytes.upper) or 'GRÜSSE' (str.upper), got {reply!r}",
        )
    return report


def check_goodbye_qotd(protocol: type) -> Report:
    """Exercise 2: the quote, then "Goodbye!", then the server closes."""
    report = Report("GoodbyeQOTD sends a quote and 'Goodbye!', then closes")
    with checked_server(report, Factory.forProtocol(protocol)) as server, client_of(server) as client:
        lines = client.read_all().decode("utf-8", "replace").splitlines()
        report.expect(
            len(lines) == 2 and lines[0] != "Goodbye!" and lines[1] == "Goodbye!",
            "received two lines, the second one 'Goodbye!'",
            f"expected a quote and then 'Goodbye!', received {lines!r}",
        )
        report.expect(
            client.ended == "eof",
            "then the server closed the connection cleanly",
            f"expected a clean close, the connection ended with: {client.ended}",
        )
    return report


def check_total_connections(factory_class: type[Factory]) -> Report:
    """Exercise 3: totalConnections counts every connection and never goes down."""
    report = Report("the factory counts every connection since it started")
    factory = factory_class()
    with checked_server(report, factory) as server:
        with client_of(server) as first:
            first.read_line()
        server.wait_until_idle()
        with client_of(server) as second:
            greeting = second.read_line()
        server.wait_until_idle()
        total = getattr(factory, "totalConnections", None)
        report.expect(
            total == 2,
            "after two connections, one after the other, totalConnections is 2",
            f"after two connections, one after the other, totalConnections is {total!r} (expected 2)",
        )
        report.expect(
            factory.numProtocols == 0,  # type: ignore[attr-defined]
            "numProtocols is back to 0 once both have left",
            f"numProtocols is {factory.numProtocols!r} once both have left (expected 0)",  # type: ignore[attr-defined]
        )
        report.expect(
            "1" in greeting and "2" in greeting,
            f"the second greeting shows both counts: {greeting!r}",
            f"the second greeting should mention 1 open connection and 2 in all: {greeting!r}",
        )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("protocols")
