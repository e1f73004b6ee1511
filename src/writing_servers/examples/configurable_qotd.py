"""Notebook 6 (Simpler Protocol Creation) as a program: serve ConfigurableQOTD over TCP until interrupted.

A program of the writing-servers course that needs only Twisted (pip install twisted).
Run it with `python configurable_qotd.py`; `--help` lists its options.

Written from writing_servers.simpler_protocol_creation by tools/sync_notebooks.py: change the module, not this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
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


DEFAULT_QUOTE = "An apple a day keeps the doctor away"


class ConfigurableQOTD(Protocol):
    """Send the factory's quote (RFC 865), then close the connection."""

    factory: ConfigurableQOTDFactory  # set by Factory.buildProtocol, after __init__

    def connectionMade(self) -> None:
        self.transport.write(self.factory.quote.encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class ConfigurableQOTDFactory(Factory[ConfigurableQOTD]):
    """Keep the quote, as text; the default buildProtocol makes a ConfigurableQOTD per connection."""

    protocol = ConfigurableQOTD

    def __init__(self, quote: str = DEFAULT_QUOTE) -> None:
        self.quote = quote


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
