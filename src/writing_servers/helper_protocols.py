"""Section "Helper Protocols": let Twisted find the messages in a byte stream.

TCP delivers a stream of bytes, not messages.  Twisted's helpers in
:mod:`twisted.protocols.basic` do the framing and call you once per message.
The notebook's core path, smallest first:

* :class:`BytesAnswer` is the howto's ``Answer`` in Python 3: a line arrives
  as bytes, so its keys and answers are bytes too.  Like every plain
  ``LineReceiver`` it waits for ``\\r\\n``, so a netcat client's bare
  ``\\n`` never ends a line.
* :class:`BytesUpload` mixes lines and raw bytes: ``SEND 12`` switches to
  raw mode for exactly 12 bytes, then back to lines, even in the middle of
  one chunk.
* :class:`NetstringAnswer` and :class:`Int32Answer` answer the same
  questions (:func:`answer_bytes`) with two other framings: netstrings
  (``12:How are you?,``) and a 4-byte big-endian length prefix.

The course's hardened line servers build on these (the notebook's "Going
further" sections):

* :class:`HalfCloseLineReceiver` answers a half-close (EOF after the last
  line) instead of dropping the replies still to send.
* :class:`TextLineReceiver` is the course's base for line servers: it accepts
  CRLF (telnet) and bare LF (netcat), decodes each line as UTF-8 (a line that
  is not UTF-8 is refused with a message; the connection stays open), replies
  with CRLF, closes with a reason when a line grows past ``MAX_LENGTH``, and
  stops reading a peer that stops reading (aborting it past ``MAX_UNSENT``).
* :func:`visible` spells out control characters, for servers that pass one
  person's text on to another person's terminal.
* :class:`Answer` is the howto's example on top of it, in text.
* :class:`Upload` is :class:`BytesUpload` on top of it, with a size limit and
  a ``TOTAL`` command; :class:`ForgetfulUpload` shows the bug of switching
  back to lines without the leftover bytes.

:func:`main` serves Answer as a standalone program:
``python -m writing_servers.helper_protocols --port 8000``.
"""

import re
from collections.abc import Sequence
from typing import ClassVar

from twisted.internet.interfaces import IConsumer, IHalfCloseableProtocol, IPushProducer, ITransport
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver, LineReceiver, NetstringReceiver
from zope.interface import implementer

from writing_servers.programs import run_server, server_arguments

__all__ = [
    "Answer",
    "BytesAnswer",
    "BytesUpload",
    "ForgetfulUpload",
    "HalfCloseLineReceiver",
    "Int32Answer",
    "NetstringAnswer",
    "TextLineReceiver",
    "Upload",
    "answer_bytes",
    "main",
    "visible",
]


class BytesAnswer(LineReceiver):
    """The howto's Answer in Python 3: a line arrives as bytes, so keys and answers are bytes too."""

    answers: ClassVar[dict[bytes | None, bytes]] = {
        b"How are you?": b"Fine",
        None: b"I don't know what you mean",
    }

    def lineReceived(self, line: bytes) -> None:
        if line in self.answers:
            self.sendLine(self.answers[line])
        else:
            self.sendLine(self.answers[None])


class BytesUpload(LineReceiver):
    """``SEND <n>``, then exactly n raw bytes (CRs and LFs included), then lines again."""

    def lineReceived(self, line: bytes) -> None:
        command, _, size = line.partition(b" ")
        if command == b"SEND" and size.isdigit() and len(size) <= 6 and int(size) > 0:
            self.remaining = int(size)  # at most 999,999: raw mode ignores MAX_LENGTH
            self.upload = b""
            self.setRawMode()  # the rest of this chunk, and what follows, goes to rawDataReceived
        else:
            self.sendLine(b"Error: expected SEND <1 to 999999>")

    def rawDataReceived(self, data: bytes) -> None:
        taken, rest = data[: self.remaining], data[self.remaining :]
        self.upload += taken
        self.remaining -= len(taken)
        if self.remaining == 0:
            self.sendLine(b"OK %d bytes: %r" % (len(self.upload), self.upload))
            self.setLineMode(rest)  # the bytes after the upload are lines again


@implementer(IHalfCloseableProtocol)
class HalfCloseLineReceiver(LineReceiver):
    """A LineReceiver for which a peer's EOF ends its input, not the conversation.

    ``nc -N`` and ``shutdown(SHUT_WR)`` send EOF after the last line while
    still listening.  Declaring IHalfCloseableProtocol makes Twisted call
    :meth:`readConnectionLost` then, instead of dropping the connection and
    any reply not yet sent: a last line without its ending still counts,
    and the connection closes once everything queued is sent.
    """

    def readConnectionLost(self) -> None:
        last = self.clearLineBuffer()
        if last and not self.transport.disconnecting:
            self.lineReceived(last)  # a last line without its line ending
        self.transport.loseConnection()  # once every reply is sent

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()


