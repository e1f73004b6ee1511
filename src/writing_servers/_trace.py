"""Record what happens inside a server, from the reactor thread, for the main thread to show.

:class:`TracingFactory` wraps any factory (Twisted's own
:class:`~twisted.protocols.policies.WrappingFactory`) so that every protocol
callback and every write passes through a recorder on its way.  Recording
never prints: the reactor thread only appends to a locked list, and a cell
shows the :class:`Trace` once the operation it waited for has finished.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python import log
from twisted.python.failure import Failure

from .render import Line, Renderable

#: Events kept per server; older ones are dropped (and counted) past this.
MAX_EVENTS = 5000
#: Bytes shown of one dataReceived/write before it is summarised.
SHOW_BYTES = 60


def describe(data: bytes) -> str:
    """``b'...'`` for short data; a length and a prefix for long data."""
    if len(data) <= SHOW_BYTES:
        return repr(data)
    return f"{data[:24]!r}… ({len(data):,} bytes)"


def innermost(protocol: Any) -> Any:
    """The protocol inside any wrappers (``twisted.protocols.policies``) around it."""
    while isinstance(protocol, ProtocolWrapper):
        protocol = protocol.wrappedProtocol
    return protocol


def innermost_factory(factory: Any) -> Any:
    """The factory inside any wrapping factories around it."""
    while isinstance(factory, WrappingFactory):
        factory = factory.wrappedFactory
    return factory


class Trace(Renderable):
    """Server-side events in the order they happened (thread-safe)."""

    def __init__(self, title: str = "server") -> None:
        self.title = title
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._events: deque[str] = deque(maxlen=MAX_EVENTS)
        self._dropped = 0
        self._waiting = 0  # threads in wait_for: only they need waking

    def add(self, text: str) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self._dropped += 1
            self._events.append(text)
            if self._waiting:
                self._changed.notify_all()

    def events(self) -> list[str]:
        with self._lock:
            return list(self._events)

    def wait_for(self, text: str, timeout: float) -> bool:
        """Block until an event containing *text* is recorded (or was); False on timeout."""
        with self._changed:
            self._waiting += 1
            try:
                return self._changed.wait_for(lambda: any(text in event for event in self._events), timeout)
            finally:
                self._waiting -= 1

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._dropped = 0

    def lines(self) -> list[Line]:
        with self._lock:
            dropped = self._dropped
            events = list(self._events)
        head = [Line("note", f"[{dropped:,} earlier events not kept]")] if dropped else []
        return head + [Line("event", text) for text in events]


class TracingProtocol(ProtocolWrapper):
    """Pass every call through to the wrapped protocol, noting it first."""

    factory: TracingFactory

    def __init__(self, factory: TracingFactory, wrappedProtocol: Any, number: int) -> None:
        super().__init__(factory, wrappedProtocol)
        self.number = number

    def logPrefix(self) -> str:
        """Log as the wrapped protocol does, so errors name the student's class, not ours."""
        wrapped = innermost(self.wrappedProtocol)
        prefix = getattr(wrapped, "logPrefix", None)
        return str(prefix()) if callable(prefix) else type(wrapped).__name__

    def _note(self, text: str) -> None:
        self.factory.note(f"#{self.number} {text}")

    def makeConnection(self, transport: Any) -> None:
        try:
            super().makeConnection(transport)
        except Exception:
            # Twisted's accept loop would log this under our wrapper factory's
            # class name; log it under the protocol's, as for its other events.
            log.callWithContext({"system": self.logPrefix()}, log.err)

    def connectionMade(self) -> None:
        self._note("connectionMade()")

    # The per-chunk events are on every byte's path (make bench holds an Echo through them within 1.05 x
    # of bare Twisted): they describe their bytes only when there is a trace, in one call.
    def dataReceived(self, data: bytes) -> None:
        trace = self.factory.trace
        if trace is not None:
            trace.add(f"#{self.number} dataReceived({describe(data)})")
        self.wrappedProtocol.dataReceived(data)

    def write(self, data: bytes) -> None:
        trace = self.factory.trace
        if trace is not None:
            trace.add(f"#{self.number} write({describe(data)})")
        self.transport.write(data)  # type: ignore[union-attr]

    def writeSequence(self, data: Any) -> None:
        if self.factory.trace is not None:
            self._note(f"write({describe(b''.join(data))})")
        super().writeSequence(data)

    def loseConnection(self) -> None:
        self._note("loseConnection()")
        super().loseConnection()

    def abortConnection(self) -> None:
        self._note("abortConnection()")
        self.disconnecting = 1
        self.transport.abortConnection()  # type: ignore[union-attr]

    def __conform__(self, interface: Any) -> Any:
        # Twisted asks the protocol whether it handles half-closed connections
        # (IHalfCloseableProtocol(protocol, None)); answer as the wrapped one would.
        if interface is IHalfCloseableProtocol and IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            return self
        return None

    def readConnectionLost(self) -> None:
        self._note("readConnectionLost()")
        IHalfCloseableProtocol(self.wrappedProtocol).readConnectionLost()

    def writeConnectionLost(self) -> None:
        self._note("writeConnectionLost()")
        IHalfCloseableProtocol(self.wrappedProtocol).writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._note(f"connectionLost({type(reason.value).__name__})")
        try:
            super().connectionLost(reason)
        except Exception:
            # An aborted connection's connectionLost runs from a timed call with
            # no log context: log under the protocol's name, as for other events.
            log.callWithContext({"system": self.logPrefix()}, log.err)
        finally:  # the connection is gone even if the protocol's connectionLost raised
            self.factory.connection_closed()


