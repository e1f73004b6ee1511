"""Self-checks for the notebooks' "On your own" exercises.

A check takes the class a student wrote, serves it on the background
reactor, talks to it over loopback like a person would, and returns a
:class:`Report`: one line per fact checked, each right or wrong, with what
was expected and what arrived.  Expected mistakes (a missing method, an
exception in ``dataReceived``, no reply) are reported as lines, never as
tracebacks.  Reference solutions live in :mod:`writing_servers.solutions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.interfaces import IAddress, IReactorFromThreads
from twisted.internet.protocol import Factory
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import implementer

from .. import lab
from .._errors import ErrorLog, describe_exception
from ..clients import Client, ClientError, connect
from ..render import Line, Renderable

__all__ = ["CHECK_TIMEOUT", "Report", "checked_server", "client_of", "described", "reply_to", "trouble"]

#: A starter's ``raise NotImplementedError("...")`` as the lab's error log words it.
_NOT_WRITTEN = re.compile(r"^(?P<where>[\w.]+)(?:, line \d+|\(\))?: NotImplementedError: (?P<message>.*)$")

#: How long a check waits for a reply before calling it missing.
CHECK_TIMEOUT = 1.0


class Report(Renderable):
    """What a check found: a line per fact, ✓ or ✗, and a verdict."""

    def __init__(self, exercise: str) -> None:
        self.title = exercise
        self._results: list[tuple[bool, str]] = []

    def ok(self, text: str) -> None:
        self._results.append((True, text))

    def wrong(self, text: str) -> None:
        self._results.append((False, text))

    def expect(self, condition: bool, right: str, wrong: str) -> bool:
        """Record *right* if *condition* holds, else *wrong*; return *condition*."""
        if condition:
            self.ok(right)
        else:
            self.wrong(wrong)
        return condition

    @property
    def first_problem(self) -> str | None:
        """The first ✗ line's text (the cause, when there is one), or None."""
        return next((text for ok, text in self._results if not ok), None)

    @property
    def passed(self) -> bool:
        return bool(self._results) and all(ok for ok, _ in self._results)

    def assert_passed(self) -> Report:
        """Raise AssertionError with the report's lines unless every check passed (for nbgrader's tests)."""
        if not self.passed:
            raise AssertionError(repr(self))
        return self

    def lines(self) -> list[Line]:
        rows = [Line("note", f"Checking: {self.title}")]
        rows += [Line("good", f"✓ {text}") if ok else Line("bad", f"✗ {text}") for ok, text in self._results]
        failed = sum(1 for ok, _ in self._results if not ok)
        if self.passed:
            rows.append(Line("note", "All checks passed."))
        elif self._results:
            rows.append(Line("note", f"{failed} of {len(self._results)} checks failed; see the hint below."))
        return rows


@implementer(ILogObserver)
class _HangUpOnError(WrappingFactory):
    """The check's factory, wrapped so that every connection can be dropped at once.

    Once the student's code raises, the conversation cannot go on; dropping
    the connections ends the check's waiting clients at once, instead of
    each waiting out ``CHECK_TIMEOUT`` for a reply that will never come.
    """

    def __init__(self, wrappedFactory: Factory) -> None:
        super().__init__(wrappedFactory)
        #: Names of the classes the checked code is made of: errors logged by others are not this check's.
        self.names = _class_names(wrappedFactory)
        #: What the checked code logged as errors while the check ran.
        self.errors = ErrorLog()
        #: Twisted's log context of each of the check's connections (``"Echo,3,127.0.0.1"``).
        self.systems: set[str] = set()

    def registerProtocol(self, protocol: ProtocolWrapper) -> None:
        super().registerProtocol(protocol)
        self.systems.add(str(getattr(protocol.transport, "logstr", "")))

    def buildProtocol(self, addr: IAddress | None) -> ProtocolWrapper | None:  # type: ignore[override]
        protocol = self.wrappedFactory.buildProtocol(addr)
        if protocol is None:
            return None  # None refuses the connection
        self.names |= _class_names(protocol)
        return self.protocol(self, protocol)

    def hang_up_all(self) -> None:
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()

    def __call__(self, event: dict[str, Any]) -> None:
        """Observe a log event; runs wherever it was logged (for a protocol's error, the reactor thread)."""
        system = str(event.get("log_system") or event.get("system") or "-")
        if ("," in system and system not in self.systems) or system.split(",")[0] not in {
            "-",
            "",
            *self.names,
        }:
            return  # logged in another server's connection, not the checked code's
        self.errors(event)
        if event.get("log_failure") is not None or event.get("isError"):
            cast(IReactorFromThreads, reactor).callFromThread(self.hang_up_all)


