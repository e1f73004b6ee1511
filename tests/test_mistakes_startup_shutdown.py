"""Notebook 7's checks reject the mistakes beginners make, and their first ✗ line names the cause.

Each wrong attempt is written as a student would write it in the notebook,
on SimpleLogfileFactory and SimpleLoggingProtocol, and checked over real
sockets by the real check.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from support import first_wrong
from twisted.internet.interfaces import IAddress

from writing_servers.exercises.startup_shutdown import (
    check_announcing_logfile,
    check_client_numbering,
    check_line_numbering,
)
from writing_servers.solutions import startup_shutdown as solved
from writing_servers.startup_shutdown import LogfileFactory, SimpleLogfileFactory, SimpleLoggingProtocol


def line_of(method: Callable[..., object], code: str) -> int:
    """The line number in this file of the first line of *method* that holds *code*."""
    lines, start = inspect.getsourcelines(method)
    return start + next(index for index, line in enumerate(lines) if code in line)


# -- exercise 1: AnnouncingLogfileFactory ------------------------------------------------------------


class NeverOpens(SimpleLogfileFactory):
    def startFactory(self) -> None:
        self.log_line(b"# started")

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")
        super().stopFactory()


class NeverCloses(SimpleLogfileFactory):
    def startFactory(self) -> None:
        super().startFactory()
        self.log_line(b"# started")

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")


class StartedBeforeOpening(SimpleLogfileFactory):
    def startFactory(self) -> None:
        self.log_line(b"# started")
        super().startFactory()

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")
        super().stopFactory()


class StartedBeforeOpeningQuietly(LogfileFactory):
    """On the hardened factory, log_line drops a line while the log is closed instead of raising."""

    def startFactory(self) -> None:
        self.log_line(b"# started")
        super().startFactory()

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")
        super().stopFactory()


class StoppedAfterClosing(SimpleLogfileFactory):
    def startFactory(self) -> None:
        super().startFactory()
        self.log_line(b"# started")

    def stopFactory(self) -> None:
        super().stopFactory()
        self.log_line(b"# stopped")


class StoppedAfterClosingQuietly(LogfileFactory):
    def startFactory(self) -> None:
        super().startFactory()
        self.log_line(b"# started")

    def stopFactory(self) -> None:
        super().stopFactory()
        self.log_line(b"# stopped")


class LogsText(SimpleLogfileFactory):
    def startFactory(self) -> None:
        super().startFactory()
        self.log_line("# started")  # type: ignore[arg-type]

    def stopFactory(self) -> None:
        self.log_line("# stopped")  # type: ignore[arg-type]
        super().stopFactory()


class StartedPerClient(SimpleLogfileFactory):
    def buildProtocol(self, addr: IAddress) -> SimpleLoggingProtocol | None:
        self.log_line(b"# started")
        return super().buildProtocol(addr)

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")
        super().stopFactory()


class StartedOnce(SimpleLogfileFactory):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.announced = False

    def startFactory(self) -> None:
        super().startFactory()
        if not self.announced:
            self.log_line(b"# started")
            self.announced = True

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")
        super().stopFactory()


class OpensAfresh(SimpleLogfileFactory):
    def startFactory(self) -> None:
        self.log = open(self.path, "wb")
        self.log_line(b"# started")

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")
        super().stopFactory()


class WritesWithoutLineEnding(SimpleLogfileFactory):
    def startFactory(self) -> None:
        super().startFactory()
        self.log.write(b"# started")

    def stopFactory(self) -> None:
        self.log.write(b"# stopped")
        super().stopFactory()


def test_announcing_solution_passes() -> None:
    """The reference solution passes."""
    report = check_announcing_logfile(solved.AnnouncingLogfileFactory)
    assert report.passed, repr(report)


def test_announcing_without_super_start_names_the_closed_log() -> None:
    """Forgetting super().startFactory(): the first line names the student's line and says to call it."""
    assert first_wrong(check_announcing_logfile(NeverOpens)) == (
        f"NeverOpens.startFactory, line {line_of(NeverOpens.startFactory, 'log_line')}: AttributeError: 'NeverOpens' object has no attribute 'log' — "
        "the log is not open yet: call super().startFactory(), which opens it, before logging"
    )


