"""Notice a callback that blocks the reactor (``time.sleep`` in ``dataReceived``), and name it.

While the reactor thread runs one callback, no other connection is served
and no timer fires.  A watcher thread asks the reactor for a heartbeat; when
none comes for :data:`AFTER` seconds, it looks at what the reactor thread is
running, and if it is the student's own code, twice at the same line, that
line is the culprit.
"""

from __future__ import annotations

import linecache
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._errors import place_in_code, students_frame

__all__ = ["AFTER", "BlockWatch", "watching"]

#: How long the reactor may go without a heartbeat before the watcher looks at what it runs.
AFTER = 0.5
_POLL = 0.05


class BlockWatch:
    """What the watcher found: :attr:`culprit` is a line for a report, or None."""

    def __init__(self, reactor: Any, thread: threading.Thread) -> None:
        self.culprit: str | None = None
        self._reactor = reactor
        self._thread = thread
        self._done = threading.Event()
        self._answered = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="reactor-block-watch", daemon=True)

    def _watch(self) -> None:
        seen: tuple[str, float] | None = None  # (place, first seen at)
        while not self._done.is_set() and self.culprit is None:
            self._answered.clear()
            asked = time.monotonic()
            self._reactor.callFromThread(self._answered.set)
            while not self._answered.wait(_POLL):
                if self._done.is_set():
                    return
                if time.monotonic() - asked < AFTER / 2:
                    continue
                place = self._students_line()
                if place is None:
                    seen = None
                elif seen is None or seen[0] != place:
                    seen = (place, time.monotonic())
                elif time.monotonic() - asked >= AFTER:
                    self.culprit = place
                    return
            seen = None
            self._done.wait(_POLL)

    def _students_line(self) -> str | None:
        frame = sys._current_frames().get(self._thread.ident or -1)
        if frame is None:
            return None
        stack = traceback.extract_stack(frame)
        frames = [(f.name, f.filename, f.lineno or 0) for f in stack]
        index = students_frame(frames)
        if index is None:
            return None
        place = place_in_code(frames[: index + 1])
        innermost = stack[index]
        code = linecache.getline(innermost.filename, innermost.lineno or 0).split("  #")[0].strip()
        return f"{place} blocked the reactor ({code})" if code else f"{place} blocked the reactor"

    def stop(self) -> None:
        self._done.set()
        self._watcher.join(AFTER + 1.0)


@contextmanager
def watching(reactor: Any, thread: threading.Thread | None) -> Iterator[BlockWatch | None]:
    """Watch the reactor *thread* while the block runs (None if there is no reactor thread)."""
    if thread is None or not thread.is_alive():
        yield None
        return
    watch = BlockWatch(reactor, thread)
    watch._watcher.start()
    try:
        yield watch
    finally:
        watch.stop()
