"""Notebook 7 (Factory Startup and Shutdown) as a program: serve LoggingProtocol over TCP until interrupted.

A program of the writing-servers course that needs only Twisted (pip install twisted).
Run it with `python logfile.py`; `--help` lists its options.

Written from writing_servers.startup_shutdown by tools/sync_notebooks.py: change the module, not this file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from io import BufferedWriter
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer


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


StrPath = str | os.PathLike[str]


class LoggingProtocol(HalfCloseLineReceiver):
    """SimpleLoggingProtocol, hardened: CR LF or LF lines, a length limit, a half-close's last line.

    It never replies: a line over ``MAX_LENGTH`` bytes closes the connection,
    with the reason in the server's own log.
    """

    factory: LogfileFactory
    delimiter = b"\n"  # split on LF alone; a CR before it is stripped below
    MAX_LENGTH = 1024  # bytes per line; a longer one closes the connection
    log = Logger()

    def lineReceived(self, line: bytes) -> None:
        if not self.factory.log_line(line.removesuffix(b"\r")):
            # No port is listening any more, so the log is closed, but this
            # connection outlived the ports: nothing it sends can be kept.
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.log.warn("a client sent a line over {limit} bytes; connection closed", limit=self.MAX_LENGTH)
        self.transport.loseConnection()


class LogfileFactory(Factory[LoggingProtocol]):
    """SimpleLogfileFactory, hardened: ``log`` is None while closed, and ``log_line`` says so.

    ``opened`` and ``closed`` count the calls of ``startFactory`` and ``stopFactory``.
    """

    protocol = LoggingProtocol

    def __init__(self, path: StrPath) -> None:
        self.path = path  # fixed here, by the operator; no client can change it
        self.log: BufferedWriter | None = None  # open only while a port is listening
        self.opened = 0
        self.closed = 0

    def startFactory(self) -> None:
        self.log = open(self.path, "ab")  # append, in binary: keep what was there, write bytes as they are
        self.opened += 1

    def stopFactory(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
        self.closed += 1

    def log_line(self, line: bytes) -> bool:
        """Append *line* and a newline to the log; False if the log is closed."""
        if self.log is None:
            return False
        self.log.write(line + b"\n")
        self.log.flush()  # hand each line to the operating system now, not when a buffer fills
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """Serve LoggingProtocol over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Append each line every client sends to a log file.")
    parser.add_argument(
        "--log",
        metavar="FILE",
        default="server.log",
        help="file to append each line to (default: %(default)s, in the current folder)",
    )
    args = parser.parse_args(argv)
    return run_server(LogfileFactory(args.log), "LoggingProtocol", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
