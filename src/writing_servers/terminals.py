"""What ``writing-servers serve`` puts around a section's protocol for a classroom of terminals.

Three things the section modules leave out, because the lessons do not need
them and a real class does:

* **Telnet.**  A telnet client is not a plain byte pipe: it sends commands
  that begin with the byte IAC (255).  inetutils telnet reads the byte 0x9C
  inside "✓" or "“" as Ctrl-\\, sends a break and ``IAC DO TIMING-MARK``, and
  then shows nothing until the server answers.  :class:`TerminalConnection`
  runs Twisted's own telnet parser (:class:`twisted.conch.telnet.TelnetTransport`)
  between the socket and the section's protocol: it answers TIMING-MARK,
  refuses every other option, and passes only application bytes on.  A
  client that never sends IAC (nc, or any program) sees exactly the bytes it
  saw before.
* **Half-close.**  A protocol that does not implement
  ``IHalfCloseableProtocol`` loses its connection as soon as the client
  half-closes (``nc -N``), and a reply not yet sent with it.  Here it gets
  ``loseConnection()`` instead, which sends every written byte first.
* **A log for the teacher.**  One line per connection, join, leave, name
  clash, cut-off and error (:class:`TeacherLog`; :class:`ClassroomChat` and
  :class:`ClassroomChatRoom` tell it the chats' own events).

Nothing here imports a reactor or the notebooks' runtime.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO, Any

from twisted.conch.telnet import IAC, TelnetTransport
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol, IProtocol, IProtocolFactory
from twisted.internet.protocol import connectionDone
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from writing_servers.chat import Chat, ChatFactory, name_problem
from writing_servers.state_machines import ChatRoom, Member

__all__ = [
    "TIMING_MARK",
    "ClassroomChat",
    "ClassroomChatFactory",
    "ClassroomChatRoom",
    "TeacherLog",
    "TerminalConnection",
    "TerminalFactory",
    "classroom_log",
    "describe_address",
]

#: Telnet's TIMING-MARK option (RFC 860); twisted.conch.telnet has no name for it.
TIMING_MARK = bytes([6])

_CARRIAGE_RETURN = re.compile(b"(\r)")

#: The teacher's log: what happens to each connection, and in the chat.  Only these info events are
#: printed; Twisted's own (such as "Starting factory") are not.
classroom_log = Logger(namespace="writing_servers.classroom")


def describe_address(address: IAddress | None) -> str:
    """``10.0.0.7:51234`` or ``[::1]:51234``: who is at the other end, for the log."""
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    return str(address)


@implementer(IHalfCloseableProtocol)
class TerminalConnection(TelnetTransport):
    """The transport a section's protocol sees: telnet commands answered and removed, half-close made safe.

    Like Twisted's ``policies.ProtocolWrapper``, it provides whatever the
    real transport provides (TCP_NODELAY, producers, ``abortConnection``) by
    handing those calls on.
    """

    transport: Any  # the real one (TCP), once makeConnection has run
    protocol: Any  # the section's protocol

    def __init__(self, factory: TerminalFactory, wrapped: IProtocol, speaks_telnet: bool) -> None:
        super().__init__()
        self.factory = factory
        self.protocol = wrapped
        self.speaks_telnet = speaks_telnet
        self.peer = "a client"

    def logPrefix(self) -> str:
        return type(self.protocol).__name__

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class lacks: setTcpNoDelay, abortConnection, registerProducer...
        if name.startswith("__"):  # not __conform__: adapting this object must not adapt the transport
            raise AttributeError(name)
        return getattr(self.transport, name)

    @property
    def disconnecting(self) -> bool:  # type: ignore[override]  # TelnetTransport's attribute is never updated
        return bool(self.transport is not None and self.transport.disconnecting)

    def makeConnection(self, transport: Any) -> None:
        directlyProvides(self, providedBy(transport))  # e.g. ITCPTransport, IConsumer
        super().makeConnection(transport)

    def connectionMade(self) -> None:
        self.peer = describe_address(self.transport.getPeer())
        self.factory.registerProtocol(self)
        classroom_log.info("{peer} connected", peer=self.peer)
        self.protocol.makeConnection(self)

    def dataReceived(self, data: bytes) -> None:
        if not self.speaks_telnet:
            self.protocol.dataReceived(data)
            return
        # Twisted's parser also reads telnet's CR LF as a newline and hands on a bare LF.  The
        # course's servers were written for raw TCP, and bytes-answer needs the CR LF, so bytes
        # outside a telnet command (a CR too) pass through as they came; only IAC goes to the parser.
        for piece in _CARRIAGE_RETURN.split(data):
            if self.state == "data" and IAC not in piece:
                if piece:
                    self.applicationDataReceived(piece)
            else:
                super().dataReceived(piece)

    def write(self, data: bytes) -> None:
        self.transport.write(self._escaped(data))

    def writeSequence(self, data: list[bytes]) -> None:
        self.transport.writeSequence([self._escaped(part) for part in data])

    def _escaped(self, data: bytes) -> bytes:
        # In telnet a data byte 255 is sent twice, so that it is not read as IAC.  UTF-8 never has it.
        return data.replace(IAC, IAC + IAC) if self.speaks_telnet else data

    # Telnet negotiation: the server offers nothing and accepts only TIMING-MARK.

    def enableLocal(self, option: bytes) -> bool:
        return option == TIMING_MARK  # "WILL TIMING-MARK": everything before it has been read

    def enableRemote(self, option: bytes) -> bool:
        return False  # refuse: DONT

    def disableLocal(self, option: bytes) -> None:
        pass

    def disableRemote(self, option: bytes) -> None:
        pass

    def telnet_DO(self, option: bytes) -> None:
        super().telnet_DO(option)
        if option == TIMING_MARK:
            # Not a lasting option (RFC 860): each DO TIMING-MARK needs its own answer.
            self.getOptionState(option).us.state = "no"

    def unhandledCommand(self, command: bytes, argument: bytes | None) -> None:
        pass  # break, interrupt process, are-you-there: nothing to do for a line server

    def unhandledSubnegotiation(self, command: bytes, data: bytes) -> None:
        pass  # never agreed to, so never expected

    # Half-close: the application's own handling if it has one, else send everything, then close.

    def readConnectionLost(self) -> None:
        half_closeable = IHalfCloseableProtocol(self.protocol, None)
        if half_closeable is not None:
            half_closeable.readConnectionLost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        half_closeable = IHalfCloseableProtocol(self.protocol, None)
        if half_closeable is not None:
            half_closeable.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.unregisterProtocol(self)
        try:
            super().connectionLost(reason)  # the application's connectionLost first: its "left" line
        finally:
            how = "closed" if reason.check(ConnectionDone) else reason.getErrorMessage().rstrip(".")
            classroom_log.info("{peer} disconnected ({how})", peer=self.peer, how=how)


class TerminalFactory(WrappingFactory):
    """Wraps a section's factory: each of its protocols gets a :class:`TerminalConnection` as transport.

    *speaks_telnet* is false for servers that frame messages by length, which
    only programs talk to: a length byte of 255 must stay a length.
    """

    def __init__(self, wrapped_factory: IProtocolFactory, speaks_telnet: bool = True) -> None:
        super().__init__(wrapped_factory)
        self.speaks_telnet = speaks_telnet

    def buildProtocol(self, addr: IAddress | None) -> TerminalConnection | None:  # type: ignore[override]
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:  # the section's factory refused this connection
            return None
        return TerminalConnection(self, wrapped, self.speaks_telnet)


class ClassroomChat(Chat):
    """The course's :class:`~writing_servers.chat.Chat`, telling the server log who joins, clashes and leaves."""

    def handle_GETNAME(self, name: str) -> None:
        wanted = name.strip()
        problem = name_problem(wanted, self.users)
        super().handle_GETNAME(name)
        if self.name is not None:
            log_name_chosen(self, self.name, None)
        elif problem is not None:
            log_name_chosen(self, wanted, problem)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.name is not None and self.users.get(self.name) is self:
            log_left(self, self.name)
        super().connectionLost(reason)

    def peer_description(self) -> str:
        return f"{super().peer_description()} ({peer_of(self)})"


