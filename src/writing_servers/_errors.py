"""Catch what Twisted logs as an error, so the main thread can show it in the right cell.

Before anyone calls ``globalLogBeginner.beginLoggingTo``, Twisted writes
critical events (an exception in ``dataReceived``, a lost Deferred failure)
straight to the ``sys.stderr`` it saw at import time.  In a kernel that
write happens on the reactor thread and lands in whichever cell ran last.
:func:`capture` begins logging to our recorder instead, without redirecting
standard output and without taking over :mod:`warnings`.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner
from twisted.python.failure import Failure
from zope.interface import implementer

from .render import Line, Renderable

_started = False
_start_lock = threading.Lock()


@implementer(ILogObserver)
class ErrorLog(Renderable):
    """Errors and warnings logged by Twisted, newest last (thread-safe)."""

    title = "server errors"

    def __init__(self, limit: int = 200) -> None:
        self._lock = threading.Lock()
        self._entries: list[str] = []
        self._shown = 0
        self._limit = limit

    def __call__(self, event: dict[str, Any]) -> None:
        """Observe one log event (runs on whatever thread logged it)."""
        level = event.get("log_level")
        failure = event.get("log_failure") or event.get("failure")
        if failure is None and (level is None or level < LogLevel.warn):
            return
        entry = describe_failure(failure, event) if failure is not None else _plain(event)
        with self._lock:
            self._entries.append(entry)
            del self._entries[: -self._limit]
            self._shown = min(self._shown, len(self._entries))

    def entries(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def take_new(self) -> list[str]:
        """Entries not returned by an earlier call."""
        with self._lock:
            new = self._entries[self._shown :]
            self._shown = len(self._entries)
            return new

    def lines(self) -> list[Line]:
        return [Line("error", entry) for entry in self.entries()]


def describe_failure(failure: Failure, event: dict[str, Any]) -> str:
    """``Echo: dataReceived() raised ZeroDivisionError: division by zero``, no file paths."""
    where = _system_name(event)
    function = failure.frames[-1][0] if failure.frames else ""
    raised = f"{function}() raised " if function else ""
    why = event.get("why")
    context = f" ({why})" if why and why != "Unhandled Error" else ""
    message = f"{raised}{type(failure.value).__name__}: {failure.getErrorMessage()}{context}"
    return f"{where}: {message}" if where else message


def _system_name(event: dict[str, Any]) -> str:
    """The protocol's name from Twisted's log context (``"Echo,0,127.0.0.1"``)."""
    system = str(event.get("log_system") or event.get("system") or "")
    name = system.split(",")[0].strip()
    return "" if name in ("", "-") else name


def _plain(event: dict[str, Any]) -> str:
    return formatEvent(event)


def capture(log: ErrorLog) -> None:
    """Send Twisted's log events to *log* from now on (idempotent)."""
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
        keep_showwarning = warnings.showwarning
        globalLogBeginner.beginLoggingTo([log], discardBuffer=False, redirectStandardIO=False)
        # Twisted would route Python warnings into its log; leave them where students see them.
        warnings.showwarning = keep_showwarning
