"""Checks for notebook 3's exercises."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory

from .. import lab
from ..clients import ClientError, connect
from ..serving import QOTDFactory, why_no_unix_sockets
from . import CHECK_TIMEOUT, Report, checked_server, client_of, described, trouble
from ._solutions import solution_for

QUOTE = b"An apple a day keeps the doctor away\r\n"


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _quote_from(report: Report, target: object, where: str) -> None:
    """Connect to *target* and expect exactly the quote, then a clean close."""
    try:
        with connect(target, timeout=CHECK_TIMEOUT, title="check") as client:
            received = client.read_all()
    except (ClientError, OSError) as error:
        report.wrong(f"a client of {where} could not get the quote: {described(error)}")
        return
    report.expect(
        received == QUOTE and client.ended == "eof",
        f"a client of {where} got the quote",
        f"a client of {where} expected the quote and a close, received {received!r} ({client.ended})",
    )


# -- Exercise 1 ---------------------------------------------------------------------


def _settled(result: object) -> list[object]:
    """The items of *result* (a port, or a sequence of them), with any Deferreds among them waited for."""
    items = list(result) if isinstance(result, list | tuple) else [result]
    settled = []
    for item in items:
        if isinstance(item, defer.Deferred):
            try:
                item = lab.call(lambda d=item: d, what="a Deferred listen_twice returned")
            except Exception as error:
                item = error
        settled.append(item)
    return settled


def check_listen_twice(listen_twice: Callable[[Any, Factory], Any]) -> Report:
    """Exercise 1: one factory, two listening ports, both serving the quote."""
    report = Report("listen_twice serves one factory on two loopback ports")
    lab.errors().take_new()
    factory = QOTDFactory()
    try:
        result = lab.call(listen_twice, _reactor(), factory, what="listen_twice(reactor, factory)")
    except Exception as error:
        report.wrong(trouble(error, "listen_twice", "listen_twice"))
        return report
    items = _settled(result)
    ports = [item for item in items if IListeningPort.providedBy(item)]
    try:
        if isinstance(result, list | tuple) and any(isinstance(item, defer.Deferred) for item in result):
            report.wrong(
                "it returned Deferreds, not ports: endpoint.listen() only promises a port; "
                "return one Deferred of both (gatherResults), and the caller waits for it"
            )
        if not report.expect(
            len(items) == 2 and len(ports) == 2,
            "it gave back two listening ports",
            f"expected two listening ports (IListeningPort), got {_kinds(items)}",
        ):
            return report
        addresses = [port.getHost() for port in ports]
        loopback = all(isinstance(a, IPv4Address) and a.host == "127.0.0.1" for a in addresses)
        report.expect(
            loopback,
            "both listen on 127.0.0.1 (TCP over IPv4)",
            f"expected both on 127.0.0.1 over TCP, got {[type(a).__name__ for a in addresses]} "
            f"on {sorted({str(getattr(a, 'host', '?')) for a in addresses})}",
        )
        if not loopback:
            return report
        numbers = [address.port for address in addresses]  # type: ignore[attr-defined]
        report.expect(
            numbers[0] != numbers[1],
            "on two different port numbers",
            "both ports have the same number",
        )
        starts = lab.call(lambda: factory.numPorts, what="the factory's port count")
        report.expect(
            starts == 2,
            "the factory counts two ports (numPorts == 2): the same factory listens on both",
            f"the factory's numPorts is {starts} (expected 2): did you listen with the factory you were given?",
        )
        for name, number in zip("AB", numbers, strict=True):
            _quote_from(report, ("127.0.0.1", number), f"port {name}")
    finally:
        for port in ports:
            lab.call(port.stopListening, what="a port listen_twice opened to stop")
        for entry in lab.errors().take_new():
            report.wrong(f"your code raised an error: {entry}")
    return report


def _kinds(items: list[object]) -> str:
    if not items:
        return "nothing"
    return ", ".join(type(item).__name__ for item in items)


# -- Exercise 2 ---------------------------------------------------------------------


def check_private_unix_endpoint(private_unix_endpoint: Callable[[str], str]) -> Report:
    """Exercise 2: an endpoint string for a UNIX socket only its owner may connect to.

    Where there are no UNIX sockets (Windows), the check says so in its
    title and reads the description with Twisted's parser instead of serving it.
    """
    missing = why_no_unix_sockets(_reactor())
    title = "private_unix_endpoint describes qotd.sock in the folder, mode 600"
    report = Report(title if missing is None else f"{title} (not served: {missing})")
    with tempfile.TemporaryDirectory() as folder:
        try:
            description = private_unix_endpoint(folder)
        except Exception as error:
            report.wrong(trouble(error, "private_unix_endpoint", "private_unix_endpoint"))
            return report
        if not report.expect(
            isinstance(description, str),
            "it returns a string",
            f"expected a string such as 'unix:...', got {type(description).__name__}",
        ):
            return report
        shown = description.replace(folder, "<folder>")
        if report.expect(
            description.startswith("unix:"),
            f"it describes a UNIX socket: {shown!r}",
            f"a UNIX socket's description starts with 'unix:', got {shown!r}",
        ):
            if missing is None:
                _check_unix_server(report, description, shown, folder)
            else:
                _check_unix_description(report, description, shown, folder)
    return report


def _check_unix_description(report: Report, description: str, shown: str, folder: str) -> None:
    """What serving would show, read from the endpoint Twisted's parser builds (it opens nothing)."""
    try:
        endpoint = serverFromString(_reactor(), description)
    except Exception as error:
        report.wrong(f"Twisted cannot read {shown!r}: {described(error)}")
        return
    if not isinstance(endpoint, UNIXServerEndpoint):
        report.wrong(f"Twisted reads {shown!r} as a {type(endpoint).__name__}, not a UNIX socket")
        return
    # The endpoint's own record of its path and mode: private names, but what listen() would use.
    path, mode = getattr(endpoint, "_address", None), getattr(endpoint, "_mode", None)
    report.expect(
        path == os.path.join(folder, "qotd.sock"),
        "the socket would be the file qotd.sock in the folder",
        f"expected the socket at <folder>/qotd.sock, it would be at {str(path).replace(folder, '<folder>')!r}",
    )
    report.expect(
        mode == 0o600,
        "its permissions would be 600: only its owner may connect",
        f"its permissions would be {mode:o}; expected 600 (read and write for the owner only)"
        if isinstance(mode, int)
        else f"expected permissions 600, got {mode!r}",
    )


