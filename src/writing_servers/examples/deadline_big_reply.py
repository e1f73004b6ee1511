"""Notebook 2 (loseConnection and abortConnection) as a program: serve DeadlineBigReply over TCP until interrupted.

A program of the writing-servers course that needs only Twisted (pip install twisted).
Run it with `python deadline_big_reply.py`; `--help` lists its options.

Written from writing_servers.closing by tools/sync_notebooks.py: change the module, not this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure


def server_arguments(description: str, default_port: int = 8000) -> argparse.ArgumentParser:
    """A command line with ``--port`` (0 picks a free one) and ``--interface`` (loopback by default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--port", type=int, default=default_port, help="TCP port to listen on; 0 picks a free one"
    )
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on (default: loopback)")
    return parser


def run_server(factory: Factory[Any], name: str, port: int, interface: str) -> int:
    """Serve *factory* over TCP until interrupted; return the exit status.

    Prints one line once listening (with the real port, which matters for
    ``--port 0``), or one line on stderr and status 1 when it cannot listen.
    """
    from twisted.internet import reactor

    failures: list[Failure] = []

    def announce(listening_port: IListeningPort) -> None:
        address = listening_port.getHost()
        assert isinstance(address, IPv4Address)  # what a TCP4 endpoint's port is bound to
        print(f"Serving {name} on {address.host} port {address.port}; Ctrl-C stops it.", flush=True)

    def give_up(failure: Failure) -> None:
        failures.append(failure)
        print(f"Cannot listen: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        reactor.stop()

    def start_listening() -> None:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=interface)
        endpoint.listen(factory).addCallbacks(announce, give_up)

    # Listen once the reactor runs, so its Ctrl-C handler is in place before
    # "Serving ..." invites anyone to connect (or press Ctrl-C).
    reactor.callWhenRunning(start_listening)
    reactor.run()  # blocks until Ctrl-C, SIGTERM or reactor.stop()
    return 1 if failures else 0


REPLY_SIZE = 8 * 1024 * 1024


def big_reply(size: int = REPLY_SIZE) -> bytes:
    """*size* bytes of text lines (8 MiB by default), to send to a client that may not read them."""
    line = b"All work and no play makes Jack a dull boy. 0123456789abcdef\r\n"
    return (line * (size // len(line) + 1))[:size]


class BigReply(Protocol):
    """Answer one request line with a big reply, then hang up as asked.

    ``lose`` closes with ``loseConnection()``, ``abort`` with
    ``abortConnection()``; anything else gets a short complaint and a
    polite close.
    """

    factory: BigReplyFactory

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

    factory: DeadlineBigReplyFactory

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
