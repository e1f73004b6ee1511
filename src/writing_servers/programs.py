"""What a standalone server program adds around its factory: a command line and reactor.run().

Every section's ``main()`` (and so every "Use it in your project" program)
is a few lines on top of these two functions: parse ``--port`` and
``--interface``, listen with a TCP endpoint, say where, and run the reactor
until Ctrl-C.  Importing this module starts nothing: the reactor is imported
inside :func:`run_server`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

__all__ = ["run_server", "server_arguments"]


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