@implementer(IPushProducer)
class TextLineReceiver(HalfCloseLineReceiver):
    """Lines of UTF-8 text, ended by CRLF (telnet) or a bare LF (netcat); replies end in CRLF.

    Subclasses override :meth:`text_received` and reply with :meth:`send_text`.
    Every line server of the course inherits these answers to bad peers:

    * a line longer than ``MAX_LENGTH``: an error line, then the connection closes;
    * a line that is not UTF-8: an error line; the connection stays open;
    * a peer that half-closes (EOF after its last line, as ``nc -N`` sends):
      its last line is answered even without a line ending, every reply is
      sent, and then the connection closes;
    * a peer that stops reading: Twisted's send buffer for it has no limit
      of its own, but once it holds more than ``bufferSize`` (64 KiB) Twisted
      calls :meth:`pauseProducing`, and we stop reading the peer's requests
      until Twisted has sent it everything (:meth:`resumeProducing`).  Text
      that others send it (chat messages) is still written; past
      ``MAX_UNSENT`` more bytes the connection is aborted, so one stalled
      peer can hold only a bounded amount of the server's memory.
    """

    delimiter = b"\n"  # split on LF alone; a CR before it is stripped below
    MAX_LENGTH = 1024  # bytes per line, not counting the LF; bounds what a client can make us buffer
    # Bytes we may still write to a peer after pauseProducing: Twisted's buffer is unbounded and
    # only signals at 64 KiB, so this is the bound.  Large enough that a burst (200 people each
    # saying 1,000 bytes at once) never cuts off a peer that is keeping up; small enough that a
    # thousand stalled peers cost about a gigabyte at worst.
    MAX_UNSENT = 1024 * 1024
    log = Logger()

    def makeConnection(self, transport: ITransport) -> None:
        self._unsent: int | None = None  # bytes queued since the peer fell behind; None: it keeps up
        self._dropped = False
        # As a registered producer we hear from Twisted when this peer stops reading.
        IConsumer(transport).registerProducer(self, True)
        super().makeConnection(transport)

    def lineReceived(self, line: bytes) -> None:
        line = line.removesuffix(b"\r")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            # Policy: refuse the line, say why, keep the connection.
            self.send_error("that line is not UTF-8 text")
            return
        self.text_received(text)

    def text_received(self, text: str) -> None:
        """Called with each line, decoded, without its line ending."""
        raise NotImplementedError

    def send_text(self, text: str) -> None:
        """Send *text* as one UTF-8 line ending in CRLF, as the Internet's line protocols do."""
        self.send_bytes(text.encode("utf-8") + b"\r\n")

    def send_error(self, reason: str) -> None:
        """Tell the peer what was wrong with its input; a protocol with its own format overrides this."""
        self.send_text(f"Error: {reason}")

    def send_bytes(self, data: bytes) -> None:
        """Send *data*, whole lines already encoded, unless this peer has fallen too far behind."""
        if self._unsent is not None:
            self._unsent += len(data)
            if self._unsent > self.MAX_UNSENT:
                self.drop_slow_reader()
                return
        self.transport.write(data)

    def drop_slow_reader(self) -> None:
        """Abort a connection whose peer stopped reading: waiting for it would cost unbounded memory."""
        if not self._dropped:
            self._dropped = True
            self.log.warn(
                "{who} stopped reading: more than {limit} bytes waiting for it; connection aborted",
                who=self.peer_description(),
                limit=self.MAX_UNSENT,
            )
            self.transport.abortConnection()  # loseConnection would wait for it to read everything

    def peer_description(self) -> str:
        """Who is at the other end, for the server log."""
        return "a client"

    def lineLengthExceeded(self, line: bytes) -> None:
        self.send_error(f"line longer than {self.MAX_LENGTH} bytes; closing the connection")
        self.transport.loseConnection()

    # IPushProducer: Twisted calls these as the peer falls behind reading and catches up.

    def pauseProducing(self) -> None:
        if self._unsent is None:
            self._unsent = 0
            super().pauseProducing()  # LineReceiver stops reading the peer's requests

    def resumeProducing(self) -> None:
        if self.transport.disconnecting:
            # Twisted holds a closing connection open while a producer is registered.
            self.transport.unregisterProducer()
            return
        self._unsent = None
        super().resumeProducing()

    def stopProducing(self) -> None:
        self.paused = True  # the connection is gone; nothing more to read