class ClassroomChatRoom(ChatRoom):
    """Notebook 5's room (``serve line-chat`` and ``json-chat``), telling the server log who joins, clashes and leaves."""

    def join(self, name: str, member: Member) -> str | None:
        refusal = super().join(name, member)
        log_name_chosen(member, name, refusal)
        return refusal

    def leave(self, name: str) -> None:
        member = self.members.get(name)
        super().leave(name)
        if member is not None:
            log_left(member, name)


# The teacher's lines for both chats: the section modules refuse a taken name with these words.
NAME_TAKEN = "Name taken, please choose another."


def log_name_chosen(member: object, name: str, refusal: str | None) -> None:
    """A join, or a clash over a taken name; other refusals (a name with spaces) are the student's business."""
    if refusal is None:
        classroom_log.info("{peer} joined as {name}", peer=peer_of(member), name=name)
    elif refusal == NAME_TAKEN:
        classroom_log.info("{peer} asked for {name!r}, already taken", peer=peer_of(member), name=name)


def log_left(member: object, name: str) -> None:
    classroom_log.info("{name} left ({peer})", name=name, peer=peer_of(member))


def peer_of(member: object) -> str:
    """The address of the connection behind a chat *member*, or "?" for one without a transport (an Inbox)."""
    transport = getattr(member, "transport", None)
    return describe_address(transport.getPeer()) if transport is not None else "?"


class ClassroomChatFactory(ChatFactory):
    """The chat ``writing-servers serve chat`` runs: :class:`ClassroomChat` for every connection."""

    protocol = ClassroomChat


@implementer(ILogObserver)
class TeacherLog:
    """Prints the server's events for the teacher, one line each, with the time.

    The events of :data:`classroom_log` (connections, joins, leaves, name
    clashes) go to *out* unless *quiet*; warnings and errors
    from anywhere (a reader cut off, an exception in a protocol) always go
    to *problems*.  Twisted's own chatter ("Starting factory") is left out.
    """

    def __init__(
        self, out: IO[str] | None = None, problems: IO[str] | None = None, quiet: bool = False
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.problems = problems if problems is not None else sys.stderr
        self.quiet = quiet

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        failure = event.get("log_failure") or event.get("failure")  # "failure": twisted.python.log.err
        clock = time.strftime("%H:%M:%S", time.localtime(event.get("log_time", time.time())))
        if failure is not None:
            where = event.get("log_system") or event.get("log_namespace", "?")
            text = f"error in {where}: {failure.type.__name__}: {failure.getErrorMessage()}"
            self._print(self.problems, f"{clock} {text}")
        elif level is not None and level >= LogLevel.warn:
            self._print(self.problems, f"{clock} {formatEvent(event)}")
        elif not self.quiet and event.get("log_namespace") == classroom_log.namespace:
            self._print(self.out, f"{clock} {formatEvent(event)}")

    @staticmethod
    def _print(stream: IO[str], line: str) -> None:
        print(line.replace("\n", " "), file=stream, flush=True)
