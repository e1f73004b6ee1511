"""A Twisted reactor on a background thread, for notebooks.

The kernel's main thread stays free for cells; servers run on one daemon
thread named ``twisted-reactor``.  The rules this module keeps:

* :func:`start` is idempotent and returns once the reactor is iterating.
  A reactor that was shut down cannot run again: :func:`start` says so.
* Every cross-thread call (:func:`call`, :func:`listen`, :meth:`Server.stop`)
  has a timeout and says what it was waiting for when it gives up.
* Nothing here prints from the reactor thread.  Server events are recorded
  and shown by the main thread; errors Twisted logs are collected and printed
  by the main thread at the end of the cell that was running.
* :func:`listen` binds ``127.0.0.1`` on a free port unless told otherwise and
  remembers the server under a name; listening again under that name first
  stops the earlier server, so re-running a cell never leaks a port.  On a
  shared machine (a JupyterHub) it binds a loopback address of this user's
  own instead: see :func:`loopback_host`.

It knows nothing about any section of the course.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar, overload

from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from ._blocking import BlockWatch, watching
from ._errors import ErrorLog, capture
from ._trace import Trace, TracingFactory
from .render import Renderable, side_by_side

__all__ = [
    "DEFAULT_TIMEOUT",
    "LabTimeout",
    "ReactorStopped",
    "Server",
    "call",
    "clean_up",
    "errors",
    "listen",
    "loopback_host",
    "running",
    "servers",
    "show",
    "shutdown",
    "start",
    "stop_all",
]

DEFAULT_TIMEOUT = 10.0
#: Extra time the main thread waits beyond a call's own timeout, so the
#: reactor-side timeout (which cancels the work cleanly) normally fires first.
_GRACE = 2.0
THREAD_NAME = "twisted-reactor"
DEFAULT_LOOPBACK = "127.0.0.1"
#: Names the loopback address this user's servers bind; a classroom hub's
#: spawner sets it (jupyterhub_config.py), and 127.0.0.1 switches the choice off.
LOOPBACK_VARIABLE = "WRITING_SERVERS_LOOPBACK"

T = TypeVar("T")


class LabTimeout(TimeoutError):
    """A cross-thread call did not finish in time."""


class ReactorStopped(RuntimeError):
    """The background reactor has stopped; Twisted reactors cannot restart."""


_lock = threading.RLock()
_thread: threading.Thread | None = None
_run_error: BaseException | None = None
_servers: dict[str, Server] = {}
_errors = ErrorLog()


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


# -- where servers listen ----------------------------------------------------


def loopback_host() -> str:
    """The address :func:`listen` binds when no endpoint is named.

    ``127.0.0.1`` on a machine of one's own.  On a shared machine every user's
    servers would share it, so there it is an address of this user's own in
    127.0.0.0/8: the one ``WRITING_SERVERS_LOOPBACK`` names, or, in a
    JupyterHub session (``JUPYTERHUB_USER`` is set), one derived from the user
    name.  A classmate's ``nc 127.0.0.1 PORT``, or Jupyter picking ports for a
    kernel, then cannot land in this user's server by accident.  Where the
    system does not route all of 127.0.0.0/8 to loopback (macOS has only
    127.0.0.1) the address cannot be bound, and this falls back to 127.0.0.1.
    """
    chosen = os.environ.get(LOOPBACK_VARIABLE, "").strip()
    if chosen:
        _check_loopback(chosen)
    else:
        user = os.environ.get("JUPYTERHUB_USER", "")
        chosen = _loopback_for_user(user) if user else DEFAULT_LOOPBACK
    return chosen if _can_bind(chosen) else DEFAULT_LOOPBACK


def _check_loopback(host: str) -> None:
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    try:
        address = ipaddress.IPv4Address(host)
        fits = address in loopback and address not in (loopback.network_address, loopback.broadcast_address)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{LOOPBACK_VARIABLE}={host!r} is not a loopback address such as 127.100.0.7; "
            f"fix it, or set it to {DEFAULT_LOOPBACK} to use the machine's shared one"
        )


def _loopback_for_user(user: str) -> str:
    """127.A.B.C from a hash of *user*: A in 1-254, so never 127.0.0.x; C in 1-254."""
    digest = hashlib.sha256(user.encode()).digest()
    return f"127.{1 + digest[0] % 254}.{digest[1]}.{1 + digest[2] % 254}"


@functools.lru_cache(maxsize=8)
def _can_bind(host: str) -> bool:
    if host == DEFAULT_LOOPBACK:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


# -- the reactor thread ---------------------------------------------------


def start(timeout: float = DEFAULT_TIMEOUT) -> None:
    """Run the reactor on a daemon thread; return once it is iterating.

    Safe to call any number of times.
    """
    global _thread, _run_error
    with _lock:
        if _thread is not None:
            if _thread.is_alive():
                return
            raise ReactorStopped(_stopped_message())
        reactor = _reactor()
        if reactor.running:
            raise RuntimeError(
                "a Twisted reactor is already running in this process, started by something "
                "other than writing_servers.lab; restart the kernel to use the lab runtime"
            )
        capture(_errors)
        _install_cell_hook()
        iterating = threading.Event()
        reactor.callWhenRunning(iterating.set)

        def run() -> None:
            global _run_error
            try:
                reactor.run(installSignalHandlers=False)
            except BaseException as error:  # reported to the main thread by start()
                _run_error = error
            finally:
                iterating.set()

        _run_error = None
        _thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
        _thread.start()
        if not iterating.wait(timeout):
            raise LabTimeout(f"the reactor did not start iterating within {timeout:g} s")
        if _run_error is not None or not _thread.is_alive():  # run() failed: it set the error first
            raise ReactorStopped(_stopped_message())


def _stopped_message() -> str:
    cause = f" ({type(_run_error).__name__}: {_run_error})" if _run_error else ""
    return (
        f"the background reactor has stopped{cause}, and a Twisted reactor cannot be "
        "started twice in one process: restart the kernel (Kernel > Restart Kernel) to get a new one"
    )


def running() -> bool:
    """Whether the background reactor thread is alive."""
    return _thread is not None and _thread.is_alive()


@overload
def call(
    fn: Callable[..., defer.Deferred[T]],
    *args: Any,
    timeout: float = ...,
    what: str | None = ...,
    **kwargs: Any,
) -> T: ...


@overload
def call(
    fn: Callable[..., T],
    *args: Any,
    timeout: float = ...,
    what: str | None = ...,
    **kwargs: Any,
) -> T: ...


def call(
    fn: Callable[..., Any],
    *args: Any,
    timeout: float = DEFAULT_TIMEOUT,
    what: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` on the reactor thread and wait for its result.

    If it returns a Deferred, wait for that.  After *timeout* seconds the work
    is cancelled and :class:`LabTimeout` names *what* was being waited for.
    An interrupt (Kernel > Interrupt) cancels the work too.
    """
    start()
    if threading.current_thread() is _thread:
        raise RuntimeError("lab.call() blocks, so it cannot run on the reactor thread itself")
    reactor = _reactor()
    description = what or getattr(fn, "__qualname__", repr(fn))
    finished = threading.Event()
    outcome: list[Any] = []
    pending: list[defer.Deferred[Any]] = []

    def in_reactor() -> None:
        result = defer.maybeDeferred(fn, *args, **kwargs)
        pending.append(result)
        result.addTimeout(timeout, reactor)

        def deliver(value: object) -> None:
            outcome.append(value)
            finished.set()  # returning None also marks any failure as handled

        result.addBoth(deliver)

    def cancel() -> None:
        for result in pending:
            result.cancel()

    reactor.callFromThread(in_reactor)
    try:
        if not finished.wait(timeout + _GRACE):
            reactor.callFromThread(cancel)
            raise LabTimeout(
                f"timed out after {timeout:g} s waiting for {description}: the reactor thread did not answer"
            )
    except KeyboardInterrupt:
        reactor.callFromThread(cancel)
        raise
    result = outcome[0]
    if isinstance(result, Failure):
        if result.check(defer.TimeoutError):
            raise LabTimeout(f"timed out after {timeout:g} s waiting for {description}")
        result.raiseException()
    return result