def _check_unix_server(report: Report, description: str, shown: str, folder: str) -> None:
    path = os.path.join(folder, "qotd.sock")
    lab.errors().take_new()
    try:
        server = lab.listen(QOTDFactory(), name=f"check: {report.title}", endpoint=description)
    except Exception as error:
        report.wrong(f"Twisted cannot listen on {shown!r}: {described(error)}")
        return
    try:
        if not report.expect(
            server.path == path and os.path.exists(path),
            "the socket is the file qotd.sock in the folder",
            f"expected the socket at <folder>/qotd.sock, it is at {str(server.path).replace(folder, '<folder>')!r}"
            if server.path != path
            else "the socket file qotd.sock does not exist",
        ):
            return
        mode = stat.S_IMODE(os.stat(path).st_mode)
        report.expect(
            mode == 0o600,
            "its permissions are 600: only its owner may connect",
            f"its permissions are {mode:o}; expected 600 (read and write for the owner only)",
        )
        _quote_from(report, path, "the socket")
    finally:
        server.stop()  # before the folder goes: stopping removes the socket file
        for entry in lab.errors().take_new():
            report.wrong(f"your code raised an error: {entry}")


# -- Exercise 3 ---------------------------------------------------------------------


def check_limited_factory(factory_class: Callable[[int], Factory]) -> Report:
    """Exercise 3: the first *limit* connections get a quote; later ones are closed at once."""
    report = Report("LimitedQOTDFactory(2) serves two quotes, then refuses")
    try:
        factory_class(2).buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))  # a trial run, no network
        factory = factory_class(2)
    except Exception as error:
        report.wrong(trouble(error, "buildProtocol", "LimitedQOTDFactory(2).buildProtocol(address)"))
        return report
    with checked_server(report, factory) as server:
        for number in (1, 2, 3, 4):
            with client_of(server) as client:
                received = client.read_all()
            server.wait_until_idle()
            if number <= 2:
                served = report.expect(
                    received == QUOTE,
                    f"client {number} got the quote",
                    f"client {number} expected the quote, received {received!r} ({client.ended})",
                )
            else:
                served = report.expect(
                    received == b"" and client.ended == "eof",
                    f"client {number} was closed at once, with nothing sent",
                    f"client {number} should be turned away with nothing, received {received!r} "
                    f"({client.ended})",
                )
            if not served:
                return report  # later clients would only repeat the same story
        refused = sum("refused" in event for event in server.trace.events())
        report.expect(
            refused == 2,
            "buildProtocol refused two connections (it returned None)",
            f"buildProtocol returned None {refused} time(s), expected 2 (clients 3 and 4)",
        )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("serving")
