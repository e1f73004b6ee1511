"""QOTDFactory on every transport: unit tests, loopback TCP/UNIX/TLS, ports, and the standalone script."""

from __future__ import annotations

import datetime
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support import ADDR, CHUNKINGS, chunks, connected
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.endpoints import TCP4ServerEndpoint, quoteStringArgument, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory

from writing_servers import lab
from writing_servers.clients import connect
from writing_servers.protocols import QOTD, Echo
from writing_servers.serving import QOTDFactory, first_line, make_self_signed_certificate

# Twisted's own ssl: endpoint parser hands pyOpenSSL objects to pyOpenSSL, which warns; not our code.
pytestmark = pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")

QUOTE = b"An apple a day keeps the doctor away\r\n"
MESSAGE = b"hello, world\r\nsecond line\n\x00\xff\xfe caf\xc3\xa9\r\n"
TIMEOUT = 10.0
SCRIPT_TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def reactor() -> Any:
    lab.start()
    from twisted.internet import reactor

    return reactor


class StartStopCountingFactory(QOTDFactory):
    """QOTDFactory that counts its startFactory and stopFactory calls."""

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0

    def startFactory(self) -> None:
        self.starts += 1

    def stopFactory(self) -> None:
        self.stops += 1


def quote_via(target: object, **options: Any) -> tuple[bytes, str | None]:
    with connect(target, timeout=TIMEOUT, **options) as client:
        return client.read_all(), client.ended


def stop(port: IListeningPort) -> None:
    lab.call(port.stopListening, timeout=TIMEOUT)


# -- QOTDFactory, no network ------------------------------------------------------------


def test_build_protocol_returns_a_qotd() -> None:
    """buildProtocol answers an address with a QOTD protocol."""
    assert isinstance(QOTDFactory().buildProtocol(ADDR), QOTD)


def test_build_protocol_makes_a_new_protocol_each_time() -> None:
    """Each connection gets its own protocol object, never a shared one."""
    factory = QOTDFactory()
    first, second = factory.buildProtocol(ADDR), factory.buildProtocol(ADDR)
    assert first is not second


def test_built_protocol_writes_the_quote_and_disconnects() -> None:
    """The protocol it builds writes the quote on connect and then closes the connection."""
    _, transport = connected(QOTDFactory())
    assert transport.value() == QUOTE
    assert transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_built_protocol_ignores_input(chunking: int | str) -> None:
    """Whatever the client sends, however chunked, nothing beyond the one quote is written."""
    protocol, transport = connected(QOTDFactory())
    for piece in chunks(MESSAGE, chunking):
        protocol.dataReceived(piece)
    assert transport.value() == QUOTE


def test_start_and_stop_factory_run_once_across_ports() -> None:
    """doStart/doStop count ports: startFactory runs at the first start, stopFactory at the last stop."""
    factory = StartStopCountingFactory()
    factory.doStart()
    factory.doStart()
    assert (factory.starts, factory.numPorts) == (1, 2)
    factory.doStop()
    assert (factory.stops, factory.numPorts) == (0, 1)
    factory.doStop()
    assert (factory.stops, factory.numPorts) == (1, 0)


def test_importing_the_module_does_not_touch_the_reactor() -> None:
    """Importing writing_servers.serving installs no reactor (the reactor is imported in main())."""
    code = "import sys, writing_servers.serving; print('twisted.internet.reactor' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# -- TCP: endpoint object, endpoint string, listenTCP ----------------------------------------


def test_tcp_endpoint_listens_and_serves(reactor: Any) -> None:
    """TCP4ServerEndpoint.listen gives an IListeningPort on 127.0.0.1 whose clients get the quote."""
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = lab.call(endpoint.listen, QOTDFactory(), timeout=TIMEOUT)
    try:
        assert IListeningPort.providedBy(port)
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        assert address.host == "127.0.0.1" and address.port > 0
        assert quote_via((address.host, address.port)) == (QUOTE, "eof")
    finally:
        stop(port)


def test_endpoint_string_builds_a_tcp4_endpoint(reactor: Any) -> None:
    """serverFromString("tcp:0:interface=127.0.0.1") builds the same kind of endpoint as the class."""
    assert isinstance(serverFromString(reactor, "tcp:0:interface=127.0.0.1"), TCP4ServerEndpoint)


