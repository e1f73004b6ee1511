"""Blocking clients and their transcripts, against tiny scripted socket servers on loopback."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from writing_servers.clients import Client, ClientError, ConnectionEnded, ReadTimeout, Transcript, connect

#: Every blocking call in these tests, on either side, gives up after this long.
TIMEOUT = 5.0
#: For reads that are meant to time out.
SHORT = 0.3

Script = Callable[[socket.socket, threading.Event], None]


@dataclass
class Peer:
    """A scripted server: where it listens, and an event that lets a waiting script go on."""

    address: tuple[str, int]
    release: threading.Event

    @property
    def port(self) -> int:
        return self.address[1]


@pytest.fixture
def serve() -> Iterator[Callable[[Script], Peer]]:
    """Start one-connection servers on 127.0.0.1 port 0, each running a script on its own thread.

    At teardown every script is released and joined; an exception on a server thread fails the test.
    """
    started: list[tuple[threading.Thread, threading.Event, list[BaseException]]] = []

    def start(script: Script) -> Peer:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(TIMEOUT)
        address = listener.getsockname()
        release = threading.Event()
        failures: list[BaseException] = []

        def run() -> None:
            try:
                with listener:
                    conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    script(conn, release)
            except BaseException as error:
                failures.append(error)

        thread = threading.Thread(target=run, name="scripted-server", daemon=True)
        thread.start()
        started.append((thread, release, failures))
        return Peer(address, release)

    yield start
    for thread, release, failures in started:
        release.set()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a scripted server did not finish"
        if failures:
            raise failures[0]


def recv_line(conn: socket.socket) -> bytes:
    """Server side: read up to and including a LF (the tests send little, so byte by byte is fine)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            raise ConnectionError(f"client closed before a full line; got {line!r}")
        line += byte
    return line


def send_then_close(data: bytes) -> Script:
    def script(conn: socket.socket, release: threading.Event) -> None:
        conn.sendall(data)

    return script


def send_then_hold(data: bytes) -> Script:
    """Send *data*, then keep the connection open until released."""

    def script(conn: socket.socket, release: threading.Event) -> None:
        conn.sendall(data)
        release.wait(TIMEOUT)

    return script


def send_in_pieces(data: bytes, size: int) -> Script:
    """Send *data* a few bytes at a time with pauses, so the client sees many small chunks; then close."""

    def script(conn: socket.socket, release: threading.Event) -> None:
        for start in range(0, len(data), size):
            conn.sendall(data[start : start + size])
            time.sleep(0.005)

    return script


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER (on, 0 s): the kernel sends RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def text_lines(transcript: Transcript) -> list[str]:
    return repr(transcript).splitlines()


# -- reading ------------------------------------------------------------------

LINES = b"crlf\r\nlf\n\r\nafter an empty line\r\nlast\n"


@pytest.mark.parametrize("size", [1, 2, 3, len(LINES)])
def test_read_line_handles_crlf_and_lf(serve: Callable[[Script], Peer], size: int) -> None:
    """read_line strips CRLF or LF endings, keeps empty lines, however the bytes were chunked."""
    peer = serve(send_in_pieces(LINES, size))
    with Client(peer.address, timeout=TIMEOUT) as client:
        assert client.read_lines(5) == ["crlf", "lf", "", "after an empty line", "last"]
        assert client.read_all() == b""
        assert client.ended == "eof"


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_read_until_returns_through_the_marker_and_keeps_the_rest(
    serve: Callable[[Script], Peer], size: int
) -> None:
    """read_until returns everything up to and including the marker; what follows stays for the next read."""
    peer = serve(send_in_pieces(b"login: alice\r\nPassword: ", size))
    with Client(peer.address, timeout=TIMEOUT) as client:
        assert client.read_until("login: ") == b"login: "
        assert client.read_until(b"\r\n") == b"alice\r\n"
        assert client.read_until(b"word: ") == b"Password: "
        assert client.read_all() == b""


def test_read_all_reports_eof(serve: Callable[[Script], Peer]) -> None:
    """read_all returns everything sent before an orderly close and records the end as "eof"."""
    peer = serve(send_then_close(b"one\r\ntwo\r\n"))
    client = Client(peer.address, timeout=TIMEOUT)
    assert client.read_all() == b"one\r\ntwo\r\n"
    assert client.ended == "eof"
    assert text_lines(client.transcript)[-1] == "[connection closed by the server]"
    client.close()


