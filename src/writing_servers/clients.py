"""Blocking loopback clients for notebook cells, and the transcripts they keep.

A :class:`Client` is an ordinary socket used from the kernel's main thread:
every call waits for something specific (a line, a marker, the end of the
connection) and gives up after a timeout with an error that shows what had
arrived so far.  Everything sent and received is kept as a :class:`Transcript`
that renders like a telnet session.  Nothing here knows about Twisted or the
course's servers; a client connects to anything with an ``address``.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from .render import Line, Renderable, printable

__all__ = [
    "Client",
    "ClientError",
    "ConnectionEnded",
    "ReadTimeout",
    "Transcript",
    "connect",
]

DEFAULT_TIMEOUT = 5.0
#: Unread bytes quoted in an error message before it summarises them.
SHOW_IN_ERRORS = 200
_CHUNK = 65536

EventKind = Literal["sent", "received", "eof", "reset", "closed"]
Address = tuple[str, int] | str


class ClientError(Exception):
    """A client call could not do what it was asked; the message says why."""


class ReadTimeout(ClientError, TimeoutError):
    """Nothing (or not enough) arrived before the timeout."""


class ConnectionEnded(ClientError):
    """The connection ended before what we were waiting for arrived."""


@dataclass(repr=False)
class Transcript(Renderable):
    """What one client sent and received, in order, rendered like telnet."""

    title: str = "client"
    events: list[tuple[EventKind, bytes]] = field(default_factory=list)

    #: Received or sent runs longer than this are shortened when rendered.
    SHOW_AT_MOST = 2000

    def record(self, kind: EventKind, data: bytes = b"") -> None:
        self.events.append((kind, data))

    def sent(self) -> bytes:
        """Every byte this client sent."""
        return b"".join(data for kind, data in self.events if kind == "sent")

    def received(self) -> bytes:
        """Every byte this client received."""
        return b"".join(data for kind, data in self.events if kind == "received")

    def lines(self) -> list[Line]:
        lines: list[Line] = [Line("note", "[connected]")]
        open_kind: str | None = None  # kind of the last line if it had no newline yet
        for kind, data in self._merged():
            if kind in ("sent", "received"):
                line_kind: Literal["typed", "received"] = "typed" if kind == "sent" else "received"
                open_kind = _append_stream(lines, line_kind, _shortened(data, self.SHOW_AT_MOST), open_kind)
            else:
                lines.append(Line("note", _END_NOTES[kind]))
                open_kind = None
        return lines

    def _merged(self) -> Iterator[tuple[EventKind, bytes]]:
        """Join neighbouring events of one kind: how TCP chunked them is noise here."""
        pending_kind: EventKind | None = None
        pending = bytearray()
        for kind, data in self.events:
            if kind == pending_kind and kind in ("sent", "received"):
                pending += data
                continue
            if pending_kind is not None:
                yield pending_kind, bytes(pending)
            pending_kind, pending = kind, bytearray(data)
        if pending_kind is not None:
            yield pending_kind, bytes(pending)


_END_NOTES = {
    "eof": "[connection closed by the server]",
    "reset": "[connection reset by the server]",
    "closed": "[you closed the connection]",
}


def _shortened(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    head = data[: limit // 2]
    return head + f"\n… {len(data) - len(head):,} more bytes …\n".encode()


def _append_stream(
    lines: list[Line], kind: Literal["typed", "received"], data: bytes, open_kind: str | None
) -> str | None:
    """Add *data* to *lines*, continuing an unfinished line of the same kind."""
    pieces = data.split(b"\n")
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        if last and not piece:
            return None  # data ended with a newline: nothing is left open
        text = printable(piece.removesuffix(b"\r"))
        if index == 0 and open_kind == kind:
            lines[-1] = Line(kind, lines[-1].text + text)
        else:
            lines.append(Line(kind, text))
    return kind


class Client:
    """A blocking TCP (or UNIX-socket, or TLS) client for use in a cell.

    Every read waits at most *timeout* seconds (per call, overridable).
    """

    def __init__(
        self,
        target: object,
        port: int | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        title: str = "client",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.transcript = Transcript(title=title)
        #: How the connection ended: ``"eof"``, ``"reset"``, ``"closed"`` (by us) or ``None``.
        self.ended: str | None = None
        #: ``(seconds since connecting, bytes)`` for each chunk received; for charts.
        self.arrivals: list[tuple[float, int]] = []
        self._buffer = bytearray()
        #: What was sent since anything last arrived: the message a timeout left unanswered.
        self._unanswered = b""
        self._waited = timeout
        address = _address_of(target if port is None else (target, port))
        family = (
            socket.AF_UNIX
            if isinstance(address, str)
            else socket.AF_INET6
            if ":" in address[0]
            else socket.AF_INET
        )
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname)
        except ConnectionResetError as error:  # accepted, then aborted before we were done connecting
            sock.close()
            raise ConnectionEnded("the server reset the connection while it was being set up") from error
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._started = time.monotonic()

    @property
    def sock(self) -> socket.socket:
        """The connected socket, for experiments with socket options (TCP_NODELAY, SO_LINGER)."""
        return self._sock

    # -- sending ---------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        """Send *data* as it is (text is encoded as UTF-8)."""
        payload = data.encode() if isinstance(data, str) else data
        self._require_open("send")
        self.transcript.record("sent", payload)
        self._unanswered += payload
        self._sock.sendall(payload)

    def send_line(self, text: bytes | str, ending: bytes = b"\r\n") -> None:
        """Send *text* followed by *ending* (CRLF, as telnet sends; pass ``b"\\n"`` for netcat)."""
        payload = text.encode() if isinstance(text, str) else text
        self.send(payload + ending)

    def shutdown_write(self) -> None:
        """Half-close: tell the server we will send nothing more, keep reading."""
        self._sock.shutdown(socket.SHUT_WR)

    # -- receiving -------------------------------------------------------

    def read_until(self, marker: bytes | str, timeout: float | None = None) -> bytes:
        """Wait for *marker* and return everything up to and including it."""
        wanted = marker.encode() if isinstance(marker, str) else marker
        deadline = self._deadline(timeout)
        if wanted not in self._buffer:
            self._require_not_ended("read")
        while (found := self._buffer.find(wanted)) < 0:
            if not self._fill(deadline, f"{wanted!r}"):
                raise ConnectionEnded(
                    f"the connection ended ({self.ended}) before {wanted!r} arrived; "
                    f"received so far: {self._so_far()}"
                )
        end = found + len(wanted)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def read_line(self, timeout: float | None = None) -> str:
        """Wait for one line (ending in LF or CRLF) and return it as text, without the ending."""
        raw = self.read_until(b"\n", timeout)
        return printable(raw[:-1].removesuffix(b"\r"))

    def read_lines(self, count: int, timeout: float | None = None) -> list[str]:
        """Wait for *count* lines and return them."""
        return [self.read_line(timeout) for _ in range(count)]

    def read_all(self, timeout: float | None = None) -> bytes:
        """Read until the server closes the connection; :attr:`ended` says how."""
        deadline = self._deadline(timeout)
        if not self._buffer:
            self._require_not_ended("read")
        while self._fill(deadline, "the end of the connection"):
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def close(self) -> None:
        """Close the connection (safe to call more than once)."""
        if self.ended is None:
            self.ended = "closed"
            self.transcript.record("closed")
        self._sock.close()

    # -- plumbing --------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        self._waited = self.timeout if timeout is None else timeout
        return time.monotonic() + self._waited

    def _require_open(self, action: str) -> None:
        if self.ended is not None:
            raise ConnectionEnded(f"cannot {action}: the connection has ended ({self.ended})")

    def _require_not_ended(self, action: str) -> None:
        """Refuse to *action* on a connection that ended before this call, with nothing left unread.

        Answering ``b""`` instead would pass for "the server sent nothing" (a
        re-run cell would show 0 bytes received, the opposite of the truth).
        """
        if self.ended is not None:
            unread = f"; received so far: {self._so_far()}" if self._buffer else ""
            raise ConnectionEnded(
                f"cannot {action}: this connection already ended ({self.ended}){unread}; "
                "run the cell that opens it again"
            )

    def _fill(self, deadline: float, waiting_for: str) -> bool:
        """Receive one chunk into the buffer; False once the connection has ended."""
        if self.ended is not None:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout(waiting_for)
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(_CHUNK)
        except TimeoutError:
            raise self._timeout(waiting_for) from None
        except ConnectionResetError:
            self._end("reset")
            return False
        if not data:
            self._end("eof")
            return False
        self.arrivals.append((time.monotonic() - self._started, len(data)))
        self.transcript.record("received", data)
        self._unanswered = b""
        self._buffer += data
        return True

    def _timeout(self, waiting_for: str) -> ReadTimeout:
        so_far = f"received so far: {self._so_far()}"
        if self._unanswered:  # name the message that went unanswered: that is where to look
            last_line = self._unanswered.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].removesuffix(b"\r")
            sent = printable(last_line[-SHOW_IN_ERRORS:])
            return ReadTimeout(
                f"no reply to {sent!r} within {self._waited:g} s (waiting for {waiting_for}); {so_far}"
            )
        return ReadTimeout(f"timed out after {self._waited:g} s waiting for {waiting_for}; {so_far}")

    def _so_far(self) -> str:
        """The unread bytes for an error message: all of them if few, else the start and a count."""
        if len(self._buffer) <= SHOW_IN_ERRORS:
            return repr(bytes(self._buffer))
        return f"{bytes(self._buffer[:SHOW_IN_ERRORS])!r}… ({len(self._buffer):,} bytes)"

    def _end(self, how: Literal["eof", "reset"]) -> None:
        self.ended = how
        self.transcript.record(how)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self.ended is None else f"ended: {self.ended}"
        return f"<Client {self.transcript.title!r} ({state})>"


_FORMS = (
    "connect(server) for a server from lab.listen, connect('10.0.0.5', 8000) or connect('10.0.0.5:8000') "
    "for a host and port, connect('/path/to/socket') for a UNIX socket"
)


def _address_of(target: object) -> Address:
    """A server handle (anything with ``.address``), ``(host, port)``, ``"host:port"`` or a UNIX socket path."""
    address = getattr(target, "address", target)
    if isinstance(address, str):
        return _parsed(address)
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        return (str(host), _port(port, address))
    raise TypeError(f"cannot connect to {target!r}: use {_FORMS}")


def _parsed(text: str) -> Address:
    """``"host:port"`` as a pair; a path (it has a ``/``, or names a file here) as a UNIX socket."""
    host, colon, port = text.rpartition(":")
    if colon and "/" not in text and host:
        return (host.strip("[]"), _port(port, text))
    if "/" in text or os.path.exists(text):
        return text
    raise ValueError(f"cannot connect to {text!r}: no port, and no such UNIX socket; use {_FORMS}")


def _port(port: object, what: object) -> int:
    try:
        number = int(str(port))
    except ValueError:
        raise ValueError(f"cannot connect to {what!r}: {port!r} is not a port number; use {_FORMS}") from None
    if not 0 < number < 65536:
        raise ValueError(
            f"cannot connect to {what!r}: port {number} is not between 1 and 65535; use {_FORMS}"
        )
    return number


#: ``with connect(server) as client:`` reads better in a cell than ``Client(server)``.
connect = Client
