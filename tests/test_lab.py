"""The background-reactor runtime, over real loopback sockets.

A Twisted reactor runs once per process, so nothing here calls ``lab.shutdown()``
except the test that does it in a subprocess.
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import WrappingFactory
from zope.interface import implementer

from writing_servers import lab
from writing_servers.clients import Client
from writing_servers.protocols import QOTD, CountingEchoFactory, Echo

#: Every blocking call here gives up after this long.
TIMEOUT = 10.0
#: For waits that are meant to time out.
SHORT = 0.3


def refuses(address: tuple[str, int]) -> bool:
    """Whether connecting to *address* is refused (nothing listens there)."""
    try:
        socket.create_connection(address, timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def reactor_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "twisted-reactor"]


def welcome(count: int) -> str:
    return f"Welcome! There are currently {count} open connections."


class Divider(Protocol):
    """Answer each line "N" with 100 // N; "0" raises ZeroDivisionError inside dataReceived."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"%d\r\n" % (100 // int(data)))


# -- the reactor thread ---------------------------------------------------------


def test_start_is_idempotent_and_runs_one_daemon_thread() -> None:
    """start() twice leaves exactly one daemon thread named twisted-reactor, and the reactor runs on it."""
    lab.start(timeout=TIMEOUT)
    lab.start(timeout=TIMEOUT)
    threads = reactor_threads()
    assert len(threads) == 1
    assert threads[0].daemon
    assert lab.running()
    assert lab.call(threading.current_thread, timeout=TIMEOUT) is threads[0]


# -- call() ---------------------------------------------------------------------


def test_call_returns_the_value() -> None:
    """call() passes arguments through and returns what the function returned."""
    assert lab.call(lambda: 42, timeout=TIMEOUT) == 42
    assert lab.call(divmod, 17, 5, timeout=TIMEOUT) == (3, 2)
    assert lab.call(sorted, [3, 1, 2], reverse=True, timeout=TIMEOUT) == [3, 2, 1]


def test_call_waits_for_a_deferred() -> None:
    """When the function returns a Deferred, call() returns the value it later fires with."""
    from twisted.internet import reactor

    started = time.monotonic()
    result = lab.call(lambda: task.deferLater(reactor, 0.2, lambda: "later"), timeout=TIMEOUT)
    assert result == "later"
    assert time.monotonic() - started >= 0.15  # reactor time and monotonic time may differ slightly


def test_call_raises_what_the_function_raised() -> None:
    """An exception, raised directly or through a failed Deferred, reaches the caller as itself."""
    with pytest.raises(ZeroDivisionError):
        lab.call(lambda: 1 // 0, timeout=TIMEOUT)
    with pytest.raises(KeyError, match="missing"):
        lab.call(lambda: defer.fail(KeyError("missing")), timeout=TIMEOUT)


def test_call_failure_is_not_also_logged_as_unhandled() -> None:
    """A failure call() re-raises is handled: no "Unhandled error in Deferred" reaches lab.errors()."""
    before = len(lab.errors().entries())
    with pytest.raises(ValueError):
        lab.call(lambda: defer.fail(ValueError("handled")), timeout=TIMEOUT)
    gc.collect()
    lab.call(lambda: None, timeout=TIMEOUT)
    assert [entry for entry in lab.errors().entries()[before:] if "handled" in entry] == []


def test_call_times_out_naming_what_it_waited_for() -> None:
    """A Deferred that never fires gives LabTimeout after the timeout, naming `what`, and is cancelled."""
    cancelled = threading.Event()

    def never() -> defer.Deferred[None]:
        return defer.Deferred(lambda _: cancelled.set())

    started = time.monotonic()
    with pytest.raises(lab.LabTimeout) as caught:
        lab.call(never, timeout=SHORT, what="the answer that never comes")
    elapsed = time.monotonic() - started
    assert "the answer that never comes" in str(caught.value)
    assert "0.3 s" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)
    # The reactor-side timeout fired and cancelled the work before answering, not the main
    # thread's backstop (which says the reactor did not answer): told apart by what happened,
    # not by how long it took, which a loaded machine stretches.
    assert "did not answer" not in str(caught.value)
    assert cancelled.is_set()
    assert SHORT - 0.05 <= elapsed < TIMEOUT


