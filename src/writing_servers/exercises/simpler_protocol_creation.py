"""Checks for notebook 6's exercises."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.protocol import Factory

from ..clients import ReadTimeout
from . import CHECK_TIMEOUT, Report, checked_server, client_of, described, reply_to, trouble
from ._solutions import solution_for

QUOTES = ["Carpe diem.", "Übung macht den Meister.", "Less is more."]
#: Addresses from the documentation ranges (RFC 5737): no real client has them.
BLOCKED_HOST = "203.0.113.7"
ALSO_BLOCKED = "192.0.2.44"
OTHER_HOST = "198.51.100.20"


def _line(text: str) -> bytes:
    return text.encode("utf-8") + b"\r\n"


# -- Exercise 1 ---------------------------------------------------------------------


def _rotation(
    report: Report, factory_class: Callable[[list[str]], Any], quotes: list[str], calls: int
) -> bool:
    """Call next_quote() *calls* times on a new factory of *quotes*; report unless they come in turn."""
    expected = [quotes[n % len(quotes)] for n in range(calls)]
    got: list[str] = []
    try:
        factory = factory_class(list(quotes))
        for _ in range(calls):
            got.append(factory.next_quote())
    except IndexError as error:
        report.wrong(
            trouble(error, "next_quote", "next_quote()")
            + f" (call {len(got) + 1}, with {len(quotes)} quotes): start again after the last, "
            "with % len(self.quotes)"
        )
        return False
    except Exception as error:
        report.wrong(trouble(error, "next_quote", "RotatingQOTDFactory(quotes) or its next_quote()"))
        return False
    if got[:1] != expected[:1]:
        why = "the first call must return the first quote"
    elif len(set(got)) == 1:
        why = "move on by one at each call"
    else:
        why = f"expected {expected}"
    return report.expect(
        got == expected,
        f"with {len(quotes)} quotes, {calls} calls of next_quote() return {expected}",
        f"with {len(quotes)} quotes, {calls} calls of next_quote() returned {got}: {why}",
    )


def _own_place(report: Report, factory_class: Callable[[list[str]], Any]) -> bool:
    """Two factories: the second's first quote is the first quote, however far the first has got."""
    try:
        first, second = factory_class(list(QUOTES)), factory_class(list(QUOTES))
        first.next_quote()
        quote = second.next_quote()
    except Exception as error:
        report.wrong(trouble(error, "next_quote", "RotatingQOTDFactory(quotes) or its next_quote()"))
        return False
    return report.expect(
        quote == QUOTES[0],
        "each factory keeps its own place: a second factory starts at the first quote",
        f"a second factory's first next_quote() returned {quote!r}, not {QUOTES[0]!r}: the place is shared "
        "between factories; keep it on self, set in __init__, not on the class or in a global",
    )


def check_rotating_quotes(factory_class: Callable[[list[str]], Any]) -> Report:
    """Exercise 1: each connection gets the factory's next quote, round and round; each factory its own place."""
    report = Report("RotatingQOTDFactory hands out its quotes in turn")
    if not (
        _rotation(report, factory_class, QUOTES, 4)
        and _rotation(report, factory_class, QUOTES[1:], 3)  # a fixed % 3 would not do
        and _own_place(report, factory_class)
    ):
        return report
    factory = factory_class(list(QUOTES))
    if factory.protocol is None:
        report.wrong("the factory names no protocol class, so the default buildProtocol cannot build one")
        return report
    expected = [*QUOTES, QUOTES[0]]
    with checked_server(report, factory) as server:
        for number, quote in enumerate(expected, start=1):
            with client_of(server) as client:
                try:
                    received = client.read_all()
                except ReadTimeout:
                    received = client.transcript.received()
                    why = "close it with self.transport.loseConnection()"
                else:
                    why = "call self.factory.next_quote() once per connection and send it"
                ended = client.ended or f"still open after {CHECK_TIMEOUT:g} s"
            server.wait_until_idle()
            if received == _line(QUOTES[0]) and number > 1 and ended == "eof":
                why = (
                    "it got the first quote again: each connection has a new protocol, so the place must be "
                    "kept on the factory (self.factory.next_quote())"
                )
            if not report.expect(
                received == _line(quote) and ended == "eof",
                f"client {number} got {quote!r}, then a close",
                f"client {number} expected {_line(quote)!r} and a close; received {received!r} ({ended}): {why}",
            ):
                break  # later clients would only repeat the story
    return report


