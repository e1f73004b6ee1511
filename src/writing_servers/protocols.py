"""Section "Protocols": a protocol is an object whose methods Twisted calls on events.

Three servers from the howto's first section, in modern Python 3:

* :class:`Echo` writes back whatever arrives.
* :class:`QOTD` sends a quote of the day (RFC 865) and closes the connection.
* :class:`CountingEcho` greets each client with the number of open
  connections.  A protocol lives only as long as its connection, so the count
  lives on the factory, which outlives them all.

:func:`main` serves CountingEcho as a standalone program:
``python -m writing_servers.protocols --port 8000``.
"""

import sys
from collections.abc import Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

__all__ = ["QOTD", "CountingEcho", "CountingEchoFactory", "Echo", "main"]


class Echo(Protocol):
    """Write every byte back as soon as it arrives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class QOTD(Protocol):
    """Send a quote of the day (RFC 865), then close the connection."""

    def connectionMade(self) -> None:
        self.transport.write(b"An apple a day keeps the doctor away\r\n")
        self.transport.loseConnection()


class CountingEcho(Protocol):
    """An echo that tells each newcomer how many connections are open."""

    factory: "CountingEchoFactory"

    def __init__(self, factory: "CountingEchoFactory") -> None:
        self.factory = factory

    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.transport.write(
            b"Welcome! There are currently %d open connections.\r\n" % (self.factory.numProtocols,)
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.numProtocols = self.factory.numProtocols - 1

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class CountingEchoFactory(Factory):
    """Build one CountingEcho per connection and keep the count they share."""

    def __init__(self) -> None:
        self.numProtocols = 0

    def buildProtocol(self, addr: IAddress) -> CountingEcho:
        return CountingEcho(self)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve CountingEcho over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    import argparse

    from twisted.internet import reactor

    parser = argparse.ArgumentParser(
        description="Echo what each client sends, after greeting it with the number of open connections."
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on; 0 picks a free one")
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on (default: loopback)")
    args = parser.parse_args(argv)

    failures: list[Failure] = []

    def announce(port: IListeningPort) -> None:
        address = port.getHost()
        assert isinstance(address, IPv4Address)  # what a TCP4 endpoint's port is bound to
        print(f"Serving CountingEcho on {address.host} port {address.port}; Ctrl-C stops it.", flush=True)

    def give_up(failure: Failure) -> None:
        failures.append(failure)
        print(f"Cannot listen: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        # A port already in use fails at once, before reactor.run() below has
        # started the reactor: stop it as soon as it runs (or now, if it does).
        reactor.callWhenRunning(reactor.stop)

    endpoint = TCP4ServerEndpoint(reactor, args.port, interface=args.interface)
    listening = endpoint.listen(CountingEchoFactory())
    listening.addCallbacks(announce, give_up)
    reactor.run()  # blocks until Ctrl-C, SIGTERM or reactor.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