def test_call_timeout_names_the_function_by_default() -> None:
    """Without `what`, the timeout message names the function that was called."""

    def wait_forever() -> defer.Deferred[None]:
        return defer.Deferred()

    with pytest.raises(lab.LabTimeout, match="wait_forever"):
        lab.call(wait_forever, timeout=SHORT)


def test_call_from_the_reactor_thread_raises() -> None:
    """call() on the reactor thread raises RuntimeError at once instead of deadlocking the reactor."""

    def nested() -> BaseException | None:
        try:
            lab.call(lambda: None, timeout=1.0)
        except RuntimeError as error:
            return error
        return None

    error = lab.call(nested, timeout=TIMEOUT)
    assert isinstance(error, RuntimeError)
    assert "reactor thread" in str(error)


# -- listen() and servers -------------------------------------------------------


def test_listen_returns_a_loopback_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """listen() binds 127.0.0.1 on a free nonzero port, names the server after its protocol, and serves."""
    # As on a machine of one's own, even when run in a hub terminal.
    monkeypatch.delenv(lab.LOOPBACK_VARIABLE, raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    server = lab.listen(Factory.forProtocol(QOTD), timeout=TIMEOUT)
    assert isinstance(server, lab.Server)
    assert server.host == "127.0.0.1"
    assert isinstance(server.port, int) and server.port > 0
    assert server.address == ("127.0.0.1", server.port)
    assert server.name == "QOTD"
    assert server.listening
    assert lab.servers() == [server]
    assert repr(server) == f"<Server 'QOTD' listening on 127.0.0.1:{server.port}>"
    with Client(server, timeout=TIMEOUT) as client:
        assert client.read_all() == b"An apple a day keeps the doctor away\r\n"
        assert client.ended == "eof"


def test_echo_round_trip() -> None:
    """Echo served by the lab sends back each line a client sends, on one connection."""
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    with Client(server, timeout=TIMEOUT) as client:
        for text in ["hello", "café ☃", ""]:
            client.send_line(text)
            assert client.read_line() == text
        assert client.transcript.received() == client.transcript.sent()


def test_listen_again_under_the_same_name_replaces_the_server() -> None:
    """Listening again under a name stops the earlier server first: its clients are dropped, one server remains."""
    first = lab.listen(Factory.forProtocol(Echo), name="lesson", timeout=TIMEOUT)
    client = Client(first, timeout=TIMEOUT)
    client.send_line("ping")
    assert client.read_line() == "ping"
    second = lab.listen(Factory.forProtocol(QOTD), name="lesson", timeout=TIMEOUT)
    assert not first.listening
    assert second.listening
    assert lab.servers() == [second]
    assert client.read_all() == b""  # dropped, not left open: this would time out otherwise
    assert client.ended in ("eof", "reset")
    client.close()
    with Client(second, timeout=TIMEOUT) as other:
        assert other.read_line() == "An apple a day keeps the doctor away"


def test_replaced_server_port_refuses_connections() -> None:
    """After being replaced, the earlier server's port refuses connections (its socket is closed)."""
    first = lab.listen(Factory.forProtocol(Echo), name="lesson", timeout=TIMEOUT)
    assert isinstance(first.address, tuple)
    assert not refuses(first.address)
    # The replacement listens on a UNIX socket, so it cannot be given the old TCP port by chance.
    with tempfile.TemporaryDirectory(prefix="ws-") as folder:
        path = str(Path(folder) / "s")
        second = lab.listen(
            Factory.forProtocol(Echo), name="lesson", endpoint=f"unix:{path}", timeout=TIMEOUT
        )
        assert second.address == path
        assert refuses(first.address)
        assert lab.servers() == [second]
        with Client(second, timeout=TIMEOUT) as client:
            client.send_line("over unix")
            assert client.read_line() == "over unix"
        second.stop(timeout=TIMEOUT)


def test_stop_waits_until_the_server_is_closed() -> None:
    """When stop() returns, the port is closed, open connections are gone, and the trace says so."""
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    client = Client(server, timeout=TIMEOUT)
    client.send_line("hi")
    assert client.read_line() == "hi"
    server.stop(timeout=TIMEOUT)
    events = server.trace.events()  # read at once: stop() must already have waited for all of this
    assert "stopFactory()" in events
    assert events[-1] == "#1 connectionLost(ConnectionAborted)"
    assert server.open_connections == 0
    assert not server.listening
    assert lab.servers() == []
    assert repr(server) == "<Server 'Echo': stopped>"
    assert isinstance(server.address, tuple)
    assert refuses(server.address)
    assert client.read_all() == b""
    assert client.ended in ("eof", "reset")
    client.close()


class SlowGoodbye(Echo):
    """An echo whose connectionLost takes a while, then records on its factory that it finished."""

    factory: SlowGoodbyeFactory

    def connectionLost(self, reason: object = None) -> None:
        time.sleep(0.2)  # on the reactor thread: a stop() that does not wait returns before this ends
        self.factory.finished += 1


class SlowGoodbyeFactory(Factory):
    protocol = SlowGoodbye

    def __init__(self) -> None:
        self.finished = 0


def test_stop_waits_for_connection_lost_to_finish() -> None:
    """stop() returns only after every open connection's connectionLost has run to its end."""
    factory = SlowGoodbyeFactory()
    server = lab.listen(factory, timeout=TIMEOUT)
    with Client(server, timeout=TIMEOUT) as client:
        client.send_line("hi")
        assert client.read_line() == "hi"
        server.stop(timeout=TIMEOUT)
        assert factory.finished == 1


def test_a_stop_given_up_still_closes_the_port() -> None:
    """Giving up the wait for a stop (timeout, Kernel > Interrupt) ends the wait, not the closing of the port."""
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    assert isinstance(server.address, tuple)
    # Cancelled before the reactor closes the socket: stopListening's own Deferred must not be.
    lab.call(lambda: lab._close(server._port, server._tracer).cancel(), timeout=TIMEOUT)
    server.wait_for_event("stopFactory()", timeout=TIMEOUT)  # recorded once the socket is closed
    assert refuses(server.address)
    server.stop(timeout=TIMEOUT)


def test_stop_is_idempotent() -> None:
    """Stopping a stopped server is harmless and leaves its trace unchanged."""
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    server.stop(timeout=TIMEOUT)
    events = server.trace.events()
    server.stop(timeout=TIMEOUT)
    assert server.trace.events() == events
    assert not server.listening


def test_server_as_context_manager_stops_on_exit() -> None:
    """`with lab.listen(...) as server:` stops the server when the block ends."""
    with lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT) as server:
        assert server.listening
    assert not server.listening
    assert lab.servers() == []


