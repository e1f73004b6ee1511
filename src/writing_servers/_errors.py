"""Catch what Twisted logs as an error, so the main thread can show it in the right cell.

Before anyone calls ``globalLogBeginner.beginLoggingTo``, Twisted writes
critical events (an exception in ``dataReceived``, a lost Deferred failure)
straight to the ``sys.stderr`` it saw at import time.  In a kernel that
write happens on the reactor thread and lands in whichever cell ran last.
:func:`capture` begins logging to our recorder instead, without redirecting
standard output and without taking over :mod:`warnings`.
"""

from __future__ import annotations

import ast
import linecache
import os
import re
import sysconfig
import threading
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, cast

import twisted
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
    """``Echo.dataReceived, line 4: ZeroDivisionError: division by zero``: the student's line, no paths.

    Where the student's own code is on the stack, the line names its
    innermost frame there, never a Twisted-internal one; otherwise the
    protocol Twisted's log names, and the function that raised.
    """
    frames = [(name, filename, line) for name, filename, line, *_ in failure.frames]
    why = event.get("why")
    context = f" ({why})" if why and why != "Unhandled Error" else ""
    where = place_in_code(frames)
    if where is None:
        system = _system_name(event)
        function = f"{frames[-1][0]}()" if frames else ""
        where = ": ".join(part for part in (system, function) if part) or None
    return describe(cast(BaseException, failure.value), where) + context


def describe_exception(error: BaseException, otherwise: str | None = None) -> str:
    """The one line for an exception caught around a call into the student's code.

    It names the student's line; *otherwise* (the call made) if the
    exception came from deeper code only.
    """
    frames = [(f.name, f.filename, f.lineno or 0) for f in traceback.extract_tb(error.__traceback__)]
    return describe(error, place_in_code(frames) or otherwise)


def describe(error: BaseException, where: str | None) -> str:
    """``where: Type: message — what to do``; the advice only for mistakes it knows."""
    text = str(error)
    what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    advice = advice_for(what)
    line = f"{where}: {what}" if where else what
    return f"{line} — {advice}" if advice else line


#: Mistakes beginners make with Twisted and bytes, and what to do about each.
_ADVICE = [
    (r"^TypeError: Data must be bytes", 'write b"..." or text.encode()'),
    (r"^TypeError: can't concat str to bytes", 'this joins bytes and text: write b"..." or text.encode()'),
    (
        r'^TypeError: can only concatenate str \(not "bytes"\) to str',
        "this joins text and bytes: decode the bytes first (data.decode())",
    ),
    (r"^TypeError: a bytes-like object is required, not 'str'", 'pass bytes here: b"..." or text.encode()'),
    (
        r"^TypeError: sequence item \d+: expected a bytes-like object, str found",
        'pass bytes here: b"..." or text.encode()',
    ),
    (r"^TypeError: .*must be str, not bytes", "decode the bytes first: data.decode()"),
    (
        r"^AttributeError: 'NoneType' object has no attribute 'write'",
        "self.transport is None here: write only between connectionMade and connectionLost",
    ),
    (
        r"^UnicodeDecodeError: .*unexpected end of data",
        "a character was split between two dataReceived calls: work on the bytes, "
        "or decode with codecs.getincrementaldecoder('utf-8')()",
    ),
    (
        r"^UnicodeDecodeError: 'utf-8' codec",
        'these bytes are not UTF-8 text: decode with errors="replace", or keep them as bytes',
    ),
    (r"^RecursionError", "a method calls itself: call the parent's with super()"),
]


def advice_for(what: str) -> str | None:
    for pattern, advice in _ADVICE:
        if re.search(pattern, what):
            return advice
    return None


def place_in_code(frames: Sequence[tuple[str, str, int]]) -> str | None:
    """``Class.method, line N`` for the innermost frame of the student's code, or None.

    The student's code is any that is not Python's own, an installed
    package's, or this course's runtime (its reference solutions count as
    the student's): a notebook cell, a script, a test.
    """
    index = students_frame(frames)
    if index is None:
        return None
    name, filename, line = frames[index]
    qualified = _qualified(name, filename, line)
    return f"{qualified}, line {line}" if qualified else f"line {line}"


def students_frame(frames: Sequence[tuple[str, str, int]]) -> int | None:
    """The index in *frames* (outermost first) of the innermost one in the student's code."""
    for index in range(len(frames) - 1, -1, -1):
        if _is_students(frames[index][1]):
            return index
    return None


def _library_folders() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    folders.add(os.path.dirname(os.path.dirname(twisted.__file__)))
    folders.add(os.path.dirname(os.path.abspath(__file__)))  # this course's runtime
    return tuple(os.path.join(os.path.realpath(folder), "") for folder in folders)


_LIBRARIES = _library_folders()
_SOLUTIONS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "solutions", "")


def _is_students(filename: str) -> bool:
    if filename.startswith("<") and not filename.startswith("<ipython-input"):
        return filename not in ("<frozen importlib._bootstrap>", "<string>")
    path = os.path.realpath(filename)
    if path.startswith(_SOLUTIONS):
        return True
    return not path.startswith(_LIBRARIES)


def _qualified(name: str, filename: str, line: int) -> str:
    """*name* with its enclosing classes (``Echo.dataReceived``), read from the source the line is in."""
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return name
    chain: list[str] = []
    nodes: list[ast.stmt] = list(tree.body)
    while nodes:
        for node in nodes:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and (
                node.lineno <= line <= (node.end_lineno or node.lineno)
            ):
                chain.append(node.name)
                nodes = list(node.body)
                break
        else:
            break
    if name == "<module>":
        return ""
    if not chain or chain[-1] != name:
        return name
    return ".".join(chain)


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
