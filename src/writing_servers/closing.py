"""Section "loseConnection() and abortConnection()": two ways for a server to hang up.

* ``loseConnection()`` is polite: Twisted first writes out everything the
  protocol has written (and waits for a registered producer to finish), then
  closes with a FIN.  The peer gets every byte, then a clean end of stream.
* ``abortConnection()`` is immediate: whatever is still unsent is dropped,
  and the peer gets a reset (RST), not a clean end.
* A peer that never reads can keep a politely closed connection open
  forever, because the data can never all be written.  The defence is a
  deadline: close politely, and abort if the connection is still open after
  a grace period.

The servers here:

* :class:`WriteThenLose` and :class:`WriteThenAbort` are the howto's shape
  (write, then hang up at once, as QOTD does) with a reply far larger than
  socket buffers hold (:func:`big_reply`): the notebook's first two servers.
  They answer the client's first bytes rather than ``connectionMade``, so a
  client is surely connected before the server hangs up.
* :class:`BigReply` answers a request line (``lose`` or ``abort``) with that
  reply, then hangs up as asked: the same two servers in one, for a terminal.
* :class:`DeadlineBigReply` hangs up politely but aborts after the factory's
  ``grace_period``, using Twisted's :class:`~twisted.protocols.policies.TimeoutMixin`.
* :class:`Countdown` sends its lines through a pull producer
  (:class:`LineProducer`) and calls ``loseConnection()`` at once; the
  connection closes only once the producer unregisters.

:func:`main` serves DeadlineBigReply as a standalone program:
``python -m writing_servers.closing --port 8000``.
"""

from collections.abc import Sequence
from typing import cast

from twisted.internet.interfaces import IConsumer, IPullProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from writing_servers.programs import run_server, server_arguments

__all__ = [
    "REPLY_SIZE",
    "BigReply",
    "BigReplyFactory",
    "Countdown",
    "CountdownFactory",
    "DeadlineBigReply",
    "DeadlineBigReplyFactory",
    "LineProducer",
    "WriteThenAbort",
    "WriteThenLose",
    "big_reply",
    "main",
]

#: 8 MiB: far more than the kernel's socket buffers hold on either side.
REPLY_SIZE = 8 * 1024 * 1024


def big_reply(size: int = REPLY_SIZE) -> bytes:
    """*size* bytes of text lines (8 MiB by default), to send to a client that may not read them."""
    line = b"All work and no play makes Jack a dull boy. 0123456789abcdef\r\n"
    return (line * (size // len(line) + 1))[:size]


class WriteThenLose(Protocol):
    """Answer whatever arrives with a big reply, then hang up politely."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(big_reply())
        self.transport.loseConnection()


class WriteThenAbort(Protocol):
    """Answer whatever arrives with a big reply, then hang up at once."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(big_reply())
        self.transport.abortConnection()


class BigReply(Protocol):
    """Answer one request line with a big reply, then hang up as asked.

    ``lose`` closes with ``loseConnection()``, ``abort`` with
    ``abortConnection()``; anything else gets a short complaint and a
    polite close.
    """

    factory: "BigReplyFactory"

    def __init__(self) -> None:
        self.request = b""

    def dataReceived(self, data: bytes) -> None:
        if b"\n" in self.request:
            return  # already answered; we are hanging up
        self.request += data
        if b"\n" in self.request:
            command = self.request.split(b"\n", 1)[0].strip()
            self.answer(command)

    def answer(self, command: bytes) -> None:
        if command == b"lose":
            self.transport.write(self.factory.reply)
            self.transport.loseConnection()
        elif command == b"abort":
            self.transport.write(self.factory.reply)
            self.transport.abortConnection()
        else:
            self.transport.write(b"say lose or abort\r\n")
            self.transport.loseConnection()


class BigReplyFactory(Factory[BigReply]):
    """Build BigReply protocols and hold the reply they all send (*size* bytes)."""

    protocol = BigReply

    def __init__(self, size: int = REPLY_SIZE) -> None:
        self.reply = big_reply(size)


class DeadlineBigReply(BigReply, TimeoutMixin):
    """A BigReply that will not wait forever: a polite close becomes an abort after a grace period."""

    factory: "DeadlineBigReplyFactory"

    def answer(self, command: bytes) -> None:
        super().answer(command)
        if command != b"abort":
            self.setTimeout(self.factory.grace_period)

    def timeoutConnection(self) -> None:
        # TimeoutMixin's default calls loseConnection(): no use against a peer that never reads.
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)  # closed in time: cancel the pending abort


class DeadlineBigReplyFactory(BigReplyFactory):
    """BigReplyFactory whose protocols abort *grace_period* seconds after closing politely."""

    protocol = DeadlineBigReply

    def __init__(self, size: int = REPLY_SIZE, grace_period: float = 30.0) -> None:
        super().__init__(size)
        self.grace_period = grace_period


@implementer(IPullProducer)
class LineProducer:
    """A pull producer: write one line each time the consumer asks for more.

    After the last line it unregisters itself, which is what lets a pending
    ``loseConnection()`` go ahead.  With *unregister_when_done* false it
    forgets to, and the connection stays open until :meth:`finish` is called.
    """

    def __init__(self, consumer: IConsumer, lines: list[bytes], unregister_when_done: bool = True) -> None:
        self.consumer = consumer
        self.lines = list(lines)
        self.unregister_when_done = unregister_when_done
        self.finished = False

    def resumeProducing(self) -> None:
        if self.lines:
            self.consumer.write(self.lines.pop(0) + b"\r\n")
        elif self.unregister_when_done:
            self.finish()

    def finish(self) -> None:
        """Tell the consumer this producer is done (once)."""
        if not self.finished:
            self.finished = True
            self.consumer.unregisterProducer()

    def stopProducing(self) -> None:
        # The connection is gone: nothing more to write, nobody to tell.
        self.lines.clear()
        self.finished = True


class Countdown(Protocol):
    """Count down through a producer, and ask to close before the first line is out."""

    factory: "CountdownFactory"

    def connectionMade(self) -> None:
        consumer = cast(IConsumer, self.transport)  # a TCP transport is also a consumer
        producer = LineProducer(consumer, self.factory.lines, self.factory.unregister_when_done)
        self.factory.producers.append(producer)
        self.transport.registerProducer(producer, False)  # False: a pull producer
        self.transport.loseConnection()


class CountdownFactory(Factory[Countdown]):
    """Build Countdown protocols; keep their producers so a cell can finish them by hand."""

    protocol = Countdown

    def __init__(self, unregister_when_done: bool = True) -> None:
        self.lines = [b"3", b"2", b"1", b"liftoff!"]
        self.unregister_when_done = unregister_when_done
        self.producers: list[LineProducer] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Serve DeadlineBigReply over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Answer 'lose' or 'abort' with an 8 MiB reply, then hang up as asked.")
    parser.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        help="seconds a polite close may take before it becomes an abort",
    )
    args = parser.parse_args(argv)
    return run_server(
        DeadlineBigReplyFactory(grace_period=args.grace_period), "DeadlineBigReply", args.port, args.interface
    )


if __name__ == "__main__":
    raise SystemExit(main())