def _class_names(built: object) -> set[str]:
    """The classes of *built* (a factory or protocol) and of what it wraps, with their ancestors."""
    names: set[str] = set()
    while built is not None:
        classes = [type(built), getattr(built, "protocol", None)]
        names |= {ancestor.__name__ for cls in classes if isinstance(cls, type) for ancestor in cls.__mro__}
        built = getattr(built, "wrappedProtocol", None) or getattr(built, "wrappedFactory", None)
    return names


@contextmanager
def checked_server(report: Report, factory: Factory) -> Iterator[lab.Server]:
    """Serve *factory* for a check; what goes wrong in the conversation becomes a ✗ line.

    The first cause comes first: an error the student's code raised, or a
    callback that blocked the reactor, is reported in place of the ✗ lines it
    caused (a client that got no reply, a reset after the check hung up).
    Without one, a client that waited in vain ends the check with a line
    naming the message that went unanswered.
    """
    lab.start()  # first: starting replays what Twisted logged before, which is not this check's business
    lab.errors().take_new()  # nor are errors from earlier cells
    wrapped = _HangUpOnError(factory)
    globalLogPublisher.addObserver(wrapped)
    server = lab.listen(cast(Factory, wrapped), name=f"check: {report.title}")
    stopped: str | None = None
    before = len(report._results)
    try:
        with lab.watching_for_blocks() as watch:
            try:
                yield server
            except (ClientError, lab.LabTimeout) as error:
                stopped = f"the conversation stopped: {error}"
    finally:
        blocked = watch.culprit if watch is not None else None
        if blocked is not None:
            lab.call(lambda: None, timeout=BLOCKED_WAIT, what="the reactor to finish the blocking call")
        try:
            server.stop()  # connectionLost runs now: what it raises is the checked code's too
        finally:
            globalLogPublisher.removeObserver(wrapped)
        lab.errors().take_new()  # shown here, if they are the checked code's, not again after the cell
        _report_causes(report, before, blocked, stopped, wrapped.errors.entries())


#: How long a check waits for a blocked reactor to come back before giving up.
BLOCKED_WAIT = 30.0


def _report_causes(
    report: Report, before: int, blocked: str | None, stopped: str | None, errors: list[str]
) -> None:
    """Replace the conversation's ✗ lines by their causes, if the student's code caused them."""
    unwritten = [match for entry in errors if (match := _NOT_WRITTEN.match(entry))]
    causes = list(dict.fromkeys(errors))
    if blocked is not None:
        causes.insert(
            0,
            f"{blocked}: while one callback waits, no connection is served — "
            "never sleep or wait in a callback; reactor.callLater schedules later work",
        )
    if unwritten:  # what the clients saw depends on when the hang-up landed: keep only what is certain
        del report._results[before:]
        for match in unwritten:
            report.wrong(f"{match.group('where')} is not written yet: {match.group('message')}")
        return
    if causes:  # the ✗ lines after a cause are its consequences
        report._results[before:] = [result for result in report._results[before:] if result[0]]
        for cause in causes:
            report.wrong(cause)
    elif stopped is not None:
        report.wrong(stopped)


def described(error: BaseException) -> str:
    """``TypeError: message`` for a report line, or the bare class name when there is no message."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def trouble(error: Exception, name: str, call: str) -> str:
    """The report line for an exception from the student's code called as *call*.

    A starter's ``NotImplementedError`` means *name* is simply not written yet.
    """
    if isinstance(error, NotImplementedError):
        return f"{name} is not written yet ({error})"
    return describe_exception(error, otherwise=call)


def client_of(server: lab.Server) -> Client:
    return connect(server, timeout=CHECK_TIMEOUT, title="check")


def reply_to(client: Client, line: str) -> str:
    """Send *line* and return the line that comes back (a ClientError ends the check)."""
    client.send_line(line)
    return client.read_line()
