"""Checks for notebook 6's exercises."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory

from . import Report, checked_server, client_of, described, reply_to, trouble
from ._solutions import solution_for

QUOTES = ["Carpe diem.", "Übung macht den Meister.", "Less is more."]
#: Addresses from the documentation ranges (RFC 5737): no real client has them.
BLOCKED_HOST = "203.0.113.7"
OTHER_HOST = "198.51.100.20"


def _line(text: str) -> bytes:
    return text.encode("utf-8") + b"\r\n"


# -- Exercise 1 ---------------------------------------------------------------------


def _read_quotes(report: Report, factory: Factory[Any], expected: list[str], which: str) -> None:
    """Connect once per expected quote, one client after another; each must get its quote, then a close."""
    with checked_server(report, factory) as server:
        for number, quote in enumerate(expected, start=1):
            with client_of(server) as client:
                received = client.read_all()
            server.wait_until_idle()
            if not report.expect(
                received == _line(quote) and client.ended == "eof",
                f"{which}, client {number} got {quote!r}, then a close",
                f"{which}, client {number} expected {_line(quote)!r} and a close, "
                f"received {received!r} ({client.ended})",
            ):
                return  # later clients would only repeat the story


def check_rotating_quotes(factory_class: Callable[[list[str]], Any]) -> Report:
    """Exercise 1: each connection gets the next quote, round and round; each factory keeps its own place."""
    report = Report("RotatingQOTDFactory hands out its quotes in turn")
    try:
        first, second = factory_class(list(QUOTES)), factory_class(list(QUOTES))
        factory_class(list(QUOTES)).next_quote()  # a trial run on a third factory, no network
    except Exception as error:
        report.wrong(trouble(error, "next_quote", "RotatingQOTDFactory(quotes) or its next_quote()"))
        return report
    if first.protocol is None:
        report.wrong("the factory names no protocol class, so the default buildProtocol cannot build one")
        return report
    _read_quotes(report, first, [*QUOTES, QUOTES[0]], "on one server")
    if report.passed:
        # Made before the first server served anyone: a position kept on the class would show here.
        _read_quotes(report, second, QUOTES[:1], "on a second server with its own factory")
    return report


# -- Exercise 2 ---------------------------------------------------------------------


def check_greeting_factory(greeting_factory: Callable[[str], Factory[Any]]) -> Report:
    """Exercise 2: greeting_factory(greeting) serves Greeters that greet with that greeting."""
    report = Report("greeting_factory(greeting) builds a configured greeting server")
    factories = {}
    for greeting in ["Bonjour", "Grüß Gott"]:
        try:
            factories[greeting] = greeting_factory(greeting)
        except Exception as error:
            report.wrong(trouble(error, "greeting_factory", f"greeting_factory({greeting!r})"))
            return report
        if not report.expect(
            isinstance(factories[greeting], Factory),
            f"greeting_factory({greeting!r}) returned a factory",
            f"greeting_factory({greeting!r}) returned {factories[greeting]!r}, not a Factory",
        ):
            return report
    # Both factories exist before either serves: a greeting kept on the class would be the last one.
    for greeting, names in [("Bonjour", ["Ada", "Jürgen"]), ("Grüß Gott", ["Grace"])]:
        with checked_server(report, factories[greeting]) as server, client_of(server) as client:
            for name in names:
                reply = reply_to(client, name)
                expected = f"{greeting}, {name}!"
                report.expect(
                    reply == expected,
                    f"the {greeting!r} server answered {name!r} with {expected!r}",
                    f"the {greeting!r} server should answer {name!r} with {expected!r}, got {reply!r}",
                )
        if not report.passed:
            break
    return report


# -- Exercise 3 ---------------------------------------------------------------------


def check_blocklist(factory_class: Callable[..., Factory[Any]]) -> Report:
    """Exercise 3: buildProtocol returns None for a blocked host and a wired-up protocol for others."""
    report = Report("BlocklistQOTDFactory turns blocked hosts away")
    try:
        factory = factory_class([BLOCKED_HOST])
        refused = factory.buildProtocol(IPv4Address("TCP", BLOCKED_HOST, 40000))
        allowed = factory.buildProtocol(IPv4Address("TCP", OTHER_HOST, 40000))
    except Exception as error:
        report.wrong(
            trouble(
                error, "buildProtocol", f"BlocklistQOTDFactory([{BLOCKED_HOST!r}]).buildProtocol(address)"
            )
        )
        return report
    report.expect(
        refused is None,
        f"buildProtocol returned None for the blocked host {BLOCKED_HOST}",
        f"buildProtocol should return None for the blocked host {BLOCKED_HOST}, returned {refused!r}",
    )
    if allowed is None:
        report.wrong(f"buildProtocol returned None for {OTHER_HOST}, which is not blocked")
        return report
    if not report.expect(
        getattr(allowed, "factory", None) is factory,
        f"for {OTHER_HOST} it returned a protocol whose .factory is the factory",
        f"for {OTHER_HOST} it returned a protocol whose .factory is {getattr(allowed, 'factory', None)!r}, "
        "not the factory (the protocol will not find its quote)",
    ):
        return report

    cases: list[tuple[Iterable[str], bytes, str]] = [
        (
            ["127.0.0.1"],
            b"",
            "with 127.0.0.1 blocked, a loopback client was closed at once with nothing sent",
        ),
        (
            [BLOCKED_HOST],
            _line(QUOTES[0]),
            f"with only {BLOCKED_HOST} blocked, a loopback client got the quote",
        ),
    ]
    for blocked, expected, right in cases:
        try:
            served = factory_class(blocked, quote=QUOTES[0])
        except Exception as error:
            report.wrong(f"BlocklistQOTDFactory({list(blocked)!r}, quote=...) raised {described(error)}")
            return report
        with checked_server(report, served) as server:
            with client_of(server) as client:
                received = client.read_all()
            report.expect(
                received == expected and client.ended == "eof",
                right,
                f"with {list(blocked)} blocked, a loopback client expected {expected!r} and a close, "
                f"received {received!r} ({client.ended})",
            )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("simpler_protocol_creation")
