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

from collections.abc import Sequence

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from writing_servers.programs import run_server, server_arguments

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
    parser = server_arguments(
        "Echo what each client sends, after greeting it with the number of open connections."
    )
    args = parser.parse_args(argv)
    return run_server(CountingEchoFactory(), "CountingEcho", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
