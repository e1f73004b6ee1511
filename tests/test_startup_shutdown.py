"""Factory startup and shutdown: the logging server offline, then its hooks over real listening ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ADDR, CHUNKINGS, connected, feed
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols.basic import LineReceiver

from writing_servers import lab
from writing_servers.clients import Client, connect
from writing_servers.startup_shutdown import EagerLogfileFactory, LogfileFactory

#: What clients send (telnet CRLF, netcat LF, UTF-8, bytes that are not UTF-8, an empty line, a CR inside).
SENT = b"hello\r\nfrom netcat\ngr\xc3\xbc\xc3\x9fe\r\ncaf\xe9\r\n\r\nin\rside\r\n"
#: What the log must hold afterwards: each line's bytes, its ending replaced by the file's b"\n".
LOGGED = b"hello\nfrom netcat\ngr\xc3\xbc\xc3\x9fe\ncaf\xe9\n\nin\rside\n"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "test.log"


@pytest.fixture
def started(log: Path) -> Iterator[LogfileFactory]:
    """A LogfileFactory started as a listening port would start it, and stopped afterwards."""
    factory = LogfileFactory(log)
    factory.doStart()
    yield factory
    factory.doStop()


def say(server: lab.Server, *lines: str, title: str = "client") -> Client:
    """Connect, send *lines*, hang up, and wait until the server has handled it all."""
    with connect(server, title=title, timeout=5.0) as client:
        for line in lines:
            client.send_line(line)
    server.wait_until_idle()
    return client


# -- the howto's version -----------------------------------------------------------------------


class LoggingProtocolAsWritten(LineReceiver):
    def lineReceived(self, line):  # type: ignore[no-untyped-def]
        self.factory.fp.write(line + "\n")


class LogfileFactoryAsWritten(Factory):  # type: ignore[type-arg]
    protocol = LoggingProtocolAsWritten

    def __init__(self, fileName):  # type: ignore[no-untyped-def]
        self.file = fileName

    def startFactory(self):  # type: ignore[no-untyped-def]
        self.fp = open(self.file, "a")

    def stopFactory(self):  # type: ignore[no-untyped-def]
        self.fp.close()


def test_howto_version_fails_on_python_3(log: Path) -> None:
    """The howto's listing adds str to the bytes line: TypeError on the first line, nothing logged."""
    factory = LogfileFactoryAsWritten(log)
    factory.doStart()
    protocol, _ = connected(factory)
    with pytest.raises(TypeError):
        protocol.dataReceived(b"hello\r\n")
    factory.doStop()
    assert log.read_bytes() == b""


# -- LoggingProtocol and LogfileFactory offline ----------------------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_lines_land_in_the_file_exactly(chunking: int | str, started: LogfileFactory, log: Path) -> None:
    """Every line lands in the log byte for byte, its CRLF or LF replaced by LF, however it was chunked."""
    protocol, transport = connected(started)
    feed(protocol, SENT, chunking)
    assert log.read_bytes() == LOGGED  # flushed line by line: no need to close the file first
    assert transport.value() == b""  # the server replies nothing
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_two_connections_share_the_file(chunking: int | str, started: LogfileFactory, log: Path) -> None:
    """Lines of two interleaved connections each land whole, in the order they were completed."""
    first, _ = connected(started)
    second, _ = connected(started)
    feed(first, b"one: a\r\none: b", chunking)
    feed(second, b"two: a\n", chunking)
    feed(first, b"\r\n", chunking)
    assert log.read_bytes() == b"one: a\ntwo: a\none: b\n"


def test_unfinished_line_is_not_logged(started: LogfileFactory, log: Path) -> None:
    """A line whose ending never arrives is not logged, even when the connection closes."""
    protocol, _ = connected(started)
    protocol.dataReceived(b"done\nnot done")
    protocol.connectionLost(connectionDone)
    assert log.read_bytes() == b"done\n"


def test_overlong_line_closes_the_connection_and_is_not_logged(started: LogfileFactory, log: Path) -> None:
    """A line over MAX_LENGTH (1024 bytes) closes the connection; only the lines before it are logged."""
    protocol, transport = connected(started)
    protocol.dataReceived(b"short\n" + b"x" * 1025 + b"\nafter\n")
    assert transport.disconnecting
    assert log.read_bytes() == b"short\n"


def test_line_of_max_length_is_logged(started: LogfileFactory, log: Path) -> None:
    """A line of exactly MAX_LENGTH bytes is still logged whole."""
    protocol, transport = connected(started)
    protocol.dataReceived(b"x" * 1024 + b"\n")
    assert log.read_bytes() == b"x" * 1024 + b"\n"
    assert not transport.disconnecting


def test_making_the_factory_opens_nothing(log: Path) -> None:
    """__init__ only remembers the path: no file is created until startFactory."""
    factory = LogfileFactory(log)
    assert not log.exists()
    assert (factory.opened, factory.closed, factory.log) == (0, 0, None)


def test_start_appends_to_an_existing_log(log: Path) -> None:
    """startFactory opens in append mode: what the file held before is kept."""
    log.write_bytes(b"earlier\n")
    factory = LogfileFactory(log)
    factory.doStart()
    protocol, _ = connected(factory)
    protocol.dataReceived(b"later\n")
    factory.doStop()
    assert log.read_bytes() == b"earlier\nlater\n"


def test_hooks_run_once_per_period_of_listening(log: Path) -> None:
    """doStart/doStop from two ports: one open on the first start, one close on the last stop."""
    factory = LogfileFactory(log)
    factory.doStart()
    factory.doStart()
    assert (factory.opened, factory.closed, factory.numPorts) == (1, 0, 2)
    factory.doStop()
    assert (factory.opened, factory.closed) == (1, 0)
    assert factory.log is not None and not factory.log.closed
    factory.doStop()
    assert (factory.opened, factory.closed, factory.log) == (1, 1, None)