def test_announcing_without_super_stop_leaves_the_file_open() -> None:
    """Forgetting super().stopFactory(): the file left open after stopFactory fails the check."""
    assert first_wrong(check_announcing_logfile(NeverCloses)) == (
        "after stopFactory the log file (self.log) is still open: "
        "end stopFactory with super().stopFactory(), which closes it"
    )


def test_announcing_started_before_opening() -> None:
    """'# started' logged before the file opens: named at the student's line (raises on the simple factory)."""
    assert first_wrong(check_announcing_logfile(StartedBeforeOpening)) == (
        f"StartedBeforeOpening.startFactory, line {line_of(StartedBeforeOpening.startFactory, 'log_line')}: AttributeError: 'StartedBeforeOpening' object has no "
        "attribute 'log' — the log is not open yet: call super().startFactory(), which opens it, before logging"
    )


def test_announcing_started_before_opening_on_the_quiet_factory() -> None:
    """On a factory that drops lines while closed, the missing line is named, with where to log it."""
    assert first_wrong(check_announcing_logfile(StartedBeforeOpeningQuietly)).startswith(
        "No '# started' line: log it in startFactory, once super().startFactory() has opened the log. "
        "Expected [b'an earlier line', b'# started',"
    )


def test_announcing_stopped_after_closing() -> None:
    """'# stopped' logged after the file closes: the write to a closed file, and what to do."""
    assert first_wrong(check_announcing_logfile(StoppedAfterClosing)) == (
        f"StoppedAfterClosing.stopFactory, line {line_of(StoppedAfterClosing.stopFactory, 'log_line')}: ValueError: write to closed file — "
        "the log is already closed: log before super().stopFactory() closes it"
    )
    assert first_wrong(check_announcing_logfile(StoppedAfterClosingQuietly)).startswith(
        "No '# stopped' line: log it in stopFactory, before super().stopFactory() closes the log."
    )


def test_announcing_text_instead_of_bytes() -> None:
    """A str line: the student's line, the TypeError, and to write bytes."""
    assert first_wrong(check_announcing_logfile(LogsText)) == (
        f'LogsText.startFactory, line {line_of(LogsText.startFactory, "log_line")}: TypeError: can only concatenate str (not "bytes") to str — '
        'the log takes bytes, not text: write b"..." or text.encode()'
    )


def test_announcing_per_client_or_once_is_not_per_period() -> None:
    """'# started' in buildProtocol, or only at the first start, is counted against the periods."""
    assert first_wrong(check_announcing_logfile(StartedPerClient)).startswith(
        "'# started' was logged 3 times in 2 periods of listening with 3 clients: "
        "log it in startFactory, which runs once per period."
    )
    assert first_wrong(check_announcing_logfile(StartedOnce)).startswith(
        "'# started' was logged once in 2 periods of listening with 3 clients: "
        "log it in startFactory, which runs once per period."
    )


def test_announcing_without_a_line_ending() -> None:
    """Writing the mark straight into the file, with no line ending, is named."""
    assert first_wrong(check_announcing_logfile(WritesWithoutLineEnding)).startswith(
        "'# started' shares a line with other text: log it with self.log_line(b'# started'), which ends the line."
    )


def test_announcing_opening_afresh_loses_the_log() -> None:
    """Opening the file itself with 'wb' throws away what the log held."""
    assert first_wrong(check_announcing_logfile(OpensAfresh)).startswith(
        "The log's earlier lines are gone: let super().startFactory() open it (it appends, 'ab')."
    )


# -- exercise 2: LineNumberingProtocol ---------------------------------------------------------------


class CountsOnFactory(SimpleLoggingProtocol):
    def lineReceived(self, line: bytes) -> None:
        self.factory.lines = getattr(self.factory, "lines", 0) + 1  # type: ignore[attr-defined]
        super().lineReceived(b"%d: " % self.factory.lines + line)  # type: ignore[attr-defined]


