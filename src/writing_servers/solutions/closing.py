"""Solutions to notebook 2's exercises."""

from io import BytesIO

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure


class PoliteButFirm(Protocol):
    """On the first line: send the reply, close politely, and abort if that takes too long."""

    def __init__(self) -> None:
        self.deadline: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.deadline is not None:
            return  # already answered and closing
        from twisted.internet import reactor

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