# -- Exercise 2 ---------------------------------------------------------------------


@contextmanager
def _forProtocol_calls() -> Iterator[list[tuple[type, tuple[Any, ...], dict[str, Any]]]]:
    """Record each call of ``forProtocol`` (class, arguments) while the block runs.

    The factory it makes is the same as one made by hand and given a
    ``protocol`` afterwards, so only watching the call can tell them apart.
    """
    calls: list[tuple[type, tuple[Any, ...], dict[str, Any]]] = []
    original = vars(Factory)["forProtocol"]

    def forProtocol(cls: type, protocol: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((cls, args, kwargs))
        return original.__func__(cls, protocol, *args, **kwargs)

    Factory.forProtocol = classmethod(forProtocol)  # type: ignore[assignment, method-assign]
    try:
        yield calls
    finally:
        Factory.forProtocol = original  # type: ignore[method-assign]


def _built_as_asked(report: Report, greeting_factory: Callable[[str], Any], greeting: str) -> Any:
    """Call greeting_factory(greeting); the factory if it was made with GreetingFactory.forProtocol, else None."""
    call = f"greeting_factory({greeting!r})"
    with _forProtocol_calls() as calls:
        try:
            factory = greeting_factory(greeting)
        except Exception as error:
            if calls and calls[-1][0] is Factory and isinstance(error, TypeError):
                report.wrong(
                    f"{call}: Factory.forProtocol(Greeter, greeting) passes the greeting to Factory(), which "
                    "takes no arguments: call forProtocol on GreetingFactory"
                )
            else:
                report.wrong(trouble(error, "greeting_factory", call))
            return None
    if not isinstance(factory, Factory):
        report.wrong(f"{call} returned {factory!r}, not a Factory")
        return None
    if not calls:
        report.wrong(
            f"{call} did not call forProtocol: build the factory with GreetingFactory.forProtocol(Greeter, "
            "greeting), which makes it and sets its protocol in one call"
        )
        return None
    made_on, args, kwargs = calls[-1]
    if made_on is Factory:
        report.wrong(
            f"{call} called forProtocol on Factory, which makes a plain Factory: call it on GreetingFactory, "
            "which keeps the greeting"
        )
        return None
    if greeting not in (*args, *kwargs.values()):
        report.wrong(
            f"{call} called {made_on.__name__}.forProtocol without the greeting: pass it on, "
            f"{made_on.__name__}.forProtocol(Greeter, greeting), and forProtocol hands it to {made_on.__name__}()"
        )
        return None
    named = [k.__name__ for k in type(factory).__mro__[:-1] if k is not Factory and vars(k).get("protocol")]
    if named:
        report.wrong(
            f"{named[0]} names a protocol itself (protocol = ...): the exercise asks it to name none, "
            "so that forProtocol chooses the protocol"
        )
        return None
    report.ok(
        f"{call} builds a {type(factory).__name__} with {made_on.__name__}.forProtocol, passing the greeting"
    )
    return factory


def check_greeting_factory(greeting_factory: Callable[[str], Factory[Any]]) -> Report:
    """Exercise 2: greeting_factory(greeting) builds, with forProtocol, a factory of Greeters for that greeting."""
    report = Report("greeting_factory(greeting) builds a configured greeting server")
    greetings = {"Bonjour": ["Ada", "Jürgen"], "Grüß Gott": ["Grace"]}
    factories = {}
    for greeting in greetings:
        factory = _built_as_asked(report, greeting_factory, greeting)
        if factory is None:
            return report
        factories[greeting] = factory
    # Both factories exist before either serves: a greeting kept on the class would be the last one.
    for greeting, names in greetings.items():
        with checked_server(report, factories[greeting]) as server, client_of(server) as client:
            for name in names:
                reply = reply_to(client, name)
                expected = f"{greeting}, {name}!"
                made_later = list(greetings)[list(greetings).index(greeting) + 1 :]
                if any(reply.startswith(f"{other},") for other in made_later):
                    why = "that is the greeting of a factory made after it: keep it on self, not on the class"
                elif any(reply.startswith(f"{other},") for other in greetings):
                    why = "that is the first factory's greeting: read it from self.factory.greeting, don't write it in"
                else:
                    why = "read the greeting from self.factory.greeting"
                if not report.expect(
                    reply == expected,
                    f"the {greeting!r} server answered {name!r} with {expected!r}",
                    f"the {greeting!r} server should answer {name!r} with {expected!r}; got {reply!r}: {why}",
                ):
                    return report
        if not report.passed:  # the conversation stopped early: the cause is reported already
            return report
    return report


# -- Exercise 3 ---------------------------------------------------------------------


def _refused_and_served(report: Report, factory_class: Callable[..., Factory[Any]]) -> bool:
    """Direct calls: None for each blocked host, a wired-up protocol for another host and a UNIX client."""
    blocked = [BLOCKED_HOST, ALSO_BLOCKED]
    made = f"BlocklistQOTDFactory({blocked!r})"
    try:
        factory = factory_class(blocked)
    except Exception as error:
        report.wrong(trouble(error, "BlocklistQOTDFactory", made))
        return False
    for host in blocked:
        try:
            built = factory.buildProtocol(IPv4Address("TCP", host, 40000))
        except Exception as error:
            report.wrong(trouble(error, "buildProtocol", f"{made}.buildProtocol(address)"))
            return False
        if not report.expect(
            built is None,
            f"buildProtocol returned None for the blocked host {host}",
            f"buildProtocol should return None for the blocked host {host}, returned a "
            f"{type(built).__name__}: "
            "compare addr.host, the address's host string, with self.blocked",
        ):
            return False
    clients = [
        (OTHER_HOST, IPv4Address("TCP", OTHER_HOST, 40000)),
        ("a UNIX-socket client", UNIXAddress(None)),
    ]
    for who, address in clients:
        try:
            built = factory.buildProtocol(address)
        except AttributeError as error:
            report.wrong(
                f"for {who}: {trouble(error, 'buildProtocol', f'{made}.buildProtocol(address)')}: "
                "an address without a host is never blocked: getattr(addr, 'host', None)"
            )
            return False
        except Exception as error:
            report.wrong(f"for {who}: {trouble(error, 'buildProtocol', f'{made}.buildProtocol(address)')}")
            return False
        if built is None:
            report.wrong(
                f"buildProtocol returned None for {who}, which is not blocked: "
                "return super().buildProtocol(addr) (is the return missing?)"
            )
            return False
        if not report.expect(
            getattr(built, "factory", None) is factory,
            f"for {who} it returned a protocol whose .factory is the factory",
            f"for {who} it returned a protocol whose .factory is {getattr(built, 'factory', None)!r}, not the "
            "factory (the protocol will not find its quote): return super().buildProtocol(addr)",
        ):
            return False
    return True


def check_blocklist(factory_class: Callable[..., Factory[Any]]) -> Report:
    """Exercise 3: buildProtocol returns None for a blocked host and a wired-up protocol for others."""
    report = Report("BlocklistQOTDFactory turns blocked hosts away")
    if not _refused_and_served(report, factory_class):
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
        if not report.passed:
            return report
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("simpler_protocol_creation")