def test_lab_listen_with_tcp_string_traces_the_quote() -> None:
    """Served through an endpoint string, the trace shows start, one QOTD conversation, and stop."""
    server = lab.listen(QOTDFactory(), name="tcp", endpoint="tcp:0:interface=127.0.0.1")
    assert quote_via(server) == (QUOTE, "eof")
    server.wait_until_idle()
    server.stop()
    assert server.trace.events() == [
        "startFactory()",
        "#1 buildProtocol() -> QOTD",
        "#1 connectionMade()",
        f"#1 write({QUOTE!r})",
        "#1 loseConnection()",
        "#1 connectionLost(ConnectionDone)",
        "stopFactory()",
    ]


def test_listen_tcp_serves_and_refuses_a_taken_port(reactor: Any) -> None:
    """reactor.listenTCP returns the port at once; listening again on its number raises CannotListenError."""
    port = lab.call(reactor.listenTCP, 0, QOTDFactory(), interface="127.0.0.1", timeout=TIMEOUT)
    try:
        address = port.getHost()
        assert quote_via((address.host, address.port)) == (QUOTE, "eof")
        with pytest.raises(CannotListenError):
            lab.call(reactor.listenTCP, address.port, QOTDFactory(), interface="127.0.0.1", timeout=TIMEOUT)
    finally:
        stop(port)


# -- UNIX sockets -----------------------------------------------------------------------------


def test_unix_socket_serves_the_quote(tmp_path: Path) -> None:
    """The same factory on a UNIX socket answers with the quote, and stopping removes the socket file."""
    path = str(tmp_path / "qotd.sock")
    server = lab.listen(QOTDFactory(), name="unix", endpoint=f"unix:{path}")
    assert server.path == path
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert quote_via(path) == (QUOTE, "eof")
    server.wait_until_idle()
    assert "#1 connectionLost(ConnectionDone)" in server.trace.events()
    server.stop()
    assert not os.path.exists(path)


def test_unix_factory_sees_a_unix_address(tmp_path: Path) -> None:
    """On a UNIX socket, buildProtocol is handed a UNIXAddress rather than an IPv4Address."""
    seen: list[object] = []

    class Recording(QOTDFactory):
        def buildProtocol(self, addr: Any) -> QOTD:
            seen.append(addr)
            return super().buildProtocol(addr)

    path = str(tmp_path / "qotd.sock")
    server = lab.listen(Recording(), name="unix", endpoint=f"unix:{path}")
    quote_via(path)
    server.wait_until_idle()
    assert len(seen) == 1 and isinstance(seen[0], UNIXAddress)


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    return make_self_signed_certificate(tmp_path)


def tls_server(certificate: tuple[str, str]) -> lab.Server:
    cert_path, key_path = certificate
    description = (
        "ssl:0:interface=127.0.0.1"
        f":privateKey={quoteStringArgument(key_path)}:certKey={quoteStringArgument(cert_path)}"
    )
    return lab.listen(QOTDFactory(), name="tls", endpoint=description)


def test_certificate_is_self_signed_for_localhost_and_loopback(certificate: tuple[str, str]) -> None:
    """The certificate names localhost and 127.0.0.1, is its own issuer, is valid now, and matches the key."""
    cert_path, key_path = certificate
    with open(cert_path, "rb") as file:
        cert = x509.load_pem_x509_certificate(file.read())
    with open(key_path, "rb") as file:
        key = serialization.load_pem_private_key(file.read(), password=None)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer == cert.subject
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.public_key() == key.public_key()


def test_private_key_is_readable_by_its_owner_only(certificate: tuple[str, str]) -> None:
    """The key file is created with mode 600."""
    assert stat.S_IMODE(os.stat(certificate[1]).st_mode) == 0o600


def test_tls_client_that_trusts_the_certificate_gets_the_quote(certificate: tuple[str, str]) -> None:
    """Over TLS, a client verifying against the certificate (strict X.509 checks on) gets the quote."""
    server = tls_server(certificate)
    context = ssl.create_default_context(cafile=certificate[0])
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    assert quote_via(server, ssl_context=context, server_hostname="localhost") == (QUOTE, "eof")
    server.wait_until_idle()
    assert f"#1 write({QUOTE!r})" in server.trace.events()
    assert lab.errors().take_new() == []


