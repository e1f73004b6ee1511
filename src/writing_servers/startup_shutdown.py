"""Section "Factory Startup and Shutdown": open shared resources when listening starts, close them when it stops.

A factory's ``startFactory`` runs when the first port using it starts
listening, and ``stopFactory`` when the last one stops: once per period of
listening, however many ports share the factory and however many clients
come and go.  That is the right moment to open and close something all the
connections share, such as a log file.

* :class:`SimpleLoggingProtocol` and :class:`SimpleLogfileFactory` are the
  howto's logging server made right for Python 3, at the howto's size: lines
  arrive as bytes, so the log is opened in binary and each line written as
  it came (without its CR LF).
* :class:`LoggingProtocol` and :class:`LogfileFactory` are the same server
  hardened for the command line (``writing-servers serve logfile``): CR LF
  and bare LF lines, a line-length limit, a half-close's last line, and a
  connection that outlives the factory hangs up.  The file's name is the
  operator's choice, given to the factory; nothing a client sends can change
  where the server writes.
* :class:`EagerLogfileFactory` is a deliberate mistake: it opens its log in
  ``__init__`` and closes it in ``__del__``, too early and too late.

:func:`main` serves the logging server as a standalone program:
``python -m writing_servers.startup_shutdown --port 8000 --log server.log``.
"""

import os
from collections.abc import Sequence
from io import BufferedWriter

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from writing_servers.helper_protocols import HalfCloseLineReceiver
from writing_servers.programs import run_server, server_arguments

__all__ = [
    "EagerLogfileFactory",
    "LogfileFactory",
    "LoggingProtocol",
    "SimpleLogfileFactory",
    "SimpleLoggingProtocol",
    "StrPath",
    "main",
]

StrPath = str | os.PathLike[str]


class SimpleLoggingProtocol(LineReceiver):
    factory: "SimpleLogfileFactory"

    def lineReceived(self, line: bytes) -> None:
        self.factory.log_line(line)


class SimpleLogfileFactory(Factory[SimpleLoggingProtocol]):
    """Write each line a client sends into one log file, open while a port listens."""

    protocol = SimpleLoggingProtocol

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def startFactory(self) -> None:
        self.log = open(self.path, "ab")  # append, in binary: lines arrive as bytes

    def stopFactory(self) -> None:
        self.log.close()

    def log_line(self, line: bytes) -> None:
        self.log.write(line + b"\n")
        self.log.flush()  # now, not when a buffer fills: `tail -f` shows each line at once


class LoggingProtocol(HalfCloseLineReceiver):
    """SimpleLoggingProtocol, hardened: CR LF or LF lines, a length limit, a half-close's last line.

    It never replies: a line over ``MAX_LENGTH`` bytes closes the connection,
    with the reason in the server's own log.
    """

    factory: "LogfileFactory"
    delimiter = b"\n"  # split on LF alone; a CR before it is stripped below
    MAX_LENGTH = 1024  # bytes per line; a longer one closes the connection
    log = Logger()

    def lineReceived(self, line: bytes) -> None:
        if not self.factory.log_line(line.removesuffix(b"\r")):
            # No port is listening any more, so the log is closed, but this
            # connection outlived the ports: nothing it sends can be kept.
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.log.warn("a client sent a line over {limit} bytes; connection closed", limit=self.MAX_LENGTH)
        self.transport.loseConnection()


class LogfileFactory(Factory[LoggingProtocol]):
    """SimpleLogfileFactory, hardened: ``log`` is None while closed, and ``log_line`` says so.

    ``opened`` and ``closed`` count the calls of ``startFactory`` and ``stopFactory``.
    """

    protocol = LoggingProtocol

    def __init__(self, path: StrPath) -> None:
        self.path = path  # fixed here, by the operator; no client can change it
        self.log: BufferedWriter | None = None  # open only while a port is listening
        self.opened = 0
        self.closed = 0

    def startFactory(self) -> None:
        self.log = open(self.path, "ab")  # append, in binary: keep what was there, write bytes as they are
        self.opened += 1

    def stopFactory(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
        self.closed += 1

    def log_line(self, line: bytes) -> bool:
        """Append *line* and a newline to the log; False if the log is closed."""
        if self.log is None:
            return False
        self.log.write(line + b"\n")
        self.log.flush()  # hand each line to the operating system now, not when a buffer fills
        return True


class EagerLogfileFactory(LogfileFactory):
    """A deliberate mistake: the log opens in ``__init__`` and closes in ``__del__``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.log = open(path, "ab")  # too early: nothing listens yet, and maybe nothing ever will
        self.opened += 1

    def startFactory(self) -> None:
        pass  # already open

    def stopFactory(self) -> None:
        pass  # and it stays open: __del__ closes it, whenever that runs

    def __del__(self) -> None:
        if self.log is not None:
            self.log.close()
            self.closed += 1


def main(argv: Sequence[str] | None = None) -> int:
    """Serve LoggingProtocol over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Append each line every client sends to a log file.")
    parser.add_argument(
        "--log",
        metavar="FILE",
        default="server.log",
        help="file to append each line to (default: %(default)s, in the current folder)",
    )
    args = parser.parse_args(argv)
    return run_server(LogfileFactory(args.log), "LoggingProtocol", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