def shutdown(timeout: float = DEFAULT_TIMEOUT) -> None:
    """Stop every server, then the reactor itself (it cannot be started again)."""
    if not running():
        return
    stop_all(timeout)
    reactor = _reactor()
    reactor.callFromThread(reactor.stop)
    assert _thread is not None
    _thread.join(timeout)
    if _thread.is_alive():
        raise LabTimeout(f"the reactor thread did not stop within {timeout:g} s")


# -- servers ----------------------------------------------------------------


class Server:
    """A listening server started by :func:`listen`.

    ``address`` is ``(host, port)`` for TCP and TLS, or the path of a UNIX
    socket; clients connect to the server object itself.
    """

    def __init__(self, name: str, factory: Factory, tracer: TracingFactory, port: IListeningPort) -> None:
        self.name = name
        self.factory = factory
        self.trace: Trace = tracer.trace or Trace(name)
        self._tracer = tracer
        self._port = port
        self._stopped = False
        host = port.getHost()
        self.host: str | None = getattr(host, "host", None)
        self.port: int | None = getattr(host, "port", None)
        self.path: str | None = _decoded(getattr(host, "name", None))

    @property
    def address(self) -> tuple[str, int] | str:
        if self.path is not None:
            return self.path
        assert self.host is not None and self.port is not None
        return (self.host, self.port)

    @property
    def listening(self) -> bool:
        return not self._stopped

    @property
    def open_connections(self) -> int:
        """Connections open right now (read on the reactor thread)."""
        return call(lambda: self._tracer.open_connections, what=f"the {self.name!r} connection count")

    @property
    def connections_made(self) -> int:
        return self._tracer.connections_made

    def wait_until_idle(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until every connection to this server has closed (connectionLost has run)."""
        self.wait_for_open_connections(0, timeout)

    def wait_for_open_connections(self, at_most: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until no more than *at_most* connections are open (their connectionLost has run).

        A client's ``close()`` returns before the server has noticed; wait
        with this before looking at server-side state.
        """
        call(
            self._tracer.when_at_most,
            at_most,
            timeout=timeout,
            what=f"{self.name!r} to have at most {at_most} open connection(s)",
        )

    def wait_for_event(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the trace holds an event containing *text* (say ``"loseConnection()"``).

        The trace is written on the reactor thread as things happen, so once
        the event is there the server has done it: what a cell shows next is
        caused by it, not by a lucky sleep.  Needs ``listen(..., trace=True)``.
        """
        if not self.trace.wait_for(text, timeout):
            raise LabTimeout(f"timed out after {timeout:g} s waiting for {text!r} in {self.name!r}'s trace")

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop listening, drop open connections, and wait until both are done.

        ``stopListening`` alone leaves accepted connections open (notebook 03
        shows that); for cleaning up a lab this also aborts them.  Stopping
        twice is harmless.
        """
        with _lock:
            if _servers.get(self.name) is self:
                del _servers[self.name]
        if self._stopped or not running():
            self._stopped = True
            return
        self._stopped = True

        call(
            _close,
            self._port,
            self._tracer,
            timeout=timeout,
            what=f"{self.name!r} to stop listening and close its connections",
        )

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self._stopped:
            return f"<Server {self.name!r}: stopped>"
        where = self.path if self.path is not None else f"{self.host}:{self.port}"
        return f"<Server {self.name!r} listening on {where}>"


def _decoded(name: object) -> str | None:
    if isinstance(name, bytes):
        return name.decode()
    return name if isinstance(name, str) else None


def _default_name(factory: Factory) -> str:
    protocol = getattr(factory, "protocol", None)
    return protocol.__name__ if isinstance(protocol, type) else type(factory).__name__


def listen(
    factory: Factory,
    *,
    name: str | None = None,
    endpoint: str | IStreamServerEndpoint | None = None,
    trace: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Server:
    """Serve *factory* on the background reactor and return its :class:`Server`.

    *endpoint* is an endpoint description (``"tcp:0:interface=127.0.0.1"``;
    ``"unix:/path"``, ``"ssl:..."`` work too) or an endpoint object.  Without
    one, a free port on :func:`loopback_host`.  With *trace*, the server's events are
    kept in :attr:`Server.trace`.  A server already listening under the same
    *name* (by default the protocol's class name) is stopped first.
    """
    start()
    where = endpoint if endpoint is not None else f"tcp:0:interface={loopback_host()}"
    name = name or _default_name(factory)
    with _lock:
        previous = _servers.pop(name, None)
    if previous is not None:
        previous.stop(timeout)
    tracer = TracingFactory(factory, Trace(name) if trace else None)
    opened: list[IListeningPort] = []

    def keep(port: IListeningPort) -> IListeningPort:
        opened.append(port)
        return port

    def listen_in_reactor() -> defer.Deferred[IListeningPort]:
        from twisted.internet.endpoints import serverFromString

        chosen = serverFromString(_reactor(), where) if isinstance(where, str) else where
        return chosen.listen(tracer).addCallback(keep)

    def close_unseen() -> defer.Deferred[None]:
        return _close(opened[0], tracer) if opened else defer.succeed(None)

    try:
        port: IListeningPort = call(listen_in_reactor, timeout=timeout, what=f"{name!r} to start listening")
        server = Server(name, factory, tracer, port)
        with _lock:
            _servers[name] = server
    except BaseException:
        # Interrupted (Kernel > Interrupt) or timed out just as the port opened: it would
        # listen on, unseen by servers() and stop_all().  Queued behind the listen itself,
        # so it sees the port if there is one; waited for, so no connection reaches the
        # port once listen() has raised.
        try:
            call(close_unseen, timeout=timeout, what=f"the port {name!r} opened unseen to close")
        except (LabTimeout, KeyboardInterrupt):
            pass  # the first error says what went wrong; the port still closes on the reactor
        raise
    return server


def _close(port: IListeningPort, tracer: TracingFactory) -> defer.Deferred[None]:
    """Stop listening, abort the open connections; fire once every one has gone.

    Giving up the wait (a timeout, Kernel > Interrupt) cancels only the wait:
    cancelling ``stopListening``'s Deferred would stop the close half-way,
    leaving a socket the kernel still completes handshakes on.
    """
    closing = defer.maybeDeferred(port.stopListening).addCallback(lambda _: tracer.abort_all())
    closed: defer.Deferred[None] = defer.Deferred()
    closing.chainDeferred(closed)
    return closed.addCallback(lambda _: tracer.when_at_most(0))


def servers() -> list[Server]:
    """Servers started by :func:`listen` that are still listening."""
    with _lock:
        return list(_servers.values())


def stop_all(timeout: float = DEFAULT_TIMEOUT) -> int:
    """Stop every server :func:`listen` started; return how many there were."""
    return _stop(servers(), timeout)


def _stop(stopping: list[Server], timeout: float) -> int:
    """Stop each of *stopping*, all of them even if one fails (the first failure is raised after)."""
    failures: list[Exception] = []
    for server in stopping:
        try:
            server.stop(timeout)
        except Exception as error:
            failures.append(error)
    if failures:
        raise failures[0]
    return len(stopping)


def clean_up(timeout: float = DEFAULT_TIMEOUT) -> str:
    """Stop every server, check that none has a connection left, and say so in one sentence.

    For the last cell of a notebook: the sentence depends only on how many
    servers were still listening, so a notebook run from the top prints the
    same one every time.
    """
    stopping = servers()
    _stop(stopping, timeout)
    still_open = 0
    if stopping:
        still_open = call(
            lambda: sum(server._tracer.open_connections for server in stopping),
            timeout=timeout,
            what="the stopped servers' connection counts",
        )
    if servers() or still_open:
        raise RuntimeError(
            f"cleaning up left {len(servers())} server(s) listening and {still_open} connection(s) open"
        )
    if not stopping:
        return "No server was still listening: there was nothing to stop."
    noun = "server" if len(stopping) == 1 else "servers"
    return f"Stopped {len(stopping)} {noun}: nothing is listening, and no connection to them is left open."


# -- showing what happened ---------------------------------------------------


def show(*items: Renderable) -> object:
    """Client transcripts and server traces side by side, for a cell's output."""
    return side_by_side(*items)


def watching_for_blocks() -> AbstractContextManager[BlockWatch | None]:
    """While the block runs, notice a callback that keeps the reactor thread busy, and where."""
    return watching(_reactor(), _thread)


def errors() -> ErrorLog:
    """Every error Twisted has logged since the runtime started."""
    return _errors


def _show_new_errors(*_: object) -> None:
    """At the end of a cell, print (from the main thread) errors logged during it."""
    if running():
        try:  # let work already queued on the reactor finish first
            call(lambda: None, timeout=1.0, what="the reactor to finish queued work")
        except LabTimeout:
            pass
    for entry in _errors.take_new():
        print(f"Server error: {entry}", file=sys.stderr)


def _install_cell_hook() -> None:
    shell = _ipython()
    if shell is not None and _show_new_errors not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _show_new_errors)


def _ipython() -> Any:
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


@atexit.register
def _stop_servers_at_exit() -> None:
    if running():
        try:
            stop_all(timeout=1.0)
        except Exception:  # best effort: the process is going away anyway
            pass