class TracingFactory(WrappingFactory[TracingProtocol]):
    """Wrap *wrapped* so that its protocols' events land in :attr:`trace`."""

    protocol = TracingProtocol
    noisy = False  # Twisted would otherwise log "Starting factory" from the reactor thread

    def __init__(self, wrapped: Factory, trace: Trace | None = None) -> None:
        super().__init__(wrapped)
        self.trace = trace
        self.connections_made = 0
        self._waiters: list[tuple[int, Deferred[None]]] = []

    def logPrefix(self) -> str:
        """Errors raised while accepting (say, in connectionMade) name the protocol being served."""
        factory = innermost_factory(self.wrappedFactory)
        protocol = getattr(factory, "protocol", None)
        return protocol.__name__ if isinstance(protocol, type) else str(factory.logPrefix())

    def note(self, text: str) -> None:
        if self.trace is not None:
            self.trace.add(text)

    def doStart(self) -> None:
        if self.wrappedFactory.numPorts == 0:
            self.note("startFactory()")
        super().doStart()

    def doStop(self) -> None:
        if self.wrappedFactory.numPorts == 1:
            self.note("stopFactory()")
        super().doStop()

    def buildProtocol(self, addr: IAddress | None) -> TracingProtocol | None:  # type: ignore[override]
        try:
            wrapped = self.wrappedFactory.buildProtocol(addr)
        except Exception as error:
            # As with connectionMade: log under the factory's name, not our wrapper's.
            log.callWithContext({"system": type(innermost_factory(self.wrappedFactory)).__name__}, log.err)
            self.note(f"buildProtocol() raised {type(error).__name__}; connection closed")
            return None
        if wrapped is None:
            self.note("buildProtocol() refused the connection")
            return None
        self.connections_made += 1
        self.note(f"#{self.connections_made} buildProtocol() -> {type(innermost(wrapped)).__name__}")
        return TracingProtocol(self, wrapped, self.connections_made)

    @property
    def open_connections(self) -> int:
        return len(self.protocols)

    def when_at_most(self, count: int) -> Deferred[None]:
        """A Deferred that fires once at most *count* connections are open (at once if so now)."""
        waiter: Deferred[None] = Deferred(lambda d: self._waiters.remove((count, d)))
        if len(self.protocols) <= count:
            waiter.callback(None)
        else:
            self._waiters.append((count, waiter))
        return waiter

    def connection_closed(self) -> None:
        ready = [(count, d) for count, d in self._waiters if len(self.protocols) <= count]
        for entry in ready:
            self._waiters.remove(entry)
            entry[1].callback(None)

    def abort_all(self) -> None:
        """Drop every open connection at once (for cleaning up a lab)."""
        for wrapper in list(self.protocols):
            wrapper.transport.abortConnection()
