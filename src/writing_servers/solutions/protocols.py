"""Solutions to notebook 1's exercises."""

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol

from writing_servers.protocols import CountingEcho, CountingEchoFactory


class ShoutingEcho(Protocol):
    """Echo, upper-cased. ``bytes.upper`` changes ASCII letters only, so ü stays ü."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.upper())


class GoodbyeQOTD(Protocol):
    """A quote, then a goodbye, then close: loseConnection still sends both lines first."""

    def connectionMade(self) -> None:
        self.transport.write(b"An apple a day keeps the doctor away\r\n")
        self.transport.write(b"Goodbye!\r\n")
        self.transport.loseConnection()


class TotalCountingEcho(CountingEcho):
    """Greets with the open connections and every connection since the server started."""

    factory: "TotalCountingEchoFactory"

    def connectionMade(self) -> None:
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.factory.totalConnections = self.factory.totalConnections + 1
        self.transport.write(
            b"Welcome! There are currently %d open connections; %d since the server started.\r\n"
            % (self.factory.numProtocols, self.factory.totalConnections)
        )

    # connectionLost (inherited) decrements numProtocols only: a total never goes down.


class TotalCountingEchoFactory(CountingEchoFactory):
    def __init__(self) -> None:
        super().__init__()
        self.totalConnections = 0

    def buildProtocol(self, addr: IAddress) -> TotalCountingEcho:
        return TotalCountingEcho(self)


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {1: (ShoutingEcho,), 2: (GoodbyeQOTD,), 3: (TotalCountingEcho, TotalCountingEchoFactory)}

WHY = {
    1: "dataReceived gets bytes and transport.write takes bytes, and bytes.upper() works on bytes: no "
    "decoding, so a character split across two chunks is never broken (it changes ASCII letters only).",
    2: "loseConnection() closes only after everything already written has been sent, so both lines "
    "arrive before the close; a write after it would be dropped.",
    3: "The factory outlives every connection, so it keeps the count; connectionMade adds to both "
    "numbers, and the inherited connectionLost takes one from numProtocols only.",
}