def test_reading_a_connection_that_already_ended_says_so(serve: Callable[[Script], Peer]) -> None:
    """A read after the end was seen (a re-run cell) raises, instead of passing off b"" as what arrived."""
    peer = serve(send_then_close(b"one\r\ntwo\r\n"))
    with Client(peer.address, timeout=TIMEOUT) as client:
        assert client.read_line() == "one"
        assert client.read_all() == b"two\r\n"
        for read in (client.read_all, client.read_line):
            with pytest.raises(
                ConnectionEnded, match=r"already ended \(eof\).*run the cell that opens it again"
            ):
                read()
    with Client(serve(send_then_hold(b"")).address, timeout=TIMEOUT) as later:
        pass
    with pytest.raises(ConnectionEnded, match=r"already ended \(closed\); run the cell"):
        later.read_all()  # closed by the with block: a later cell reading from it


def test_read_all_reports_reset(serve: Callable[[Script], Peer]) -> None:
    """A server that closes with RST (SO_LINGER 0) ends the connection as "reset", not "eof"."""

    def script(conn: socket.socket, release: threading.Event) -> None:
        release.wait(TIMEOUT)  # reset only once connect() has returned, or connect() itself sees the RST
        reset(conn)

    peer = serve(script)
    client = Client(peer.address, timeout=TIMEOUT)
    peer.release.set()
    assert client.read_all() == b""
    assert client.ended == "reset"
    assert text_lines(client.transcript) == ["[connected]", "[connection reset by the server]"]
    client.close()


def test_read_timeout_shows_what_arrived(serve: Callable[[Script], Peer]) -> None:
    """A read that times out says what it waited for and what had arrived; those bytes are not lost."""
    gate = threading.Event()

    def script(conn: socket.socket, release: threading.Event) -> None:
        conn.sendall(b"partial")
        gate.wait(TIMEOUT)
        conn.sendall(b" rest\r\n")

    peer = serve(script)
    with Client(peer.address, timeout=TIMEOUT) as client:
        started = time.monotonic()
        with pytest.raises(ReadTimeout) as caught:
            client.read_line(timeout=SHORT)
        assert SHORT - 0.05 <= time.monotonic() - started < TIMEOUT
        assert "received so far: b'partial'" in str(caught.value)
        assert "b'\\n'" in str(caught.value)
        assert isinstance(caught.value, TimeoutError)
        assert client.ended is None
        gate.set()
        assert client.read_line() == "partial rest"


def test_read_all_times_out_while_the_server_keeps_the_connection(serve: Callable[[Script], Peer]) -> None:
    """read_all gives up after its timeout if the server never closes, naming the end it waited for."""
    peer = serve(send_then_hold(b"hi\r\n"))
    with Client(peer.address, timeout=TIMEOUT) as client:
        with pytest.raises(ReadTimeout, match=r"the end of the connection.*received so far: b'hi\\r\\n'"):
            client.read_all(timeout=SHORT)


def test_a_timeout_names_the_message_that_went_unanswered(serve: Callable[[Script], Peer]) -> None:
    """A read that times out after a send names the last line sent since anything arrived."""
    peer = serve(send_then_hold(b"hi\r\n"))
    with Client(peer.address, timeout=TIMEOUT) as client:
        assert client.read_line() == "hi"
        client.send_line("first")
        client.send_line("second")
        with pytest.raises(ReadTimeout) as caught:
            client.read_line(timeout=SHORT)
        assert (
            str(caught.value)
            == f"no reply to 'second' within {SHORT:g} s (waiting for b'\\n'); received so far: b''"
        )


def test_eof_before_the_marker_raises_connection_ended(serve: Callable[[Script], Peer]) -> None:
    """If the server closes before the marker arrives, read_line raises ConnectionEnded with what came."""
    peer = serve(send_then_close(b"no newline"))
    with Client(peer.address, timeout=TIMEOUT) as client:
        with pytest.raises(ConnectionEnded) as caught:
            client.read_line()
        message = str(caught.value)
        assert "(eof)" in message
        assert "received so far: b'no newline'" in message
        assert isinstance(caught.value, ClientError)
        assert client.ended == "eof"


def test_lines_buffered_before_eof_are_still_returned(serve: Callable[[Script], Peer]) -> None:
    """A failed wait keeps what arrived: complete lines are returned after EOF, then ConnectionEnded."""
    peer = serve(send_then_close(b"first\r\nsecond\r\npartial"))
    with Client(peer.address, timeout=TIMEOUT) as client:
        with pytest.raises(ConnectionEnded):
            client.read_until(b"never sent")
        assert client.ended == "eof"
        assert client.read_lines(2) == ["first", "second"]
        with pytest.raises(ConnectionEnded, match="received so far: b'partial'"):
            client.read_line()
        assert client.read_until(b"tial") == b"partial"


# -- sending ------------------------------------------------------------------


