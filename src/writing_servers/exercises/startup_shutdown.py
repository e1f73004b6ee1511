"""Checks for notebook 7's exercises.

Each check serves the student's class with a log file in a temporary folder
of its own, over one or two periods of listening, and compares the whole
file with what it should hold.  Clients that are connected at the same time
send their lines in a fixed order, each line logged before the next is sent,
so that a count shared by every client (or a number kept on the factory)
shows.  The hooks are tried first by calling ``doStart`` and ``doStop`` by
hand, as a port would: a hook that raises, never opens the log, or leaves it
open is reported as the cause, before any client connects.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory

from .. import lab
from ..clients import Client
from ..startup_shutdown import LogfileFactory, LoggingProtocol, SimpleLogfileFactory, SimpleLoggingProtocol
from . import CHECK_TIMEOUT, Report, checked_server, client_of, trouble
from ._solutions import solution_for

__all__ = ["check_announcing_logfile", "check_client_numbering", "check_line_numbering", "solution"]

#: The notebook's exercises build on SimpleLogfileFactory; the solutions on the hardened LogfileFactory.
AnyLogfileFactory = type[SimpleLogfileFactory] | type[LogfileFactory]

#: What a log-file mistake raises, and what to do about it (added to the ✗ line that names the error).
_ADVICE = [
    (
        r"object has no attribute 'log'",
        "the log is not open yet: call super().startFactory(), which opens it, before logging",
    ),
    (
        r"(write to|I/O operation on) closed file",
        "the log is already closed: log before super().stopFactory() closes it",
    ),
    (
        r"object has no attribute 'factory'",
        "build the protocol with super().buildProtocol(addr), which sets its factory",
    ),
    (r"object has no attribute 'clients'", "start the count in startFactory: self.clients = 0"),
    (
        r'can only concatenate str \(not "bytes"\) to str',
        'the log takes bytes, not text: write b"..." or text.encode()',
    ),
]


class _Report(Report):
    """A Report whose ✗ lines for the log's usual errors say what to do here (in place of general advice)."""

    def wrong(self, text: str) -> None:
        advice = next((advice for pattern, advice in _ADVICE if re.search(pattern, text)), None)
        if advice is not None:
            text = f"{text.split(' — ')[0]} — {advice}"
        super().wrong(text)


#: A period of listening: how many clients connect at once, and the lines they send, in order, as
#: (client index, line).  Each line is logged before the next one is sent.
Period = tuple[int, list[tuple[int, str]]]


def _open_files(factory: object) -> list[str]:
    """The names of the factory's attributes that hold a file still open."""
    return [
        name for name, value in vars(factory).items() if isinstance(value, io.IOBase) and not value.closed
    ]


def _hooks_work(report: Report, factory_class: AnyLogfileFactory, folder: Path, build: bool = False) -> bool:
    """Start and stop a factory by hand, as a port would; report (and return False) what goes wrong.

    With *build*, it also builds a protocol while started, as a port does for each client.
    """
    name = factory_class.__name__
    path = folder / "probe.log"
    try:
        factory = factory_class(path)
    except Exception as error:
        report.wrong(trouble(error, name, f"{name}(path)"))
        return False
    if not _hook_runs(report, factory.doStart, f"{name}.startFactory"):
        return False
    if not path.exists():
        report.wrong(f"{name}.startFactory did not open the log: call super().startFactory(), which opens it")
        return False
    if build and not _builds(report, factory):
        return False
    if not _hook_runs(report, factory.doStop, f"{name}.stopFactory"):
        return False
    return _closed(report, factory)


def _hook_runs(report: Report, call: Callable[[], None], hook: str) -> bool:
    """Call a hook as a port would (``doStart`` calls ``startFactory``); report (and return False) if it raises."""
    try:
        call()
    except Exception as error:
        report.wrong(trouble(error, hook, f"{hook}()"))
        return False
    return True


def _builds(report: Report, factory: Factory[Any]) -> bool:
    """buildProtocol returns a protocol that knows its factory."""
    name = type(factory).__name__
    try:
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
    except Exception as error:
        report.wrong(trouble(error, f"{name}.buildProtocol", f"{name}.buildProtocol(addr)"))
        return False
    if protocol is None:
        report.wrong(f"{name}.buildProtocol returned None, which refuses the client: return the protocol")
        return False
    if getattr(protocol, "factory", None) is not factory:
        report.wrong(
            f"the protocol {name}.buildProtocol returned has no factory, so it cannot log: "
            "build it with super().buildProtocol(addr), which sets protocol.factory"
        )
        return False
    return True