def test_connection_outliving_the_factory_hangs_up(started: LogfileFactory, log: Path) -> None:
    """A line arriving after stopFactory is not logged, and the protocol closes its connection."""
    protocol, transport = connected(started)
    protocol.dataReceived(b"before\n")
    started.doStop()
    protocol.dataReceived(b"after\nand more\n")
    assert transport.disconnecting
    assert log.read_bytes() == b"before\n"
    started.doStart()  # so that the fixture's doStop has a port to stop


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_paths_from_clients_are_only_data(chunking: int | str, tmp_path: Path) -> None:
    """Lines that look like paths or commands are logged as data in the one file; no other file appears."""
    folder = tmp_path / "logs"
    folder.mkdir()
    factory = LogfileFactory(folder / "only.log")
    factory.doStart()
    protocol, _ = connected(factory)
    attacks = [b"../escaped.log", b"../../etc/passwd", b"/tmp/evil.log", b"LOGFILE other.log", b"sub/dir/x"]
    feed(protocol, b"".join(line + b"\r\n" for line in attacks), chunking)
    factory.doStop()
    assert sorted(entry.relative_to(tmp_path) for entry in tmp_path.rglob("*")) == [
        Path("logs"),
        Path("logs", "only.log"),
    ]
    assert (folder / "only.log").read_bytes().splitlines() == attacks
    assert not (Path.cwd().parent / "escaped.log").exists() and not Path("other.log").exists()


def test_eager_factory_opens_too_early_and_closes_too_late(log: Path) -> None:
    """EagerLogfileFactory creates its file in __init__ and keeps it open after its last port stopped."""
    # Until Twisted's logging begins, its buffer of early events ("Starting factory ...") holds the
    # factory too; lab.start() begins logging, as it does in the notebook.
    lab.start()
    eager = EagerLogfileFactory(log)
    assert log.exists() and eager.opened == 1
    eager.doStart()
    eager.doStop()
    assert eager.log is not None and not eager.log.closed
    held = eager.log
    protocol = eager.buildProtocol(ADDR)  # holds the factory, as an open connection would
    del eager
    assert not held.closed
    del protocol
    assert held.closed  # CPython: the last reference went, so __del__ ran


# -- over real listening ports ---------------------------------------------------------------------


def test_three_connections_one_start(log: Path) -> None:
    """Three clients, connected at once: startFactory ran once, before them; stopFactory only at stop."""
    factory = LogfileFactory(log)
    server = lab.listen(factory, name="log")
    assert (factory.opened, factory.closed) == (1, 0)
    clients = [connect(server, title=f"client {n}", timeout=5.0) for n in (1, 2, 3)]
    server.wait_for_event("#3 connectionMade()")
    for number, client in enumerate(clients, 1):
        client.send_line(f"line from {number}")
        client.close()
        server.wait_for_open_connections(3 - number)
    assert (factory.opened, factory.closed) == (1, 0)
    server.stop()
    assert (factory.opened, factory.closed, factory.log) == (1, 1, None)
    assert log.read_bytes() == b"line from 1\nline from 2\nline from 3\n"
    events = server.trace.events()
    assert events[0] == "startFactory()" and events[-1] == "stopFactory()"
    assert events.count("startFactory()") == 1 and events.count("stopFactory()") == 1


def test_two_ports_one_factory(log: Path) -> None:
    """Two ports share one factory: one open when the first listens, one close when the second stops."""
    factory = LogfileFactory(log)
    port_a = lab.listen(factory, name="log A")
    port_b = lab.listen(factory, name="log B")
    assert (factory.opened, factory.closed, factory.numPorts) == (1, 0, 2)
    say(port_a, "via A")
    say(port_b, "via B")
    port_a.stop()
    assert (factory.opened, factory.closed, factory.numPorts) == (1, 0, 1)
    say(port_b, "B alone")
    port_b.stop()
    assert (factory.opened, factory.closed, factory.numPorts) == (1, 1, 0)
    assert log.read_bytes() == b"via A\nvia B\nB alone\n"
    assert "startFactory()" in port_a.trace.events() and "stopFactory()" not in port_a.trace.events()
    assert "stopFactory()" in port_b.trace.events() and "startFactory()" not in port_b.trace.events()


def test_restart_reopens_and_appends(log: Path) -> None:
    """After both ports stop, listening again calls startFactory again; the file is appended to."""
    factory = LogfileFactory(log)
    port_a = lab.listen(factory, name="log A")
    port_b = lab.listen(factory, name="log B")
    say(port_a, "first period")
    port_a.stop()
    port_b.stop()
    assert (factory.opened, factory.closed) == (1, 1)
    again = lab.listen(factory, name="log A")
    assert (factory.opened, factory.closed) == (2, 1)
    say(again, "second period")
    again.stop()
    assert (factory.opened, factory.closed) == (2, 2)
    assert log.read_bytes() == b"first period\nsecond period\n"


def test_no_path_escape_over_tcp(tmp_path: Path) -> None:
    """Over a real connection, path-like lines are logged in the operator's file and create no other file."""
    folder = tmp_path / "logs"
    folder.mkdir()
    server = lab.listen(LogfileFactory(folder / "server.log"), name="guarded")
    attacks = ["../outside.log", str(tmp_path / "absolute.log"), "\x1b[2J", "LOGFILE x.log"]
    say(server, *attacks)
    server.stop()
    assert sorted(entry.name for entry in tmp_path.rglob("*")) == ["logs", "server.log"]
    assert (folder / "server.log").read_bytes().decode().splitlines() == attacks
