"""Section "Protocols": a protocol is an object whose methods Twisted calls on events.

Three servers from the howto's first section, in modern Python 3:

* :class:`Echo` writes back whatever arrives.
* :class:`QOTD` sends a quote of the day (RFC 865) and closes the connection.
* :class:`CountingEcho` greets each client with the number of open
  connections.  A protocol lives only as long as its connection, so the count
  lives on the factory, which outlives them all.

And one for notebook 1's "Going further":

* :class:`IdleTimeoutEcho` is an Echo that hangs up on a client silent for
  longer than its factory's ``idle_timeout``.  TCP alone never notices an
  idle peer that vanished (cable pulled, machine off); a timeout does.

:func:`main` serves CountingEcho as a standalone program:
``python -m writing_servers.protocols --port 8000``.
"""

from collections.abc import Sequence

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from writing_servers.programs import run_server, server_arguments

__all__ = [
    "QOTD",
    "CountingEcho",
    "CountingEchoFactory",
    "Echo",
    "IdleTimeoutEcho",
    "IdleTimeoutEchoFactory",
    "main",
]


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
    def __init__(self) -> None:
        self.numProtocols = 0

    def buildProtocol(self, addr: IAddress) -> CountingEcho:
        return CountingEcho(self)


class IdleTimeoutEcho(TimeoutMixin, Protocol):
    """An echo that hangs up on a client silent for its factory's idle_timeout seconds."""

    factory: "IdleTimeoutEchoFactory"

    def __init__(self, factory: "IdleTimeoutEchoFactory") -> None:
        self.factory = factory

    def connectionMade(self) -> None:
        self.setTimeout(self.factory.idle_timeout)  # timeoutConnection() runs when it expires

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()  # the client spoke: start the idle clock again
        self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)  # the connection is gone: no timeout left to fire


class IdleTimeoutEchoFactory(Factory):
    """How long a client may stay silent is configuration, so it lives on the factory."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout

    def buildProtocol(self, addr: IAddress) -> IdleTimeoutEcho:
        return IdleTimeoutEcho(self)


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