def visible(text: str) -> str:
    """*text* with every non-printable character spelled out, so that it cannot steer a terminal.

    C0 controls and DEL become caret notation, as ``cat -v`` shows them
    (ESC is ``^[``, CR is ``^M``, tab is ``^I``, DEL is ``^?``).  Other
    invisible characters (C1 controls, bidirectional overrides, zero-width
    spaces, line separators) become their code point, such as ``<U+202E>``.
    """
    shown = []
    for char in text:
        if char.isprintable():
            shown.append(char)
        elif char < " " or char == "\x7f":
            shown.append("^" + chr(ord(char) ^ 0x40))  # 0x1b -> "[", 0x0d -> "M", 0x7f -> "?"
        else:
            shown.append(f"<U+{ord(char):04X}>")
    return "".join(shown)


class Answer(TextLineReceiver):
    """The howto's Answer in text, on TextLineReceiver: for telnet and netcat alike."""

    answers: ClassVar[dict[str | None, str]] = {
        "How are you?": "Fine",
        None: "I don't know what you mean",
    }

    def text_received(self, text: str) -> None:
        if text in self.answers:
            self.send_text(self.answers[text])
        else:
            self.send_text(self.answers[None])


SEND = re.compile(r"SEND ([0-9]{1,9})")


class Upload(TextLineReceiver):
    """Lines, except that ``SEND <n>`` is followed by exactly *n* raw bytes.

    Commands: ``SEND <n>`` (then *n* bytes of anything, CRs and LFs
    included), answered ``OK <n> bytes: <the first bytes>``; ``TOTAL``,
    answered with what this connection has uploaded so far.
    """

    MAX_UPLOAD = 1_000_000  # raw mode ignores MAX_LENGTH, so uploads need their own limit

    def connectionMade(self) -> None:
        self.uploads: list[bytes] = []
        self._remaining = 0
        self._pending = bytearray()

    def text_received(self, text: str) -> None:
        if text == "TOTAL":
            total = sum(len(upload) for upload in self.uploads)
            self.send_text(f"TOTAL {total} bytes in {len(self.uploads)} upload(s)")
        elif match := SEND.fullmatch(text):
            self.start_upload(int(match.group(1)))
        else:
            self.send_text("Error: expected SEND <number of bytes> or TOTAL")

    def start_upload(self, size: int) -> None:
        if size > self.MAX_UPLOAD:
            self.send_text(f"Error: at most {self.MAX_UPLOAD} bytes per upload")
        elif size == 0:
            self.finish_upload()
        else:
            self._remaining = size
            self.setRawMode()  # the rest of this chunk, and what follows, goes to rawDataReceived

    def rawDataReceived(self, data: bytes) -> None:
        rest = self.consume(data)
        if rest is not None:  # the upload is complete; whatever followed it is lines again
            self.setLineMode(rest)

    def consume(self, data: bytes) -> bytes | None:
        """Take this upload's bytes from *data*; once it is complete, return the bytes after it."""
        taken, rest = data[: self._remaining], data[self._remaining :]
        self._pending += taken
        self._remaining -= len(taken)
        if self._remaining:
            return None
        self.finish_upload()
        return rest

    def finish_upload(self) -> None:
        upload = bytes(self._pending)
        self._pending.clear()
        self.uploads.append(upload)
        preview = repr(upload[:32]) + ("…" if len(upload) > 32 else "")
        self.send_text(f"OK {len(upload)} bytes: {preview}")


class ForgetfulUpload(Upload):
    """Upload with a deliberate bug: it drops whatever follows an upload in the same chunk."""

    def rawDataReceived(self, data: bytes) -> None:
        if self.consume(data) is not None:
            self.setLineMode()  # the bug: the bytes after the upload are thrown away


def answer_bytes(question: bytes) -> bytes:
    """BytesAnswer's reply to one whole message: the application, with no framing in it."""
    return BytesAnswer.answers.get(question, BytesAnswer.answers[None])


class NetstringAnswer(NetstringReceiver):
    """BytesAnswer's answers, one netstring per question and per answer: ``12:How are you?,``."""

    def stringReceived(self, string: bytes) -> None:
        self.sendString(answer_bytes(string))


class Int32Answer(Int32StringReceiver):
    """BytesAnswer's answers, each after its length in 4 big-endian bytes (``00 00 00 0c`` for 12)."""

    def stringReceived(self, string: bytes) -> None:
        self.sendString(answer_bytes(string))

    def lengthLimitExceeded(self, length: int) -> None:
        self.sendString(b"Error: %d bytes is over the limit of %d; closing" % (length, self.MAX_LENGTH))
        self.transport.loseConnection()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve Answer over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Answer questions, one per line: 'How are you?' gets 'Fine'.")
    args = parser.parse_args(argv)
    return run_server(Factory.forProtocol(Answer), "Answer", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
