"""Checks for notebook 3's exercises."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IAddress, IListeningPort
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

#: What the exercise asks for, said once for the lines that need it.
_LOOPBACK = "pass interface='127.0.0.1'"


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


def _failure_of(error: Exception) -> Exception:
    """The error inside gatherResults' FirstError, which only says which Deferred failed."""
    if isinstance(error, defer.FirstError) and isinstance(error.subFailure.value, Exception):
        return error.subFailure.value
    return error


def _listen_twice_once(
    report: Report, listen_twice: Callable[[Any, Factory], Any], factory: Factory, call: str, who: str = "it"
) -> list[IListeningPort] | None:
    """Call *listen_twice* on the reactor thread; its two ports, or None once a ✗ line says why not."""
    try:
        result = lab.call(listen_twice, _reactor(), factory, what=call)
    except Exception as error:
        line = trouble(_failure_of(error), "listen_twice", call)
        if "lab.call() blocks" in line:
            line += " — listen_twice runs on the reactor thread, where lab cannot wait: use endpoints"
        elif isinstance(_failure_of(error), CannotListenError):
            line += " — listen on port 0: the system picks a free port each time"
        report.wrong(line)
        return None
    if isinstance(result, list | tuple) and any(isinstance(item, defer.Deferred) for item in result):
        report.wrong(
            "it returned a list of Deferreds, not ports: endpoint.listen() only promises a port; "
            "return one Deferred of both (gatherResults), and the caller waits for it"
        )
        return None
    items = _settled(result)
    errors = [item for item in items if isinstance(item, Exception)]
    if errors:
        report.wrong(f"listening failed: {described(_failure_of(errors[0]))}")
        return None
    if len(items) == 2 and all(_is_pair(item) for item in items):
        report.wrong(
            "it gave back (True, port) pairs: that is how DeferredList fires; "
            "gatherResults fires with the ports themselves"
        )
        return None
    if items == [None]:
        report.wrong("listen_twice returned None: return the two ports, or a Deferred that fires with both")
        return None
    ports = [item for item in items if IListeningPort.providedBy(item)]
    if not report.expect(
        len(items) == 2 and len(ports) == 2,
        f"{who} gave back two listening ports",
        f"expected two listening ports (IListeningPort), got {_kinds(items)}",
    ):
        return None
    return ports


def _is_pair(item: object) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bool)


def _loopback_line(addresses: list[IAddress]) -> str | None:
    """None if every address is 127.0.0.1 over TCP and IPv4, else the ✗ line saying where they are."""
    hosts = sorted({str(getattr(address, "host", "?")) for address in addresses})
    if all(isinstance(a, IPv4Address) and a.type == "TCP" and a.host == "127.0.0.1" for a in addresses):
        return None
    if set(hosts) & {"0.0.0.0", "::", ""}:
        return (
            f"the ports listen on {' and '.join(hosts)}, every network interface, so anyone on your "
            f"network can connect: {_LOOPBACK}"
        )
    kinds = sorted({type(address).__name__ for address in addresses})
    return f"expected both on 127.0.0.1 over TCP and IPv4, got {' and '.join(kinds)} on {' and '.join(hosts)}"


def _listening_ports_of(factories: list[Factory]) -> list[IListeningPort]:
    """Every port still listening with one of *factories*, returned or not (run on the reactor thread)."""
    readers = _reactor().getReaders()
    return [reader for reader in readers if any(getattr(reader, "factory", None) is f for f in factories)]


