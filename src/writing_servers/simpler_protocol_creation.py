"""Section "Simpler Protocol Creation": let the default ``buildProtocol`` do the work.

``Factory.buildProtocol`` already does what most factories need: it calls
the factory's ``protocol`` attribute to make a protocol, sets that
protocol's ``factory`` attribute to the factory, and returns it.  So a
factory usually names its protocol class and keeps the configuration and
shared state; it overrides nothing.

* :class:`ConfigurableQOTD` and :class:`ConfigurableQOTDFactory` are the
  howto's configurable quote server in Python 3.  The quote is kept on the
  factory as text and encoded as UTF-8 when it is written, at the edge.
* :class:`SimpleCountingEcho` and :class:`SimpleCountingEchoFactory` are
  notebook 1's counting echo without its ``__init__`` and ``buildProtocol``:
  same behaviour, less code.
* :class:`LimitedCountingEchoFactory` shows when overriding
  ``buildProtocol`` still pays: it returns ``None`` to refuse a connection
  once ``limit`` are open, and otherwise calls ``super().buildProtocol``.

:func:`main` serves ConfigurableQOTD as a standalone program:
``python -m writing_servers.simpler_protocol_creation --port 8000 --quote "..."``.
"""

from collections.abc import Sequence

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from writing_servers.programs import run_server, server_arguments

__all__ = [
    "DEFAULT_QUOTE",
    "ConfigurableQOTD",
    "ConfigurableQOTDFactory",
    "LimitedCountingEchoFactory",
    "SimpleCountingEcho",
    "SimpleCountingEchoFactory",
    "main",
]

DEFAULT_QUOTE = "An apple a day keeps the doctor away"


class ConfigurableQOTD(Protocol):
    """Send the factory's quote (RFC 865), then close the connection."""

    factory: "ConfigurableQOTDFactory"  # set by Factory.buildProtocol, after __init__

    def connectionMade(self) -> None:
        self.transport.write(self.factory.quote.encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class ConfigurableQOTDFactory(Factory[ConfigurableQOTD]):
    """Keep the quote, as text; the default buildProtocol makes a ConfigurableQOTD per connection."""

    protocol = ConfigurableQOTD

    def __init__(self, quote: str = DEFAULT_QUOTE) -> None:
        self.quote = quote


class SimpleCountingEcho(Protocol):
    """Notebook 1's CountingEcho without an __init__: buildProtocol sets self.factory."""

    factory: "SimpleCountingEchoFactory"

    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.transport.write(
            b"Welcome! There are currently %d open connections.\r\n" % (self.factory.numProtocols,)
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.numProtocols = self.factory.numProtocols - 1

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class SimpleCountingEchoFactory(Factory[SimpleCountingEcho]):
    """Keep the count; the default buildProtocol makes a SimpleCountingEcho per connection."""

    protocol = SimpleCountingEcho

    def __init__(self) -> None:
        self.numProtocols = 0


class LimitedCountingEchoFactory(SimpleCountingEchoFactory):
    """A SimpleCountingEchoFactory that turns new clients away while ``limit`` connections are open."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def buildProtocol(self, addr: IAddress) -> SimpleCountingEcho | None:
        if self.numProtocols >= self.limit:
            return None  # the listening port closes this connection at once
        return super().buildProtocol(addr)  # the default: make the protocol, set its .factory


def main(argv: Sequence[str] | None = None) -> int:
    """Serve ConfigurableQOTD over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Serve a quote of the day (RFC 865) of your choice over TCP.")
    parser.add_argument("--quote", default=DEFAULT_QUOTE, help="the quote to send each client")
    args = parser.parse_args(argv)
    return run_server(ConfigurableQOTDFactory(args.quote), "ConfigurableQOTD", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