def test_stop_all_stops_every_server() -> None:
    """stop_all() stops every server listen() started, leaving servers() empty and their ports refusing."""
    started = [lab.listen(Factory.forProtocol(Echo), name=name, timeout=TIMEOUT) for name in "abc"]
    assert {server.name for server in lab.servers()} == {"a", "b", "c"}
    assert lab.stop_all(timeout=TIMEOUT) == 3
    assert lab.servers() == []
    for server in started:
        assert not server.listening
        assert isinstance(server.address, tuple)
        assert refuses(server.address)


class StuckPort:
    """A listening port whose stopListening() never finishes."""

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 9)

    def stopListening(self) -> defer.Deferred[None]:
        return defer.Deferred()


@implementer(IStreamServerEndpoint)
class StuckEndpoint:
    def listen(self, factory: Factory) -> defer.Deferred[StuckPort]:
        return defer.succeed(StuckPort())


def test_stop_all_stops_the_others_when_one_cannot_stop() -> None:
    """A server that cannot stop makes stop_all() raise, but only after every other server has stopped."""
    lab.listen(Factory.forProtocol(Echo), name="stuck", endpoint=StuckEndpoint(), timeout=TIMEOUT)
    other = lab.listen(Factory.forProtocol(Echo), name="other", timeout=TIMEOUT)
    with pytest.raises(lab.LabTimeout, match="'stuck' to stop listening"):
        lab.stop_all(timeout=SHORT)
    assert not other.listening
    # SHORT may not be time enough on a loaded machine for the port to close, only to start closing.
    other.wait_for_event("stopFactory()", timeout=TIMEOUT)
    assert isinstance(other.address, tuple) and refuses(other.address)
    assert lab.servers() == []