def check_listen_twice(listen_twice: Callable[[Any, Factory], Any]) -> Report:
    """Exercise 1: one factory, two free loopback ports, both serving the quote; twice over."""
    report = Report("listen_twice serves one factory on two free loopback ports")
    lab.errors().take_new()
    factory, other_factory = QOTDFactory(), QOTDFactory()
    returned: list[IListeningPort] = []
    try:
        ports = _listen_twice_once(report, listen_twice, factory, "listen_twice(reactor, factory)")
        if ports is None:
            return report
        returned += ports
        addresses = [port.getHost() for port in ports]
        wrong_place = _loopback_line(addresses)
        if wrong_place is not None:
            report.wrong(wrong_place)
            return report
        report.ok("both listen on 127.0.0.1 (TCP over IPv4)")
        numbers = [cast(IPv4Address, address).port for address in addresses]
        if not report.expect(
            numbers[0] != numbers[1], "on two different port numbers", "both ports have the same number"
        ):
            return report
        starts = lab.call(lambda: factory.numPorts, what="the factory's port count")
        report.expect(
            starts == 2,
            "the factory counts two ports (numPorts == 2): the same factory listens on both",
            f"the factory's numPorts is {starts} (expected 2): listen with the factory you were given, "
            "not a new one",
        )
        for name, number in zip("AB", numbers, strict=True):
            _quote_from(report, ("127.0.0.1", number), f"port {name}")
        again = _listen_twice_once(
            report,
            listen_twice,
            other_factory,
            "a second listen_twice(reactor, factory), with the first two ports open",
            who="a second call",
        )
        if again is not None:
            returned += again
            fresh = {getattr(port.getHost(), "port", None) for port in again}
            report.expect(
                len(fresh) == 2 and not fresh & set(numbers),
                "with the first two ports still open: two more free ports",
                "a second call gave back ports already in use: listen on port 0 for a free port each time",
            )
    finally:
        open_ports = lab.call(
            _listening_ports_of, [factory, other_factory], what="the ports listen_twice opened"
        )
        for port in {id(port): port for port in [*returned, *open_ports]}.values():
            lab.call(port.stopListening, what="a port listen_twice opened to stop")
        for entry in lab.errors().take_new():
            report.wrong(f"your code raised an error: {entry}")
    return report


def _kinds(items: list[object]) -> str:
    if not items:
        return "nothing"
    return ", ".join(type(item).__name__ for item in items)


# -- Exercise 2 ---------------------------------------------------------------------

#: The option as the description wrote it, to explain a mode Twisted cannot read.
_MODE_OPTION = re.compile(r":mode=([^:]*)")


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


def _unreadable(description: str, shown: str, error: Exception) -> str:
    """The ✗ line for a description Twisted cannot read; a mode that is not octal is named as such."""
    mode = _MODE_OPTION.search(description)
    if isinstance(error, ValueError) and "base 8" in str(error) and mode is not None:
        decimal = " (0o600 written in decimal)" if mode.group(1) == str(0o600) else ""
        return (
            f"mode={mode.group(1)} is not an octal number{decimal}: Twisted reads the mode in octal, "
            "as chmod does, so write mode=600"
        )
    return f"Twisted cannot read {shown!r}: {described(error)}"


def _path_line(path: object, folder: str) -> str:
    where = str(path).replace(folder, "<folder>")
    missing_separator = " (a path separator is missing: os.path.join(folder, 'qotd.sock'))"
    return f"expected the socket at <folder>/qotd.sock, it is at {where!r}" + (
        missing_separator if where == "<folder>qotd.sock" else ""
    )


def _mode_line(mode: int, would: str = "are") -> str:
    others = " — others on this machine may connect" if mode & 0o077 else ""
    default = " (Twisted's default)" if mode == 0o666 else ""
    return (
        f"its permissions {would} {mode:o}{default}; expected 600, read and write for the owner only{others}"
    )