class ResetsFactoryCountOnConnect(SimpleLoggingProtocol):
    def connectionMade(self) -> None:
        self.factory.lines = 0  # type: ignore[attr-defined]

    def lineReceived(self, line: bytes) -> None:
        self.factory.lines += 1  # type: ignore[attr-defined]
        super().lineReceived(b"%d: " % self.factory.lines + line)  # type: ignore[attr-defined]


class CountsFromZero(SimpleLoggingProtocol):
    def connectionMade(self) -> None:
        self.lines = 0

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(b"%d: " % self.lines + line)
        self.lines += 1


class ResetsEveryLine(SimpleLoggingProtocol):
    def lineReceived(self, line: bytes) -> None:
        self.lines = 0
        self.lines += 1
        super().lineReceived(b"%d: " % self.lines + line)


class FormatsBytesAsText(SimpleLoggingProtocol):
    lines = 0

    def lineReceived(self, line: bytes) -> None:
        self.lines += 1
        super().lineReceived(f"{self.lines}: {line}".encode())


class LogsTextLine(SimpleLoggingProtocol):
    lines = 0

    def lineReceived(self, line: bytes) -> None:
        self.lines += 1
        super().lineReceived(f"{self.lines}: " + line.decode())  # type: ignore[arg-type]


def test_line_numbering_solution_passes() -> None:
    """The reference solution passes."""
    report = check_line_numbering(solved.LineNumberingProtocol)
    assert report.passed, repr(report)


def test_line_numbering_on_the_factory_is_shared() -> None:
    """A count on the factory, reset or not when a client connects, is named as shared by every client."""
    for attempt in (CountsOnFactory, ResetsFactoryCountOnConnect):
        assert first_wrong(check_line_numbering(attempt)).startswith(
            "The second client's first line got number 2: the count is shared by every client. "
            "Keep it on the protocol (self.lines), which Twisted builds once per connection."
        ), attempt.__name__


def test_line_numbering_off_by_one_and_reset_per_line() -> None:
    """Counting from 0, and a count reset on every line, are each named."""
    assert first_wrong(check_line_numbering(CountsFromZero)).startswith(
        "The numbering starts at 0: count the line before logging it. Expected [b'1: hello', b'1: hi',"
    )
    assert first_wrong(check_line_numbering(ResetsEveryLine)).startswith(
        "Every line got number 1: set the count to 0 once per connection (connectionMade), not per line."
    )


def test_line_numbering_text_instead_of_bytes() -> None:
    """An f-string of bytes writes b'...'; joining text to the log's bytes raises at the student's line."""
    assert first_wrong(check_line_numbering(FormatsBytesAsText)).startswith(
        "A line holds b'...': str() or an f-string of bytes writes their repr."
    )
    assert first_wrong(check_line_numbering(LogsTextLine)) == (
        f'LogsTextLine.lineReceived, line {line_of(LogsTextLine.lineReceived, "decode")}: TypeError: can only concatenate str (not "bytes") to str — '
        'the log takes bytes, not text: write b"..." or text.encode()'
    )


# -- exercise 3: ClientNumberingFactory --------------------------------------------------------------


class ResetsInInit(solved.ClientNumberingFactory):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.clients = 0

    def startFactory(self) -> None:
        LogfileFactory.startFactory(self)


class NeverOpensLog(solved.ClientNumberingFactory):
    def startFactory(self) -> None:
        self.clients = 0


class NumberOnFactoryProtocol(SimpleLoggingProtocol):
    factory: NumberOnFactory

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(b"client %d: " % self.factory.clients + line)


class NumberOnFactory(SimpleLogfileFactory):
    protocol = NumberOnFactoryProtocol

    def startFactory(self) -> None:
        super().startFactory()
        self.clients = 0

    def buildProtocol(self, addr: IAddress) -> SimpleLoggingProtocol | None:
        self.clients += 1
        return super().buildProtocol(addr)


