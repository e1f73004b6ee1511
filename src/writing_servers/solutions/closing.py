"""Solutions to notebook 2's exercises."""

from io import BytesIO

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure


class PoliteButFirm(Protocol):
    """On the first data: send the reply, close politely, and abort if that takes too long."""

    def __init__(self) -> None:
        self.deadline: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        from twisted.internet import reactor

        if self.deadline is not None:
            return  # already closing (over TCP, loseConnection() stops reading; not every transport does)
        self.transport.write(self.factory.reply)
        self.transport.loseConnection()
        self.deadline = reactor.callLater(self.factory.grace_period, self.transport.abortConnection)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()


class FileServer(Protocol):
    """Send factory.data through a FileSender; loseConnection waits until it has unregistered."""

    def connectionMade(self) -> None:
        FileSender().beginFileTransfer(BytesIO(self.factory.data), self.transport)
        self.transport.loseConnection()


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {1: (PoliteButFirm,), 2: (FileServer,)}

WHY = {
    1: "loseConnection() sends the reply first, but waits as long as the client takes to read it; the timer "
    "bounds that wait at factory.grace_period seconds, and abortConnection() ends it whether or not the client "
    "reads. A connection that closed in time cancels its timer in connectionLost, so no abort is left pending.",
    2: "FileSender registers itself with the transport as a pull producer and writes one chunk each time the "
    "transport asks for more, so the file never sits in memory twice; loseConnection() waits until the "
    "FileSender unregisters after its last chunk, so every byte is sent before the close.",
}