def test_send_encodes_text_as_utf8_and_send_line_adds_crlf(serve: Callable[[Script], Peer]) -> None:
    """send() encodes str as UTF-8; send_line() appends CRLF (or the ending given); the server gets exactly that."""
    got: list[bytes] = []

    def script(conn: socket.socket, release: threading.Event) -> None:
        got.append(recv_line(conn) + recv_line(conn))
        conn.sendall(b"ok\n")

    peer = serve(script)
    with Client(peer.address, timeout=TIMEOUT) as client:
        client.send("caf")
        client.send_line("é")
        client.send_line(b"raw", ending=b"\n")
        assert client.read_line() == "ok"
        assert client.transcript.sent() == b"caf\xc3\xa9\r\nraw\n"
        assert client.transcript.received() == b"ok\n"
    assert got == [b"caf\xc3\xa9\r\nraw\n"]


def test_send_after_eof_raises(serve: Callable[[Script], Peer]) -> None:
    """Once the server has closed, send() raises ConnectionEnded naming how it ended, and records nothing."""
    peer = serve(send_then_close(b"bye\r\n"))
    with Client(peer.address, timeout=TIMEOUT) as client:
        client.read_all()
        with pytest.raises(ConnectionEnded, match=r"cannot send: .*\(eof\)"):
            client.send(b"anyone there?\r\n")
        assert client.transcript.sent() == b""


def test_send_after_close_raises(serve: Callable[[Script], Peer]) -> None:
    """After close(), send() raises ConnectionEnded naming "closed"; close() itself may be repeated."""
    peer = serve(send_then_hold(b""))
    client = Client(peer.address, timeout=TIMEOUT)
    client.close()
    client.close()
    assert client.ended == "closed"
    with pytest.raises(ConnectionEnded, match=r"\(closed\)"):
        client.send_line("hello")
    assert text_lines(client.transcript) == ["[connected]", "[you closed the connection]"]


def test_connect_is_a_context_manager_that_closes(serve: Callable[[Script], Peer]) -> None:
    """`with connect(address)` closes the client on the way out, and says so in the transcript."""
    peer = serve(send_then_hold(b""))
    with connect(peer.address, timeout=TIMEOUT) as client:
        assert client.ended is None
    assert client.ended == "closed"
    assert repr(client) == "<Client 'client' (ended: closed)>"


def test_client_accepts_anything_with_an_address(serve: Callable[[Script], Peer]) -> None:
    """A Client connects to an object with an ``address`` (like lab.Server) as well as to a pair."""
    peer = serve(send_then_close(b"via handle\n"))
    with Client(peer, timeout=TIMEOUT) as client:
        assert client.read_line() == "via handle"


def test_client_rejects_what_is_not_an_address() -> None:
    """Connecting to something that is neither a server, a pair nor a path raises TypeError."""
    with pytest.raises(TypeError, match="cannot connect"):
        Client(12345)


@pytest.mark.parametrize("form", ["host, port", "host:port"])
def test_client_connects_to_a_host_and_port_as_a_student_would_write_them(
    serve: Callable[[Script], Peer], form: str
) -> None:
    """connect("10.0.0.5", 8000) and connect("10.0.0.5:8000"): the two ways to join a teacher's server."""
    peer = serve(send_then_close(b"welcome\n"))
    host, port = peer.address
    client = (
        Client(host, port, timeout=TIMEOUT)
        if form == "host, port"
        else Client(f"{host}:{port}", timeout=TIMEOUT)
    )
    with client:
        assert client.read_line() == "welcome"


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("10.0.0.5", ValueError, "no port, and no such UNIX socket"),
        ("10.0.0.5:http", ValueError, "'http' is not a port number"),
        ("10.0.0.5:0", ValueError, "port 0 is not between 1 and 65535"),
        (("10.0.0.5", "eight"), ValueError, "'eight' is not a port number"),
    ],
)
def test_a_target_that_is_not_an_address_is_refused_with_the_forms(
    target: object, error: type, message: str
) -> None:
    """Nothing is tried: the message says what is wrong and shows the forms that work."""
    with pytest.raises(error) as caught:
        Client(target, timeout=TIMEOUT)
    assert message in str(caught.value)
    assert "connect('10.0.0.5', 8000) or connect('10.0.0.5:8000')" in str(caught.value)


# -- transcripts --------------------------------------------------------------


def _greet_and_answer(conn: socket.socket, release: threading.Event) -> None:
    conn.sendall(b"Hello, who are you?\r\n")
    name = recv_line(conn).rstrip(b"\r\n")
    conn.sendall(b"Nice to meet you, " + name + b".\r\nBye!\r\n")