def _check_unix_description(report: Report, description: str, shown: str, folder: str) -> None:
    """What serving would show, read from the endpoint Twisted's parser builds (it opens nothing)."""
    try:
        endpoint = serverFromString(_reactor(), description)
    except Exception as error:
        report.wrong(_unreadable(description, shown, error))
        return
    if not isinstance(endpoint, UNIXServerEndpoint):
        report.wrong(f"Twisted reads {shown!r} as a {type(endpoint).__name__}, not a UNIX socket")
        return
    # The endpoint's own record of its path and mode: private names, but what listen() would use.
    path, mode = getattr(endpoint, "_address", None), getattr(endpoint, "_mode", None)
    report.expect(
        path == os.path.join(folder, "qotd.sock"),
        "the socket would be the file qotd.sock in the folder",
        _path_line(path, folder),
    )
    report.expect(
        mode == 0o600,
        "its permissions would be 600: only its owner may connect",
        _mode_line(mode, "would be") if isinstance(mode, int) else f"expected permissions 600, got {mode!r}",
    )


def _check_unix_server(report: Report, description: str, shown: str, folder: str) -> None:
    path = os.path.join(folder, "qotd.sock")
    lab.errors().take_new()
    try:
        server = lab.listen(QOTDFactory(), name=f"check: {report.title}", endpoint=description)
    except Exception as error:
        report.wrong(_unreadable(description, shown, error))
        return
    try:
        if not report.expect(
            server.path == path and os.path.exists(path),
            "the socket is the file qotd.sock in the folder",
            _path_line(server.path, folder)
            if server.path != path
            else "the socket file qotd.sock does not exist",
        ):
            return
        mode = stat.S_IMODE(os.stat(path).st_mode)
        report.expect(mode == 0o600, "its permissions are 600: only its owner may connect", _mode_line(mode))
        _quote_from(report, path, "the socket")
    finally:
        server.stop()  # before the folder goes: stopping removes the socket file
        for entry in lab.errors().take_new():
            report.wrong(f"your code raised an error: {entry}")


# -- Exercise 3 ---------------------------------------------------------------------

#: The limits tried, one factory each: two different numbers, so a fixed number in the code shows.
LIMITS = (2, 3)
#: Clients that should be turned away after the limit: more than one, so "once full, stay full" shows.
EXTRA_CLIENTS = 2


