"""Solutions to notebook 7's exercises.

The notebook's exercise cells build on its SimpleLogfileFactory and
SimpleLoggingProtocol; these build on the hardened LogfileFactory and
LoggingProtocol (its "Going further" sections), so that they also take
netcat's LF lines.  The bodies are the same on either.
"""

from twisted.internet.interfaces import IAddress

from writing_servers.startup_shutdown import LogfileFactory, LoggingProtocol


class AnnouncingLogfileFactory(LogfileFactory):
    """A LogfileFactory that marks each period of listening in the log."""

    def startFactory(self) -> None:
        super().startFactory()
        self.log_line(b"# started")

    def stopFactory(self) -> None:
        self.log_line(b"# stopped")  # before the parent closes the file
        super().stopFactory()


class LineNumberingProtocol(LoggingProtocol):
    """Log each line as ``<n>: <line>``, counting this connection's lines from 1."""

    def connectionMade(self) -> None:
        self.lines = 0  # one protocol per connection: a count per client

    def lineReceived(self, line: bytes) -> None:
        self.lines += 1
        super().lineReceived(b"%d: " % self.lines + line)


class ClientNumberedProtocol(LoggingProtocol):
    """Log each line as ``client <number>: <line>``."""

    number = 0  # the factory sets this when it builds the protocol

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(b"client %d: " % self.number + line)


class ClientNumberingFactory(LogfileFactory):
    """Number clients in the order they connect, from 1 in each period of listening."""

    protocol = ClientNumberedProtocol

    def startFactory(self) -> None:
        super().startFactory()
        self.clients = 0  # per period of listening, so here and not in __init__

    def buildProtocol(self, addr: IAddress) -> LoggingProtocol | None:
        protocol = super().buildProtocol(addr)
        if isinstance(protocol, ClientNumberedProtocol):
            self.clients += 1
            protocol.number = self.clients
        return protocol


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {
    1: (AnnouncingLogfileFactory,),
    2: (LineNumberingProtocol,),
    3: (ClientNumberedProtocol, ClientNumberingFactory),
}

WHY = {
    1: "The parent's startFactory opens the log and its stopFactory closes it, so '# started' goes after "
    "the one and '# stopped' before the other; both hooks run once per period of listening, however "
    "many clients come.",
    2: "Twisted builds one protocol per connection, so a count on self belongs to one client: it starts "
    "at 0 in connectionMade and no other client can move it.",
    3: "The factory sees every client arrive (buildProtocol), so it keeps the count and hands each "
    "protocol its own number; startFactory runs at every start, so the count begins again there.",
}