def _closed(report: Report, factory: object) -> bool:
    """The factory holds no open file once stopFactory has run."""
    still_open = _open_files(factory)
    if still_open:
        report.wrong(
            f"after stopFactory the log file (self.{still_open[0]}) is still open: "
            "end stopFactory with super().stopFactory(), which closes it"
        )
    return not still_open


def _serve(report: Report, factory: Factory[Any], periods: list[Period]) -> bool:
    """Listen once per period: its clients connect, send their lines in order, hang up.

    Returns False if a conversation could not take place (checked_server then
    reports why, naming the student's code if it raised).
    """
    for count, steps in periods:
        failures = _wrongs(report)
        with checked_server(report, factory) as server:
            clients = [_connected(server, number) for number in range(1, count + 1)]
            try:
                for index, line in steps:
                    clients[index].send_line(line)
                    # Read before the next line is sent: the reactor handles one line at a time, in order.
                    sent = (line + "\r\n").encode()
                    server.wait_for_event(f"#{index + 1} dataReceived({sent!r})", timeout=CHECK_TIMEOUT)
            except OSError as error:  # the check hangs up once the student's code raises: that is the cause
                report.wrong(f"the server hung up while client {index + 1} was sending {line!r}: {error}")
            finally:
                for client in clients:
                    client.close()
            server.wait_until_idle()  # every line read and every connectionLost run before stopping
        if _wrongs(report) > failures:
            return False
    return True


def _connected(server: lab.Server, number: int) -> Client:
    """Connect client *number* and wait until the server has made its connection."""
    client = client_of(server)
    server.wait_for_event(f"#{number} connectionMade()", timeout=CHECK_TIMEOUT)
    return client


def _wrongs(report: Report) -> int:
    return sum(1 for line in report.lines() if line.kind == "bad")


def _log_lines(report: Report, log: Path) -> list[bytes] | None:
    if not log.exists():
        report.wrong("the log file was never created: does startFactory open it (super().startFactory())?")
        return None
    lines = log.read_bytes().split(b"\n")  # not splitlines(), which would also split at a stray CR
    if lines[-1] == b"":
        lines.pop()
    return lines


def _compare(
    report: Report, got: list[bytes], expected: list[bytes], right: str, diagnose: Callable[[], str]
) -> bool:
    """One line for the whole log: ✓ *right*, or ✗ the cause *diagnose* finds, then what the log holds."""
    if got == expected:
        report.ok(f"{right}: {expected!r}")
        return True
    cause = diagnose()
    report.wrong(f"{cause + '. ' if cause else ''}Expected {expected!r}, the log holds {got!r}")
    return False


def check_announcing_logfile(factory_class: AnyLogfileFactory) -> Report:
    """Exercise 1: '# started' after opening, '# stopped' before closing, in each period of listening."""
    report = _Report("AnnouncingLogfileFactory marks each start and stop in the log")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if not _hooks_work(report, factory_class, folder):
            return report
        report.ok("startFactory opens the log, and stopFactory closes it")
        log = folder / "announced.log"
        log.write_bytes(b"an earlier line\n")
        factory = factory_class(log)
        periods: list[Period] = [
            (2, [(0, "first run"), (1, "first run, second client")]),
            (1, [(0, "second run")]),
        ]
        if not _serve(report, factory, periods) or not _closed(report, factory):
            return report
        got = _log_lines(report, log)
        if got is None:
            return report
        expected = [b"an earlier line"]
        expected += [b"# started", b"first run", b"first run, second client", b"# stopped"]
        expected += [b"# started", b"second run", b"# stopped"]
        _compare(
            report,
            got,
            expected,
            "two periods of listening, each marked once, after what the log already held",
            lambda: _announcing_cause(got),
        )
    return report