def test_clean_up_stops_everything_and_says_how_many() -> None:
    """clean_up() stops every server, drops their open connections, and says how many servers it stopped."""
    echo = lab.listen(Factory.forProtocol(Echo), name="echo", timeout=TIMEOUT)
    lab.listen(Factory.forProtocol(QOTD), name="qotd", timeout=TIMEOUT)
    with Client(echo, timeout=TIMEOUT) as client:
        client.send_line("hi")
        client.read_line()
        assert lab.clean_up(timeout=TIMEOUT) == (
            "Stopped 2 servers: nothing is listening, and no connection to them is left open."
        )
        assert client.read_all() == b""
        assert client.ended == "reset"  # stopping aborts open connections
    assert echo.trace.events()[-1] == "#1 connectionLost(ConnectionAborted)"
    assert lab.servers() == []
    lab.listen(Factory.forProtocol(Echo), name="echo", timeout=TIMEOUT)
    assert lab.clean_up(timeout=TIMEOUT).startswith("Stopped 1 server: ")
    assert lab.clean_up(timeout=TIMEOUT) == "No server was still listening: there was nothing to stop."


INTERRUPTED_LISTEN_SCRIPT = textwrap.dedent(
    """
    import signal, socket, threading
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory
    from writing_servers import lab
    from writing_servers.protocols import Echo

    # As in a kernel, SIGINT interrupts, even where the parent ignored it (nohup, `cmd &` in a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    opened = []

    class InterruptingEndpoint:
        # Interrupts the main thread (SIGINT, as Kernel > Interrupt sends), then listens for real.
        def listen(self, factory):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            listening = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
            return listening.addCallback(lambda port: opened.append(port.getHost()) or port)

    lab.start(timeout=10)
    try:
        lab.listen(Factory.forProtocol(Echo), endpoint=InterruptingEndpoint(), timeout=10)
    except KeyboardInterrupt:
        print("interrupted")
    address = opened[0]
    try:
        socket.create_connection((address.host, address.port), timeout=10).close()
    except ConnectionRefusedError:
        print("refused")
    print(lab.servers())
    """
)


def test_listen_interrupted_as_the_port_opens_leaves_no_port() -> None:
    """Kernel > Interrupt while listen() waits, the port opening anyway: it is closed, not left unseen."""
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_LISTEN_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert (result.stdout, result.stderr) == ("interrupted\nrefused\n[]\n", "")


# -- traces -----------------------------------------------------------------------


def test_trace_records_events_in_order() -> None:
    """The trace shows startFactory, buildProtocol, connectionMade, dataReceived, write, connectionLost in order."""
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    with Client(server, timeout=TIMEOUT) as client:
        client.send_line("hello")
        assert client.read_line() == "hello"
    server.wait_until_idle(timeout=TIMEOUT)
    assert server.trace.events() == [
        "startFactory()",
        "#1 buildProtocol() -> Echo",
        "#1 connectionMade()",
        "#1 dataReceived(b'hello\\r\\n')",
        "#1 write(b'hello\\r\\n')",
        "#1 connectionLost(ConnectionDone)",
    ]
    assert server.connections_made == 1


def test_trace_numbers_connections_and_records_lose_connection() -> None:
    """Each connection gets its own number; QOTD's write and loseConnection appear under it."""
    server = lab.listen(Factory.forProtocol(QOTD), timeout=TIMEOUT)
    for _ in range(2):
        with Client(server, timeout=TIMEOUT) as client:
            client.read_all()
    server.wait_until_idle(timeout=TIMEOUT)
    events = server.trace.events()
    for number in (1, 2):
        mine = [event for event in events if event.startswith(f"#{number} ")]
        assert mine == [
            f"#{number} buildProtocol() -> QOTD",
            f"#{number} connectionMade()",
            f"#{number} write(b'An apple a day keeps the doctor away\\r\\n')",
            f"#{number} loseConnection()",
            f"#{number} connectionLost(ConnectionDone)",
        ]
    assert server.connections_made == 2


def test_trace_can_be_switched_off() -> None:
    """With trace=False the server still works and its trace stays empty."""
    server = lab.listen(Factory.forProtocol(Echo), trace=False, timeout=TIMEOUT)
    with Client(server, timeout=TIMEOUT) as client:
        client.send_line("quiet")
        assert client.read_line() == "quiet"
    server.wait_until_idle(timeout=TIMEOUT)
    assert server.trace.events() == []