def test_transcript_text_reads_like_telnet(serve: Callable[[Script], Peer]) -> None:
    """Plain text shows received lines as they are, typed lines after "> ", and who closed the connection."""
    peer = serve(_greet_and_answer)
    with Client(peer.address, timeout=TIMEOUT) as client:
        client.read_line()
        client.send("Ali")  # typed in two pieces: one line in the transcript
        client.send_line("ce")
        client.read_all()
    assert text_lines(client.transcript) == [
        "[connected]",
        "Hello, who are you?",
        "> Alice",
        "Nice to meet you, Alice.",
        "Bye!",
        "[connection closed by the server]",
    ]


def test_transcript_html_emphasises_typed_lines(serve: Callable[[Script], Peer]) -> None:
    """HTML shows typed text emphasised (not with "> "), received text plain, and the closing note."""
    peer = serve(_greet_and_answer)
    with Client(peer.address, timeout=TIMEOUT) as client:
        client.read_line()
        client.send_line("Alice")
        client.read_all()
    page = client.transcript._repr_html_()
    assert page.startswith("<pre") and page.endswith("</pre>")
    assert "<em>Alice</em>" in page
    assert "&gt; Alice" not in page and "> Alice" not in page
    assert "\nHello, who are you?\n" in page
    assert "[connection closed by the server]" in page


def test_transcript_escapes_control_characters(serve: Callable[[Script], Peer]) -> None:
    """ESC, BEL, a lone CR and DEL arrive escaped in lines and transcripts, so they cannot drive a terminal."""
    peer = serve(send_then_close(b"\x1b[31mred\x1b[0m\x07 over\rwrite \x7f\ttab\r\n"))
    expected = "\\x1b[31mred\\x1b[0m\\x07 over\\x0dwrite \\x7f\ttab"
    with Client(peer.address, timeout=TIMEOUT) as client:
        assert client.read_line() == expected
        client.read_all()
    text = repr(client.transcript)
    page = client.transcript._repr_html_()
    assert text_lines(client.transcript)[1] == expected
    assert expected in page
    for rendered in (text, page):
        assert not any(ch in rendered for ch in "\x1b\x07\r\x7f")


def test_transcript_shows_invalid_utf8_as_backslash_escapes(serve: Callable[[Script], Peer]) -> None:
    """Bytes that are not UTF-8 show as \\xNN escapes; valid UTF-8 (é, ☃) shows as itself."""
    peer = serve(send_then_close(b"caf\xe9 \xff\xfe | caf\xc3\xa9 \xe2\x98\x83\r\n"))
    expected = "caf\\xe9 \\xff\\xfe | café ☃"
    with Client(peer.address, timeout=TIMEOUT) as client:
        assert client.read_line() == expected
        client.read_all()
    assert text_lines(client.transcript)[1] == expected
    assert expected in client.transcript._repr_html_()


def test_rendered_transcripts_show_no_port_numbers(serve: Callable[[Script], Peer]) -> None:
    """Neither the text nor the HTML of a transcript mentions the (random) port, so outputs are deterministic."""
    peer = serve(_greet_and_answer)
    with Client(peer.address, timeout=TIMEOUT) as client:
        client.read_line()
        client.send_line("Alice")
        client.read_all()
        local_port = client._sock.getsockname()[1]
    rendered = repr(client.transcript) + client.transcript._repr_html_() + repr(client)
    assert "Alice" in rendered
    assert str(peer.port) not in rendered
    assert str(local_port) not in rendered
    assert "127.0.0.1" not in rendered


def test_transcript_joins_chunks_of_one_kind() -> None:
    """How TCP chunked the bytes does not show: neighbouring sent or received pieces join into lines."""
    transcript = Transcript(title="t")
    for piece in [b"He", b"llo\r", b"\nWor", b"ld\r\n"]:
        transcript.record("received", piece)
    transcript.record("sent", b"o")
    transcript.record("sent", b"k\r\n")
    transcript.record("eof")
    assert text_lines(transcript) == [
        "[connected]",
        "Hello",
        "World",
        "> ok",
        "[connection closed by the server]",
    ]


def test_transcript_starts_new_line_when_the_speaker_changes() -> None:
    """A prompt without a newline and the answer typed after it are two lines, each marked by who wrote it."""
    transcript = Transcript()
    transcript.record("received", b"name? ")
    transcript.record("sent", b"bob\n")
    transcript.record("received", b"hi bob")
    transcript.record("closed")
    assert text_lines(transcript) == [
        "[connected]",
        "name? ",
        "> bob",
        "hi bob",
        "[you closed the connection]",
    ]


def test_transcript_shortens_long_runs() -> None:
    """A received run longer than SHOW_AT_MOST is shortened, even when it came in small chunks."""
    transcript = Transcript()
    for _ in range(50):
        transcript.record("received", b"x" * 100)
    text = repr(transcript)
    assert len(text) < 2000 + 100
    assert "… 4,000 more bytes …" in text
    assert transcript.received() == b"x" * 5000  # the data itself is kept whole