def _announcing_cause(got: list[bytes]) -> str:
    started, stopped = got.count(b"# started"), got.count(b"# stopped")
    for mark in (b"# started", b"# stopped"):
        if any(mark in line and line != mark for line in got):
            return (
                f"{mark.decode()!r} shares a line with other text: log it with self.log_line(b{mark.decode()!r}), "
                "which ends the line"
            )
    if not got or got[0] != b"an earlier line":
        return "The log's earlier lines are gone: let super().startFactory() open it (it appends, 'ab')"
    if started == 0:
        return "No '# started' line: log it in startFactory, once super().startFactory() has opened the log"
    if stopped == 0:
        return "No '# stopped' line: log it in stopFactory, before super().stopFactory() closes the log"
    for mark, times in [(b"# started", started), (b"# stopped", stopped)]:
        if times != 2:
            where = "startFactory" if mark == b"# started" else "stopFactory"
            return (
                f"{mark.decode()!r} was logged {_times(times)} in 2 periods of listening with 3 clients: "
                f"log it in {where}, which runs once per period"
            )
    return ""


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def check_line_numbering(protocol: type[SimpleLoggingProtocol] | type[LoggingProtocol]) -> Report:
    """Exercise 2: lines logged as '<n>: <line>', n counting each connection's lines from 1."""
    report = _Report("LineNumberingProtocol numbers each client's lines from 1")
    with tempfile.TemporaryDirectory() as name:
        log = Path(name) / "numbered.log"
        factory: Factory[Any] = LogfileFactory(log)  # its log_line serves either kind of protocol
        factory.protocol = protocol
        # Two clients at once, their lines interleaved; then a third, alone.
        periods: list[Period] = [(2, [(0, "hello"), (1, "hi"), (0, "world")]), (1, [(0, "again")])]
        if not _serve(report, factory, periods):
            return report
        got = _log_lines(report, log)
        if got is None:
            return report
        expected = [b"1: hello", b"1: hi", b"2: world", b"1: again"]
        _compare(
            report,
            got,
            expected,
            "each client's lines numbered from 1, even while another client is connected",
            lambda: _line_numbering_cause(got, expected),
        )
    return report


def _numbers(lines: list[bytes], prefix: bytes = b"") -> list[int] | None:
    """The number each line starts with (after *prefix*), or None if one does not."""
    pattern = re.compile(re.escape(prefix) + rb"(-?\d+): ")
    numbers = [match.group(1) for line in lines if (match := pattern.match(line))]
    return [int(number) for number in numbers] if len(numbers) == len(lines) else None


def _line_numbering_cause(got: list[bytes], expected: list[bytes]) -> str:
    if any(b"b'" in line for line in got):
        return "A line holds b'...': str() or an f-string of bytes writes their repr. Join bytes: b\"%d: \" % n + line"
    if any(line.endswith(b"\r") for line in got):
        return "The CR of each CRLF line was kept: let the parent's lineReceived log the line"
    numbers, right = _numbers(got), _numbers(expected)
    assert right is not None
    if numbers is None or len(numbers) != len(right):
        return "Each line should be logged once, as b'<n>: <line>'"
    if numbers == [n - 1 for n in right]:
        return "The numbering starts at 0: count the line before logging it"
    if set(numbers) == {1}:
        return (
            "Every line got number 1: set the count to 0 once per connection (connectionMade), not per line"
        )
    if numbers[1] != 1:
        return (
            f"The second client's first line got number {numbers[1]}: the count is shared by every client. "
            "Keep it on the protocol (self.lines), which Twisted builds once per connection"
        )
    return ""


def check_client_numbering(factory_class: AnyLogfileFactory) -> Report:
    """Exercise 3: 'client <k>: <line>', k counting clients from 1 in each period of listening."""
    report = _Report("ClientNumberingFactory names the client on each line, from 1 after every start")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if not _hooks_work(report, factory_class, folder, build=True):
            return report
        log = folder / "clients.log"
        factory = factory_class(log)
        # Three clients at once, speaking out of order; after a restart, one more.
        periods: list[Period] = [(3, [(1, "hi"), (0, "hello"), (2, "hey")]), (1, [(0, "again")])]
        if not _serve(report, factory, periods):
            return report
        got = _log_lines(report, log)
        if got is None:
            return report
        expected = [b"client 2: hi", b"client 1: hello", b"client 3: hey", b"client 1: again"]
        _compare(
            report,
            got,
            expected,
            "clients numbered in the order they connected, and from 1 again after a restart",
            lambda: _client_numbering_cause(got, expected),
        )
    return report


def _client_numbering_cause(got: list[bytes], expected: list[bytes]) -> str:
    numbers, right = _numbers(got, b"client "), _numbers(expected, b"client ")
    assert right is not None
    if numbers is None or len(numbers) != len(right):
        return "Each line should be logged once, as b'client <number>: <line>'"
    if numbers == [n - 1 for n in right]:
        return "The numbering starts at 0: add one to self.clients before giving the number"
    first_period = numbers[:3]
    if len(set(first_period)) == 1:
        if first_period[0] == 0:
            return "Every client got number 0: add one to self.clients for each client in buildProtocol"
        if first_period[0] == 1:
            return (
                "Every client got number 1: a count on the protocol starts afresh for each client. "
                "Count on the factory, in buildProtocol, and give each protocol its number"
            )
        return (
            f"All three clients got number {first_period[0]}, the last one's: the number belongs to each "
            "protocol, so set protocol.number, not an attribute of the factory"
        )
    if first_period == right[:3] and numbers[3] != 1:
        return (
            f"After the restart the first client got number {numbers[3]}: the count went on. "
            "Start it again in startFactory, not in __init__"
        )
    return ""


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("startup_shutdown")
