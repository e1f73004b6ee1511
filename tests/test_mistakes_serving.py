"""Notebook 3's checks reject the mistakes beginners make, and say what is wrong first.

Each wrong attempt is written as a student would write it in the notebook;
the checks serve it over real sockets, as in class.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from support import first_wrong
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.protocol import Factory

from writing_servers import lab
from writing_servers.exercises.serving import (
    check_limited_factory,
    check_listen_twice,
    check_private_unix_endpoint,
)
from writing_servers.protocols import QOTD
from writing_servers.serving import QOTDFactory, why_no_unix_sockets
from writing_servers.solutions import serving as solutions


@pytest.fixture(autouse=True)
def _nothing_left_listening() -> Iterator[None]:
    lab.start()
    yield
    assert lab.servers() == [], "the check left a server running"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- Exercise 1: listen_twice -------------------------------------------------------


def test_listen_twice_solution_passes() -> None:
    """The reference solution passes, the second call included."""
    report = check_listen_twice(solutions.listen_twice)
    assert report.passed, repr(report)


def test_listen_twice_with_unawaited_deferreds_fails() -> None:
    """A list of endpoint.listen() Deferreds is named as such."""

    def listen_twice(reactor: Any, factory: Factory) -> list[Deferred[IListeningPort]]:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        return [endpoint.listen(factory), endpoint.listen(factory)]

    report = check_listen_twice(listen_twice)
    assert first_wrong(report).startswith("it returned a list of Deferreds, not ports")


def test_listen_twice_on_every_interface_fails() -> None:
    """listenTCP without an interface listens on 0.0.0.0; the check says so first."""

    def listen_twice(reactor: Any, factory: Factory) -> list[IListeningPort]:
        return [reactor.listenTCP(0, factory), reactor.listenTCP(0, factory)]

    report = check_listen_twice(listen_twice)
    assert first_wrong(report) == (
        "the ports listen on 0.0.0.0, every network interface, so anyone on your network can connect: "
        "pass interface='127.0.0.1'"
    )


def test_listen_twice_on_fixed_ports_fails() -> None:
    """Fixed port numbers work once; the second call, with the first ports open, cannot listen."""
    numbers = [_free_port(), _free_port()]

    def listen_twice(reactor: Any, factory: Factory) -> Deferred[list[IListeningPort]]:
        endpoints = [TCP4ServerEndpoint(reactor, number, interface="127.0.0.1") for number in numbers]
        return gatherResults([endpoint.listen(factory) for endpoint in endpoints])

    report = check_listen_twice(listen_twice)
    line = first_wrong(report)
    assert "CannotListenError: Couldn't listen on 127.0.0.1:" in line
    assert line.endswith("— listen on port 0: the system picks a free port each time")


def test_listen_twice_with_deferred_list_fails() -> None:
    """DeferredList fires with (True, port) pairs, not ports."""

    def listen_twice(reactor: Any, factory: Factory) -> DeferredList[IListeningPort]:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        return DeferredList([endpoint.listen(factory), endpoint.listen(factory)])

    report = check_listen_twice(listen_twice)
    assert first_wrong(report) == (
        "it gave back (True, port) pairs: that is how DeferredList fires; "
        "gatherResults fires with the ports themselves"
    )


def test_listen_twice_with_a_new_factory_fails() -> None:
    """Ports that serve a new QOTDFactory, not the one given, are caught by numPorts."""

    def listen_twice(reactor: Any, factory: Factory) -> list[IListeningPort]:
        return [reactor.listenTCP(0, QOTDFactory(), interface="127.0.0.1") for _ in range(2)]

    report = check_listen_twice(listen_twice)
    assert first_wrong(report) == (
        "the factory's numPorts is 0 (expected 2): listen with the factory you were given, not a new one"
    )


def test_listen_twice_without_return_fails() -> None:
    """A forgotten return is named, and the ports it opened are still closed."""

    def listen_twice(reactor: Any, factory: Factory) -> None:
        reactor.listenTCP(0, factory, interface="127.0.0.1")
        reactor.listenTCP(0, factory, interface="127.0.0.1")

    report = check_listen_twice(listen_twice)
    assert first_wrong(report) == (
        "listen_twice returned None: return the two ports, or a Deferred that fires with both"
    )


def test_listen_twice_with_lab_fails() -> None:
    """lab.listen cannot wait on the reactor thread; the line says to use endpoints."""

    def listen_twice(reactor: Any, factory: Factory) -> list[lab.Server]:
        return [lab.listen(factory, name="A"), lab.listen(factory, name="B")]

    report = check_listen_twice(listen_twice)
    line = first_wrong(report)
    assert "RuntimeError: lab.call() blocks" in line
    assert line.endswith("listen_twice runs on the reactor thread, where lab cannot wait: use endpoints")


# -- Exercise 2: private_unix_endpoint ----------------------------------------------

needs_unix = pytest.mark.skipif(
    why_no_unix_sockets(lab._reactor()) is not None, reason="no UNIX sockets on this system"
)


def test_private_unix_endpoint_solution_passes() -> None:
    """The reference solution passes."""
    report = check_private_unix_endpoint(solutions.private_unix_endpoint)
    assert report.passed, repr(report)


@needs_unix
def test_private_unix_endpoint_with_the_default_mode_fails() -> None:
    """Mode 666 lets everyone on the machine connect."""
    report = check_private_unix_endpoint(lambda folder: f"unix:{folder}/qotd.sock:mode=666")
    assert first_wrong(report) == (
        "its permissions are 666 (Twisted's default); expected 600, read and write for the owner only"
        " — others on this machine may connect"
    )


def test_private_unix_endpoint_with_a_decimal_mode_fails() -> None:
    """0o600 formatted in decimal (384) is not octal; the line says what it is."""
    report = check_private_unix_endpoint(lambda folder: f"unix:{folder}/qotd.sock:mode={0o600}")
    assert first_wrong(report) == (
        "mode=384 is not an octal number (0o600 written in decimal): Twisted reads the mode in octal, "
        "as chmod does, so write mode=600"
    )


@needs_unix
def test_private_unix_endpoint_for_the_owner_with_execute_fails() -> None:
    """Mode 700 is not 600, even though only the owner may connect."""
    report = check_private_unix_endpoint(lambda folder: f"unix:{folder}/qotd.sock:mode=700")
    assert first_wrong(report) == "its permissions are 700; expected 600, read and write for the owner only"


def test_private_unix_endpoint_without_a_separator_fails() -> None:
    """Folder and name glued together put the socket next to the folder, not in it."""
    report = check_private_unix_endpoint(lambda folder: f"unix:{folder}qotd.sock:mode=600")
    assert first_wrong(report) == (
        "expected the socket at <folder>/qotd.sock, it is at '<folder>qotd.sock' "
        "(a path separator is missing: os.path.join(folder, 'qotd.sock'))"
    )


def test_private_unix_endpoint_without_the_kind_fails() -> None:
    """A bare path is not a description."""
    report = check_private_unix_endpoint(lambda folder: f"{folder}/qotd.sock:mode=600")
    assert first_wrong(report) == (
        "a UNIX socket's description starts with 'unix:', got '<folder>/qotd.sock:mode=600'"
    )


# -- Exercise 3: LimitedQOTDFactory -------------------------------------------------


def test_limited_factory_solution_passes() -> None:
    """The reference solution passes with both limits."""
    report = check_limited_factory(solutions.LimitedQOTDFactory)
    assert report.passed, repr(report)


class HardCodedLimit(QOTDFactory):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.served = 0

    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if self.served >= 2:
            return None
        self.served += 1
        return QOTD()


class OneTooMany(HardCodedLimit):
    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if self.served > self.limit:
            return None
        self.served += 1
        return QOTD()


class CountsRefusals(HardCodedLimit):
    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        self.served += 1
        if self.served > self.limit:
            return None
        return QOTD()


class CountsOnTheClass(QOTDFactory):
    served = 0  # one count for every factory of this class

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if CountsOnTheClass.served >= self.limit:
            return None
        CountsOnTheClass.served += 1
        return QOTD()


class RefusingQOTD(QOTD):
    """Closes at once, with nothing said, once the factory is full."""

    def connectionMade(self) -> None:
        if self.factory.served > self.factory.limit:
            self.transport.loseConnection()
        else:
            super().connectionMade()


class RefusesInConnectionMade(HardCodedLimit):
    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        self.served += 1
        protocol = RefusingQOTD()
        protocol.factory = self
        return protocol


class ForgivesAfterRefusing(HardCodedLimit):
    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if self.served >= self.limit:
            self.served = 0  # the bug: the next one is served again
            return None
        self.served += 1
        return QOTD()


class NeverCounts(HardCodedLimit):
    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if self.served >= self.limit:
            return None
        return QOTD()


class SharesOneProtocol(HardCodedLimit):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.quote = QOTD()

    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if self.served >= self.limit:
            return None
        self.served += 1
        return self.quote


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            HardCodedLimit,
            "LimitedQOTDFactory(2) served 2 and LimitedQOTDFactory(3) served 2: the limit is a fixed number "
            "in your code; use self.limit",
        ),
        (
            OneTooMany,
            "one quote too many (LimitedQOTDFactory(2) served 3 and LimitedQOTDFactory(3) served 4): refuse "
            "once self.served reaches self.limit (>=, not >)",
        ),
        (
            CountsRefusals,
            "LimitedQOTDFactory(2).served is 4 after 2 quotes and 2 refusals: count the quotes given, "
            "not every connection",
        ),
        (
            CountsOnTheClass,
            "LimitedQOTDFactory(2) served 2 and LimitedQOTDFactory(3) served 1: a new factory must start "
            "counting at 0 — keep the count on each factory (self.served), not on the class or in a global",
        ),
        (
            RefusesInConnectionMade,
            "LimitedQOTDFactory(2) built 4 protocols for 2 quotes: return None from buildProtocol to turn a "
            "connection away, before any protocol exists",
        ),
        (
            ForgivesAfterRefusing,
            "LimitedQOTDFactory(2) gave client 4 a quote after turning client 3 away: once full, stay full "
            "— refuse every later connection",
        ),
        (
            NeverCounts,
            "nobody was turned away (LimitedQOTDFactory(2) served 4 and LimitedQOTDFactory(3) served 5): "
            "return None once self.served reaches self.limit",
        ),
        (
            SharesOneProtocol,
            "buildProtocol returned the same protocol object twice: return a new QOTD() for each "
            "connection, since a protocol holds one conversation",
        ),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_limited_factory_mistake_fails(attempt: type[Factory], expected: str) -> None:
    """Each mistake fails, and the first ✗ line names it."""
    if attempt is CountsOnTheClass:
        CountsOnTheClass.served = 0  # as a freshly run cell
    report = check_limited_factory(attempt)
    assert not report.passed
    assert first_wrong(report) == expected