# -- errors -----------------------------------------------------------------------


def test_protocol_exception_is_collected_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    """An exception in dataReceived lands in lab.errors() as one readable line, and nothing is printed."""
    server = lab.listen(Factory.forProtocol(Divider), timeout=TIMEOUT)
    capfd.readouterr()
    before = len(lab.errors().entries())
    with Client(server, timeout=TIMEOUT) as client:
        client.send_line("4")
        assert client.read_line() == "25"
        client.send_line("0")
        assert client.read_all() == b""  # Twisted drops the connection whose protocol raised
    server.wait_until_idle(timeout=TIMEOUT)
    lab.call(lambda: None, timeout=TIMEOUT)
    new = lab.errors().entries()[before:]
    assert len(new) == 1, new
    entry = new[0]
    assert entry.startswith("Divider.dataReceived, line 58: "), entry  # the student's line, not Twisted's
    assert "ZeroDivisionError" in entry
    assert "\n" not in entry
    assert "Traceback" not in entry and ".py" not in entry and "/" not in entry
    assert "connectionLost(ZeroDivisionError)" in server.trace.events()[-1]
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    with Client(server, timeout=TIMEOUT) as client:  # the server itself keeps serving
        client.send_line("5")
        assert client.read_line() == "20"


def test_errors_and_trace_name_the_protocol_inside_a_wrapping_factory() -> None:
    """Served through a policies WrappingFactory, errors and the trace still name the protocol itself."""
    server = lab.listen(WrappingFactory(Factory.forProtocol(Divider)), name="wrapped", timeout=TIMEOUT)
    with Client(server, timeout=TIMEOUT) as client:
        client.send_line("0")
        assert client.read_all() == b""
    server.wait_until_idle(timeout=TIMEOUT)
    lab.call(lambda: None, timeout=TIMEOUT)
    assert lab.errors().take_new() == [
        "Divider.dataReceived, line 58: ZeroDivisionError: integer division or modulo by zero"
    ]
    assert "#1 buildProtocol() -> Divider" in server.trace.events()


class BrokenGreeting(Protocol):
    """Raise in connectionMade, the first callback a student writes."""

    def connectionMade(self) -> None:
        raise ZeroDivisionError("division by zero")


class BrokenGoodbye(Echo):
    """An echo that raises in connectionLost."""

    def connectionLost(self, reason: object = None) -> None:
        raise ValueError("goodbye failed")


def new_errors(before: int) -> list[str]:
    """Entries lab.errors() gained after the first *before*, waiting (up to TIMEOUT) for at least one."""
    deadline = time.monotonic() + TIMEOUT
    while len(lab.errors().entries()) <= before and time.monotonic() < deadline:
        lab.call(lambda: None, timeout=TIMEOUT)
        time.sleep(0.01)
    return lab.errors().entries()[before:]


def test_connection_made_exception_names_the_protocol() -> None:
    """An exception in connectionMade is collected as one line naming the protocol class, like dataReceived's."""
    server = lab.listen(Factory.forProtocol(BrokenGreeting), timeout=TIMEOUT)
    before = len(lab.errors().entries())
    with Client(server, timeout=TIMEOUT):
        new = new_errors(before)
    assert len(new) == 1, new
    assert "ZeroDivisionError" in new[0]
    assert new[0].startswith("BrokenGreeting.connectionMade, line "), new[0]


def test_stop_works_when_connection_lost_raises() -> None:
    """stop() still returns when the protocol's connectionLost raises (the error goes to lab.errors())."""
    server = lab.listen(Factory.forProtocol(BrokenGoodbye), timeout=TIMEOUT)
    client = Client(server, timeout=TIMEOUT)
    client.send_line("x")
    assert client.read_line() == "x"  # the server has accepted the connection
    before = len(lab.errors().entries())
    try:
        server.stop(timeout=TIMEOUT)
    finally:
        client.close()
    assert not server.listening
    assert server.open_connections == 0
    new = new_errors(before)
    assert len(new) == 1, new
    assert new[0].startswith("BrokenGoodbye.connectionLost, line "), new
    assert new[0].endswith(": ValueError: goodbye failed")