def test_tls_lose_connection_waits_for_the_clients_close_notify(certificate: tuple[str, str]) -> None:
    """Over TLS, loseConnection sends close_notify and waits for the client's: a silent client holds it open."""
    server = tls_server(certificate)
    context = ssl.create_default_context(cafile=certificate[0])
    silent = connect(server, ssl_context=context, server_hostname="localhost", timeout=5)
    assert silent.read_all() == QUOTE and silent.ended == "eof"
    with pytest.raises(lab.LabTimeout):
        server.wait_until_idle(timeout=0.2)
    silent.close()
    server.wait_until_idle()
    answering = connect(server, ssl_context=context, server_hostname="localhost", timeout=5)
    assert answering.read_all() == QUOTE
    answering.sock.unwrap()  # close_notify back: the server closes at once
    server.wait_until_idle()
    answering.close()
    lost = [event for event in server.trace.events() if "connectionLost" in event]
    assert lost == ["#1 connectionLost(ConnectionLost)", "#2 connectionLost(ConnectionDone)"]


def test_tls_deadline_aborts_a_client_that_never_answers_close_notify(certificate: tuple[str, str]) -> None:
    """Notebook 2's DeadlineBigReply over TLS aborts a client that keeps its socket open after the reply."""
    from writing_servers.closing import DeadlineBigReplyFactory

    cert_path, key_path = certificate
    description = (
        "ssl:0:interface=127.0.0.1"
        f":privateKey={quoteStringArgument(key_path)}:certKey={quoteStringArgument(cert_path)}"
    )
    server = lab.listen(
        DeadlineBigReplyFactory(size=64, grace_period=0.3), name="tls deadline", endpoint=description
    )
    context = ssl.create_default_context(cafile=certificate[0])
    with connect(server, ssl_context=context, server_hostname="localhost", timeout=5) as silent:
        silent.send_line("lose")
        assert len(silent.read_all()) == 64
        server.wait_until_idle(timeout=5)
    events = server.trace.events()
    assert events[-3:] == ["#1 loseConnection()", "#1 abortConnection()", "#1 connectionLost(ConnectionLost)"]
    server.stop()


def test_tls_certificate_is_valid_for_the_ip_address_too(certificate: tuple[str, str]) -> None:
    """A client that dials 127.0.0.1 by address accepts the certificate as well."""
    server = tls_server(certificate)
    context = ssl.create_default_context(cafile=certificate[0])
    assert quote_via(server, ssl_context=context, server_hostname="127.0.0.1") == (QUOTE, "eof")


def test_tls_client_without_the_certificate_refuses(certificate: tuple[str, str]) -> None:
    """A client trusting only the system's authorities fails verification: the certificate is self-signed."""
    server = tls_server(certificate)
    with pytest.raises(ssl.SSLCertVerificationError) as raised:
        connect(
            server, timeout=TIMEOUT, ssl_context=ssl.create_default_context(), server_hostname="localhost"
        )
    assert "self" in raised.value.verify_message and "signed" in raised.value.verify_message
    server.wait_until_idle()
    assert server.trace.events()[-1] == "#1 connectionLost(Error)"
    assert lab.errors().take_new() == []


def test_tls_client_rejects_a_name_the_certificate_lacks(certificate: tuple[str, str]) -> None:
    """Trusting the certificate is not enough: the name dialled must be one it lists."""
    server = tls_server(certificate)
    context = ssl.create_default_context(cafile=certificate[0])
    with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname mismatch"):
        connect(server, timeout=TIMEOUT, ssl_context=context, server_hostname="example.com")


# -- one factory, two ports; stopping a listener ----------------------------------------------