class _Visits:
    """What each client of one factory got: True for the quote, False for nothing; and the server's side."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.served: list[bool] = []
        self.built = 0  # protocols buildProtocol returned
        self.refused = 0  # times buildProtocol returned None
        self.count: object = None  # the factory's own ``served`` afterwards

    @property
    def quotes(self) -> int:
        """Quotes given before the first client was turned away."""
        return self.served.index(False) if False in self.served else len(self.served)


def _visit(report: Report, factory: Factory, limit: int) -> _Visits | None:
    """Connect limit + EXTRA_CLIENTS clients one after the other; None once a ✗ line says what went wrong."""
    visits = _Visits(limit)
    name = f"LimitedQOTDFactory({limit})"
    with checked_server(report, factory) as server:
        for number in range(1, limit + EXTRA_CLIENTS + 1):
            with client_of(server) as client:
                try:
                    received = client.read_all()
                except ClientError as error:
                    report.wrong(f"client {number} of {name} was neither served nor turned away: {error}")
                    break
            server.wait_until_idle()
            if any("raised" in event for event in server.trace.events()):
                break  # checked_server reports the error itself
            if received not in (QUOTE, b"") or client.ended != "eof":
                report.wrong(
                    f"client {number} of {name} should get the quote or nothing, received {received!r} "
                    f"({client.ended})"
                )
                break
            visits.served.append(received == QUOTE)
        events = server.trace.events()
        visits.built = sum("buildProtocol() ->" in event for event in events)
        visits.refused = sum("refused" in event for event in events)
        visits.count = lab.call(lambda: getattr(factory, "served", None), what="the factory's count")
    if any(line.kind == "bad" for line in report.lines()):
        return None
    return visits


def _pattern_line(first: _Visits, second: _Visits) -> str | None:
    """The ✗ line naming why the quotes given differ from the limits, or None if they match."""
    runs = (first, second)
    if all(run.served == [True] * run.limit + [False] * EXTRA_CLIENTS for run in runs):
        return None
    for run in runs:
        if False in run.served and True in run.served[run.quotes :]:
            later = run.quotes + run.served[run.quotes :].index(True) + 1
            return (
                f"LimitedQOTDFactory({run.limit}) gave client {later} a quote after turning client "
                f"{run.quotes + 1} away: once full, stay full — refuse every later connection"
            )
    counts = " and ".join(f"LimitedQOTDFactory({run.limit}) served {run.quotes}" for run in runs)
    if all(run.quotes == len(run.served) for run in runs):
        return f"nobody was turned away ({counts}): return None once self.served reaches self.limit"
    if all(run.quotes == 0 for run in runs):
        return f"nobody got a quote ({counts}): return QOTD() while self.served < self.limit"
    if first.quotes == second.quotes:
        return f"{counts}: the limit is a fixed number in your code; use self.limit"
    offsets = {run.quotes - run.limit for run in runs}
    if offsets == {1}:
        return f"one quote too many ({counts}): refuse once self.served reaches self.limit (>=, not >)"
    if offsets == {-1}:
        return f"one quote too few ({counts}): refuse only once self.served reaches self.limit"
    if first.quotes == first.limit and second.quotes < second.limit:
        return (
            f"{counts}: a new factory must start counting at 0 — keep the count on each factory "
            "(self.served), not on the class or in a global"
        )
    return f"{counts}; expected {first.limit} and {second.limit}: each serves the first self.limit clients"


def check_limited_factory(factory_class: Callable[[int], Factory]) -> Report:
    """Exercise 3: the first *limit* connections get a quote; later ones are refused by buildProtocol."""
    report = Report("LimitedQOTDFactory(2) and (3) serve 2 and 3 quotes, then refuse")
    runs: list[_Visits] = []
    for limit in LIMITS:
        try:
            factory = factory_class(limit)
        except Exception as error:
            report.wrong(trouble(error, "LimitedQOTDFactory", f"LimitedQOTDFactory({limit})"))
            return report
        run = _visit(report, factory, limit)
        if run is None:
            return report
        runs.append(run)
    first, second = runs
    pattern = _pattern_line(first, second)
    if pattern is not None:
        report.wrong(pattern)
        return report
    report.ok("LimitedQOTDFactory(2) served 2 clients and (3) served 3, then each turned everyone away")
    for run in runs:
        extra = EXTRA_CLIENTS
        if not report.expect(
            run.refused == extra and run.built == run.limit,
            f"LimitedQOTDFactory({run.limit}): buildProtocol returned None for the {extra} it turned away",
            f"LimitedQOTDFactory({run.limit}) built {run.built} protocols for {run.limit} quotes: return "
            "None from buildProtocol to turn a connection away, before any protocol exists",
        ):
            return report
    for run in runs:
        report.expect(
            run.count == run.limit,
            f"LimitedQOTDFactory({run.limit}).served is {run.limit}, the quotes given",
            f"LimitedQOTDFactory({run.limit}).served is {run.count!r} after {run.limit} quotes and "
            f"{EXTRA_CLIENTS} refusals: count the quotes given, not every connection",
        )
    _check_fresh_protocols(report, factory_class)
    return report


def _check_fresh_protocols(report: Report, factory_class: Callable[[int], Factory]) -> None:
    """Two calls to buildProtocol, without the network, must give two protocols: one per conversation."""
    factory = factory_class(5)
    address = IPv4Address("TCP", "127.0.0.1", 50000)
    try:
        built = [factory.buildProtocol(address), factory.buildProtocol(address)]
    except Exception as error:
        report.wrong(trouble(error, "buildProtocol", "LimitedQOTDFactory(5).buildProtocol(address)"))
        return
    if None in built:
        return  # the counts above were right; nothing more to learn here
    report.expect(
        built[0] is not built[1],
        "each connection gets a new QOTD",
        "buildProtocol returned the same protocol object twice: return a new QOTD() for each connection, "
        "since a protocol holds one conversation",
    )


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("serving")