@pytest.mark.parametrize(
    "ending",
    [
        "client closes",
        "server stops",
    ],
)
def test_connection_lost_exception_names_the_protocol(ending: str) -> None:
    """An exception in connectionLost is collected naming the protocol class, however the connection ended."""
    server = lab.listen(Factory.forProtocol(BrokenGoodbye), timeout=TIMEOUT)
    before = len(lab.errors().entries())
    client = Client(server, timeout=TIMEOUT)
    client.send_line("x")
    assert client.read_line() == "x"
    if ending == "client closes":
        client.close()
        server.wait_until_idle(timeout=TIMEOUT)
    else:
        server.stop(timeout=TIMEOUT)
        client.close()
    new = new_errors(before)
    assert len(new) == 1, new
    line = BrokenGoodbye.connectionLost.__code__.co_firstlineno + 1
    assert new[0] == f"BrokenGoodbye.connectionLost, line {line}: ValueError: goodbye failed"


# -- waiting for connections --------------------------------------------------------


def test_wait_for_open_connections_with_counting_echo() -> None:
    """Three clients are greeted 1, 2, 3; after two close and the wait returns, the factory counts one."""
    factory = CountingEchoFactory()
    server = lab.listen(factory, timeout=TIMEOUT)
    clients = []
    for count in (1, 2, 3):
        client = Client(server, timeout=TIMEOUT)
        assert client.read_line() == welcome(count)
        clients.append(client)
    assert server.open_connections == 3
    clients[0].close()
    clients[1].close()
    server.wait_for_open_connections(1, timeout=TIMEOUT)
    assert factory.numProtocols == 1
    assert server.open_connections == 1
    with Client(server, timeout=TIMEOUT) as late:
        assert late.read_line() == welcome(2)
    clients[2].close()
    server.wait_until_idle(timeout=TIMEOUT)
    assert factory.numProtocols == 0


def test_wait_for_open_connections_really_waits() -> None:
    """A wait that starts before the clients close returns only once the server has seen them go."""
    factory = CountingEchoFactory()
    server = lab.listen(factory, timeout=TIMEOUT)
    clients = [Client(server, timeout=TIMEOUT) for _ in range(3)]
    for client in clients:
        client.read_line()
    closer = threading.Timer(0.2, lambda: [client.close() for client in clients[:2]])
    closer.start()
    started = time.monotonic()
    server.wait_for_open_connections(1, timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.15
    assert factory.numProtocols == 1
    closer.join(TIMEOUT)
    clients[2].close()


def test_wait_for_open_connections_times_out() -> None:
    """Waiting for fewer connections than are open gives LabTimeout naming the server and the count."""
    server = lab.listen(CountingEchoFactory(), name="counting", timeout=TIMEOUT)
    with Client(server, timeout=TIMEOUT) as client:
        client.read_line()
        with pytest.raises(lab.LabTimeout, match="'counting' to have at most 0 open connection"):
            server.wait_for_open_connections(0, timeout=SHORT)
    server.wait_until_idle(timeout=TIMEOUT)
    assert server.open_connections == 0


# -- shutdown (in a fresh process) ----------------------------------------------------

SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import socket
    from twisted.internet.protocol import Factory
    from writing_servers import lab
    from writing_servers.protocols import Echo

    lab.start(timeout=10)
    server = lab.listen(Factory.forProtocol(Echo), timeout=10)
    lab.shutdown(timeout=10)
    lab.shutdown(timeout=10)  # a second shutdown is harmless
    assert not lab.running(), "reactor thread still alive"
    assert lab.servers() == [] and not server.listening
    try:
        socket.create_connection(server.address, timeout=10).close()
    except ConnectionRefusedError:
        pass
    else:
        raise AssertionError("port still open after shutdown")
    for attempt in (lambda: lab.start(timeout=10), lambda: lab.call(lambda: 1, timeout=10)):
        try:
            attempt()
        except lab.ReactorStopped as error:
            print("ReactorStopped:", error)
        else:
            raise AssertionError("no ReactorStopped")
    """
)


def test_shutdown_is_final_and_start_then_says_restart_the_kernel() -> None:
    """After shutdown(), start() and call() raise ReactorStopped telling the student to restart the kernel."""
    result = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    stopped = result.stdout.splitlines()
    assert len(stopped) == 2
    for line in stopped:
        assert line.startswith("ReactorStopped: ")
        assert "restart the kernel" in line
    assert result.stderr == ""