def test_one_factory_on_two_ports() -> None:
    """Both ports serve; startFactory runs once, and stopFactory only after the second port stops."""
    factory = StartStopCountingFactory()
    first = lab.listen(factory, name="A")
    second = lab.listen(factory, name="B")
    assert lab.call(lambda: (factory.starts, factory.numPorts)) == (1, 2)
    assert first.port != second.port
    assert quote_via(first) == (QUOTE, "eof")
    assert quote_via(second) == (QUOTE, "eof")
    first.wait_until_idle()
    second.wait_until_idle()
    first.stop()
    assert lab.call(lambda: (factory.stops, factory.numPorts)) == (0, 1)
    assert quote_via(second) == (QUOTE, "eof")
    second.wait_until_idle()
    second.stop()
    assert lab.call(lambda: (factory.starts, factory.stops, factory.numPorts)) == (1, 1, 0)
    assert first.trace.events()[0] == "startFactory()"
    assert "startFactory()" not in second.trace.events()
    assert "stopFactory()" not in first.trace.events()
    assert second.trace.events()[-1] == "stopFactory()"


def test_stop_listening_refuses_new_but_keeps_open_connections(reactor: Any) -> None:
    """After stopListening, new clients are refused while an accepted Echo connection still echoes."""
    port = lab.call(
        serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen,
        Factory.forProtocol(Echo),
        timeout=TIMEOUT,
    )
    address = port.getHost()
    with connect((address.host, address.port), timeout=TIMEOUT) as alice:
        alice.send_line("hello")
        assert alice.read_line() == "hello"
        stop(port)
        with pytest.raises(ConnectionRefusedError):
            connect((address.host, address.port), timeout=TIMEOUT)
        alice.send_line("still there?")
        assert alice.read_line() == "still there?"


def test_stop_listening_twice_is_harmless(reactor: Any) -> None:
    """A second stopListening on a closed port does nothing (the notebook's clean-up relies on it)."""
    port = lab.call(reactor.listenTCP, 0, QOTDFactory(), interface="127.0.0.1", timeout=TIMEOUT)
    stop(port)
    stop(port)
    assert lab.errors().take_new() == []


# -- the standalone script ----------------------------------------------------------------------


def start_script(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "writing_servers.serving", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def announcement(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = first_line(process.stdout, SCRIPT_TIMEOUT)
    assert line, f"the script printed nothing within {SCRIPT_TIMEOUT:g} s"
    return line


def test_script_serves_until_terminated() -> None:
    """`python -m writing_servers.serving --port 0` announces its port, serves the quote, and exits 0 on SIGTERM."""
    script = start_script("--port", "0")
    try:
        line = announcement(script)
        found = re.fullmatch(r"Serving QOTD on 127\.0\.0\.1 port (\d+); Ctrl-C stops it\.\n", line)
        assert found, line
        port = int(found[1])
        assert quote_via(("127.0.0.1", port)) == (QUOTE, "eof")
        assert quote_via(("127.0.0.1", port)) == (QUOTE, "eof")
    finally:
        script.terminate()
        _, errors = script.communicate(timeout=SCRIPT_TIMEOUT)
    assert script.returncode == 0
    assert errors == ""


def test_script_reports_a_port_in_use() -> None:
    """Given a port that is taken, the script says so on stderr and exits 1 instead of hanging."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "writing_servers.serving", "--port", str(taken.getsockname()[1])],
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            cwd=ROOT,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Cannot listen:") and "already in use" in result.stderr


def test_first_line_waits_only_as_long_as_it_is_told() -> None:
    """first_line gives "" when nothing comes in time, the line when one does, and "" at once at the end."""

    def pipe() -> tuple[IO[str], IO[str]]:
        read_end, write_end = os.pipe()
        return open(read_end, encoding="utf-8"), open(write_end, "w", encoding="utf-8")

    reading, writing = pipe()
    with reading, writing:
        began = time.monotonic()
        assert first_line(reading, 0.2) == ""
        assert 0.2 <= time.monotonic() - began < 5
        writing.close()  # its reader, still waiting, sees the end and finishes
        deadline = time.monotonic() + 5
        while any(thread.name == "first-line" for thread in threading.enumerate()):
            assert time.monotonic() < deadline, "first_line's reader outlived its stream"
            time.sleep(0.01)
    reading, writing = pipe()
    with reading, writing:
        writing.write("hello\n")
        writing.flush()
        assert first_line(reading, 5) == "hello\n"
    reading, writing = pipe()
    with reading, writing:
        writing.close()
        began = time.monotonic()
        assert first_line(reading, 5) == ""
        assert time.monotonic() - began < 4
