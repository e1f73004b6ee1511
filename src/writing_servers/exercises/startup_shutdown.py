"""Checks for notebook 7's exercises.

Each check serves the student's class with a log file in a temporary folder
of its own, sends lines over loopback, stops the server (so that
``stopFactory`` has run) and compares the whole file with what it should
hold.  Hooks that raise are found first, by calling ``doStart`` and
``doStop`` by hand as a port would, so that a broken hook is reported as a
line rather than failing the whole listen or stop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.protocol import Factory

from .. import lab
from ..startup_shutdown import LogfileFactory, LoggingProtocol, SimpleLogfileFactory, SimpleLoggingProtocol
from . import Report, checked_server, client_of
from ._solutions import solution_for

__all__ = ["check_announcing_logfile", "check_client_numbering", "check_line_numbering", "solution"]

#: The notebook's exercises build on SimpleLogfileFactory; the solutions on the hardened LogfileFactory.
AnyLogfileFactory = type[SimpleLogfileFactory] | type[LogfileFactory]

#: A period of listening: the clients that connect during it, one after the other, and the lines each sends.
Period = list[list[str]]


def _hooks_work(report: Report, factory_class: AnyLogfileFactory, folder: Path) -> bool:
    """Call startFactory and stopFactory once, as a port would; report (and return False) if one raises."""
    try:
        factory = factory_class(folder / "probe.log")
    except Exception as error:
        report.wrong(f"making the factory with a file name raised {type(error).__name__}: {error}")
        return False
    for method, hook in [("doStart", "startFactory"), ("doStop", "stopFactory")]:
        try:
            getattr(factory, method)()
        except Exception as error:
            report.wrong(f"{hook}() raised {type(error).__name__}: {error}")
            return False
    return True


def _serve(report: Report, factory: Factory[Any], periods: list[Period]) -> bool:
    """Listen once per period; in each, clients connect one after the other and send their lines.

    Returns False (with a ✗ line) if a conversation could not take place.
    """
    for period in periods:
        with checked_server(report, factory) as server:
            for number, lines in enumerate(period, 1):
                with client_of(server) as client:
                    try:
                        for line in lines:
                            client.send_line(line)
                    except OSError as error:
                        report.wrong(f"the server hung up while a client was sending: {error}")
                        return False
                # Accepted, read and closed: not still waiting in the listen backlog, where
                # stopping the server would drop it unread (wait_until_idle counts only accepted ones).
                server.wait_for_event(f"#{number} connectionLost")
                raised = lab.errors().take_new()
                if raised:  # one report of each error is enough; later clients would repeat it
                    for entry in dict.fromkeys(raised):
                        report.wrong(f"your code raised an error: {entry}")
                    return False
        if _wrongs(report):  # the server raised an error, or a client waited in vain
            return False
    return True


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


def _expect_lines(
    report: Report, got: list[bytes], expected: list[bytes], right: str, hint: str = ""
) -> None:
    report.expect(
        got == expected, f"{right}: {expected!r}", f"expected {expected!r}, the log holds {got!r}{hint}"
    )


def check_announcing_logfile(factory_class: AnyLogfileFactory) -> Report:
    """Exercise 1: '# started' after opening, '# stopped' before closing, in each period of listening."""
    report = Report("AnnouncingLogfileFactory marks each start and stop in the log")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if not _hooks_work(report, factory_class, folder):
            return report
        log = folder / "announced.log"
        if not _serve(report, factory_class(log), [[["first run"]], [["second run"]]]):
            return report
        got = _log_lines(report, log)
        if got is None:
            return report
        hint = ""
        if b"# started" in got and b"# stopped" not in got:
            hint = " ('# stopped' must be logged before the parent's stopFactory closes the file)"
        elif b"# stopped" in got and b"# started" not in got:
            hint = " ('# started' must be logged after the parent's startFactory has opened the file)"
        _expect_lines(
            report, got[:3], [b"# started", b"first run", b"# stopped"], "the first period is marked", hint
        )
        _expect_lines(
            report, got[3:], [b"# started", b"second run", b"# stopped"], "listening again, so is the second"
        )
    return report


def check_line_numbering(protocol: type[SimpleLoggingProtocol] | type[LoggingProtocol]) -> Report:
    """Exercise 2: lines logged as '<n>: <line>', n counting each connection's lines from 1."""
    report = Report("LineNumberingProtocol numbers each client's lines from 1")
    with tempfile.TemporaryDirectory() as name:
        log = Path(name) / "numbered.log"
        factory: Factory[Any] = LogfileFactory(log)  # its log_line serves either kind of protocol
        factory.protocol = protocol
        if not _serve(report, factory, [[["hello", "world"], ["again"]]]):
            return report
        got = _log_lines(report, log)
        if got is None:
            return report
        hint = ""
        if any(line.endswith(b"\r") for line in got):
            hint = " (the CR of each CRLF line was kept: let the parent's lineReceived log the line)"
        _expect_lines(report, got[:2], [b"1: hello", b"2: world"], "the first client's lines", hint)
        hint = ""
        if got[2:] == [b"3: again"]:
            hint = " (the second client went on from the first one's count: keep the count on the protocol)"
        _expect_lines(report, got[2:], [b"1: again"], "a second client starts again at 1", hint)
    return report


def check_client_numbering(factory_class: AnyLogfileFactory) -> Report:
    """Exercise 3: 'client <k>: <line>', k counting clients from 1 in each period of listening."""
    report = Report("ClientNumberingFactory names the client on each line, from 1 after every start")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if not _hooks_work(report, factory_class, folder):
            return report
        log = folder / "clients.log"
        if not _serve(report, factory_class(log), [[["hello"], ["hi"]], [["again"]]]):
            return report
        got = _log_lines(report, log)
        if got is None:
            return report
        hint = ""
        if len(got) >= 2 and got[0].split(b":")[0] == got[1].split(b":")[0]:
            hint = " (both clients got the same number: count each new client in buildProtocol)"
        _expect_lines(
            report, got[:2], [b"client 1: hello", b"client 2: hi"], "two clients, numbered 1 and 2", hint
        )
        hint = ""
        if got[2:] == [b"client 3: again"]:
            hint = " (the count went on after the restart: reset it in startFactory, not in __init__)"
        _expect_lines(
            report, got[2:], [b"client 1: again"], "after listening again, numbering starts at 1", hint
        )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("startup_shutdown")