class ForgetsReturn(solved.ClientNumberingFactory):
    def buildProtocol(self, addr: IAddress) -> None:  # type: ignore[override]
        self.clients += 1
        protocol = self.protocol()
        protocol.factory = self
        protocol.number = self.clients


class BuildsWithoutFactory(solved.ClientNumberingFactory):
    def buildProtocol(self, addr: IAddress) -> solved.ClientNumberedProtocol:
        self.clients += 1
        protocol = solved.ClientNumberedProtocol()
        protocol.number = self.clients
        return protocol


class NumbersFromZero(solved.ClientNumberingFactory):
    def buildProtocol(self, addr: IAddress) -> solved.LoggingProtocol | None:
        protocol = LogfileFactory.buildProtocol(self, addr)
        if isinstance(protocol, solved.ClientNumberedProtocol):
            protocol.number = self.clients
        self.clients += 1
        return protocol


class NeverCounts(solved.ClientNumberingFactory):
    def buildProtocol(self, addr: IAddress) -> solved.LoggingProtocol | None:
        return LogfileFactory.buildProtocol(self, addr)


class CountedByProtocol(SimpleLoggingProtocol):
    def connectionMade(self) -> None:
        self.clients = 0

    def lineReceived(self, line: bytes) -> None:
        self.clients += 1
        super().lineReceived(b"client %d: " % self.clients + line)


class CountsOnProtocol(SimpleLogfileFactory):
    protocol = CountedByProtocol


def test_client_numbering_solution_passes() -> None:
    """The reference solution passes."""
    report = check_client_numbering(solved.ClientNumberingFactory)
    assert report.passed, repr(report)


def test_client_numbering_reset_in_init() -> None:
    """The count reset in __init__ goes on after a restart: named, with where to reset it."""
    assert first_wrong(check_client_numbering(ResetsInInit)).startswith(
        "After the restart the first client got number 4: the count went on. "
        "Start it again in startFactory, not in __init__."
    )


def test_client_numbering_without_super_start() -> None:
    """Forgetting super().startFactory(): the log never opens, named before any client connects."""
    assert first_wrong(check_client_numbering(NeverOpensLog)) == (
        "NeverOpensLog.startFactory did not open the log: call super().startFactory(), which opens it"
    )


def test_client_numbering_number_kept_on_the_factory() -> None:
    """Every line logged with the factory's latest count: the number belongs to each protocol."""
    assert first_wrong(check_client_numbering(NumberOnFactory)).startswith(
        "All three clients got number 3, the last one's: the number belongs to each protocol, "
        "so set protocol.number, not an attribute of the factory."
    )


def test_client_numbering_build_mistakes() -> None:
    """buildProtocol that returns nothing, or a protocol without its factory, is named as such."""
    assert first_wrong(check_client_numbering(ForgetsReturn)) == (
        "ForgetsReturn.buildProtocol returned None, which refuses the client: return the protocol"
    )
    assert first_wrong(check_client_numbering(BuildsWithoutFactory)) == (
        "the protocol BuildsWithoutFactory.buildProtocol returned has no factory, so it cannot log: "
        "build it with super().buildProtocol(addr), which sets protocol.factory"
    )


def test_client_numbering_off_by_one_and_never_counting() -> None:
    """Numbers from 0, and a count that never moves, are each named."""
    assert first_wrong(check_client_numbering(NumbersFromZero)).startswith(
        "The numbering starts at 0: add one to self.clients before giving the number."
    )
    assert first_wrong(check_client_numbering(NeverCounts)).startswith(
        "Every client got number 0: add one to self.clients for each client in buildProtocol."
    )


def test_client_numbering_count_on_the_protocol() -> None:
    """A count kept on each protocol gives every client 1: named, with where the count belongs."""
    assert first_wrong(check_client_numbering(CountsOnProtocol)).startswith(
        "Every client got number 1: a count on the protocol starts afresh for each client. "
        "Count on the factory, in buildProtocol, and give each protocol its number."
    )
