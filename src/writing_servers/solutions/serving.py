"""Solutions to notebook 3's exercises."""

import os

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ServerEndpoint, quoteStringArgument
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTCP
from twisted.internet.protocol import Factory

from writing_servers.protocols import QOTD
from writing_servers.serving import QOTDFactory


def listen_twice(reactor: IReactorTCP, factory: Factory) -> "Deferred[list[IListeningPort]]":
    """Listen with one factory on two free loopback ports; fire with both ports."""
    endpoints = [TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1") for _ in range(2)]
    # Each listen() promises one port; gatherResults waits for both (and fails if either does).
    return gatherResults([endpoint.listen(factory) for endpoint in endpoints])


def private_unix_endpoint(folder: str) -> str:
    """A UNIX socket named qotd.sock in *folder* that only its owner may connect to.

    The mode is octal, as for chmod.  quoteStringArgument escapes any ':' or
    '\\' in the path, which would otherwise end it early (a Windows path has both).
    """
    return f"unix:{quoteStringArgument(os.path.join(folder, 'qotd.sock'))}:mode=600"


class LimitedQOTDFactory(QOTDFactory):
    """Serve a quote to the first *limit* connections, then turn everyone away."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.served = 0

    def buildProtocol(self, addr: IAddress) -> QOTD | None:
        if self.served >= self.limit:
            return None  # the port closes the new connection at once
        self.served += 1
        return QOTD()


EXERCISES = {1: (listen_twice,), 2: (private_unix_endpoint,), 3: (LimitedQOTDFactory,)}

WHY = {
    1: "Port 0 asks the system for a new free port at every listen, and interface='127.0.0.1' keeps both "
    "ports private to this machine; gatherResults turns the two Deferreds listen() returns into one that "
    "fires with both ports, and the caller waits for that one.",
    2: "A description is the kind, the path, then name=value options, all separated by colons; Twisted "
    "reads mode in octal, as chmod does, so mode=600 lets only the socket's owner connect.",
    3: "The factory sees every connection, so it keeps the count; buildProtocol returning None makes the "
    "port close the connection before any protocol exists, and only a connection served adds to served.",
}
