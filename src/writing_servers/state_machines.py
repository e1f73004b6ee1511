"""Section "State Machines": small machines, one level each, and the application kept apart.

The howto gives two pieces of advice for the state machines that protocols
need: don't write big ones (deal with one level of abstraction at a time),
and don't mix application code with protocol code (when the protocol needs
the application, make a method call).  A minimal chat makes both concrete,
in three layers:

* the application: :class:`ChatRoom` decides who may join under which name
  (:func:`name_problem`) and who hears what.  It imports nothing from Twisted
  and never sees a byte; it reaches its members through one method,
  ``deliver(text)`` (:class:`Member`), so an :class:`Inbox` can stand in for
  a connection.
* the conversation: :class:`LineChat` is a two-state machine (``GETNAME``,
  then ``CHAT``) that dispatches each line to ``handle_<STATE>`` and turns it
  into one call on the room, which it reaches as ``self.factory.room``.
* the framing: :class:`~writing_servers.helper_protocols.TextLineReceiver`
  (notebook 4) cuts the byte stream into lines of text.

:class:`ChatFactory` serves any front end on one room; :class:`JsonChat` is a
second front end (one JSON object per line, for programs).
:class:`TangledChat` is the anti-example: all three layers in one
``dataReceived``, with the bug that shape invites.  :func:`play` runs a
conversation through ``StringTransport``, chunked as you choose, with no
network at all.

Annotations that name a class of this module defined in another notebook
cell are quoted (``"ChatRoom"``), so that each cell runs on its own.

:func:`main` serves LineChat as a standalone program:
``python -m writing_servers.state_machines --port 8000``.
"""

import json
import typing
from collections.abc import Iterable, Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IAddress, IProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from writing_servers.helper_protocols import TextLineReceiver, visible
from writing_servers.programs import run_server, server_arguments

__all__ = [
    "ChatFactory",
    "ChatRoom",
    "Inbox",
    "JsonChat",
    "LineChat",
    "Member",
    "TangledChat",
    "TangledChatFactory",
    "main",
    "name_problem",
    "play",
]


# -- the application: plain Python, no Twisted, no bytes -------------------------------------------


class Member(typing.Protocol):
    """Anything the room can send a line of text to: a connection, or an Inbox in a test."""

    def deliver(self, text: str) -> None: ...


def name_problem(name: str, taken: Iterable[str]) -> str | None:
    """Why *name* cannot join beside the names *taken*, in words for the user; None if it can."""
    if not name.strip():
        return "Please type a name."
    if len(name) > 20 or not name.isprintable() or any(c.isspace() or c in "<>*" for c in name):
        return "A name is 1 to 20 printable characters, without spaces, <, > or *."
    if name.casefold() in {other.casefold() for other in taken}:
        return "Name taken, please choose another."
    return None


class ChatRoom:
    """Who is in the chat, and who hears what: the application alone, with no network and no bytes."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    def join(self, name: str, member: "Member") -> str | None:
        """Add *member* as *name* and return None; or return why the name is refused."""
        if refusal := name_problem(name, self.members):
            return refusal
        self.broadcast(f"* {name} has joined")
        self.members[name] = member
        member.deliver(f"Welcome, {name}!")
        return None

    def leave(self, name: str) -> None:
        if self.members.pop(name, None) is not None:
            self.broadcast(f"* {name} has left")

    def say(self, name: str, text: str) -> None:
        if text.strip():
            self.broadcast(f"<{name}> {text}", exclude=name)

    def who(self) -> list[str]:
        return sorted(self.members)

    def broadcast(self, text: str, exclude: str | None = None) -> None:
        for name, member in list(self.members.items()):  # a copy: delivering may make someone leave
            if name != exclude:
                member.deliver(text)


class Inbox:
    """A member for tests and experiments: it keeps every line the room delivers to it."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def deliver(self, text: str) -> None:
        self.received.append(text)


# -- the conversation: small state machines on top of the framing ----------------------------------


class ChatFactory(Factory):
    """Builds *front_end* protocols that all share one room: each reaches it as ``self.factory.room``."""

    def __init__(self, room: "ChatRoom", front_end: type[Protocol]) -> None:
        self.room = room
        self.protocol = front_end  # Factory.buildProtocol builds one and sets its .factory


class LineChat(TextLineReceiver):
    """A terminal's side of the chat: in state GETNAME a line is a name to try, in CHAT a message."""

    state = "GETNAME"
    name = ""  # set once the room accepts a name

    def connectionMade(self) -> None:
        self.send_text("What's your name?")

    def connectionLost(self, reason: object = None) -> None:
        if self.state == "CHAT":
            self.factory.room.leave(self.name)

    def text_received(self, text: str) -> None:
        getattr(self, "handle_" + self.state)(text)

    def handle_GETNAME(self, name: str) -> None:
        if refusal := self.factory.room.join(name, self):
            self.send_text(refusal)
            return  # this line only: the next line is another try
        self.name, self.state = name, "CHAT"

    def handle_CHAT(self, text: str) -> None:
        self.factory.room.say(self.name, text)

    def deliver(self, text: str) -> None:
        self.send_text(visible(text))  # control characters spelled out: see "Going further"


class JsonChat(TextLineReceiver):
    """The same chat for programs: one JSON object per line, both ways, and the same room.

    Requests are ``{"join": name}``, then ``{"say": text}`` or ``{"who": ""}``.
    What the room delivers comes back as ``{"text": ...}``, a refusal as
    ``{"error": ...}``.  Which requests exist depends on the state, so the
    dispatch goes by state *and* request: ``handle_GETNAME_join``.
    """

    state = "GETNAME"
    name = ""

    def connectionLost(self, reason: object = None) -> None:
        if self.state == "CHAT":
            self.factory.room.leave(self.name)

    def text_received(self, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            self.send_json(error="that line is not JSON")
            return
        if not (isinstance(request, dict) and len(request) == 1):
            self.send_json(error='send one request per line, like {"say": "hello"}')
            return
        [(command, argument)] = request.items()
        handler = getattr(self, f"handle_{self.state}_{command}", None)
        if handler is None:
            self.send_json(error=f"no {command!r} in state {self.state}")
        elif not isinstance(argument, str):
            self.send_json(error=f"the value of {command!r} must be a string")
        else:
            handler(argument)

    def handle_GETNAME_join(self, name: str) -> None:
        if refusal := self.factory.room.join(name, self):
            self.send_json(error=refusal)
            return
        self.name, self.state = name, "CHAT"

    def handle_CHAT_say(self, text: str) -> None:
        self.factory.room.say(self.name, text)

    def handle_CHAT_who(self, _: str) -> None:
        self.send_json(who=self.factory.room.who())

    def deliver(self, text: str) -> None:
        self.send_json(text=text)

    def send_error(self, reason: str) -> None:
        """Even a line that could not be read is answered in JSON."""
        self.send_json(error=reason)

    def send_json(self, **message: object) -> None:
        """Send *message* as one line of JSON (UTF-8 as it is, not \\u-escaped)."""
        self.send_text(json.dumps(message, ensure_ascii=False))


# -- the anti-example: every level in one method -------------------------------------------------


class TangledChat(Protocol):
    """Anti-example, kept to learn from: buffering, lines, decoding, names and chat in one method.

    Do not copy it.  It behaves like LineChat when each chunk holds at most
    one line, and it hides a bug that notebook 5 finds.
    """

    def __init__(self, users: dict[str, "TangledChat"]) -> None:
        self.users = users
        self.buffer = b""
        self.name = ""

    def connectionMade(self) -> None:
        self.transport.write(b"What's your name?\r\n")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.users.get(self.name) is self:
            del self.users[self.name]
            for other in self.users.values():
                other.transport.write(f"* {self.name} has left\r\n".encode())

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                text = line.removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                self.transport.write(b"Error: that line is not UTF-8 text\r\n")
                continue
            if not self.name:
                if not text.strip():
                    self.transport.write(b"Please type a name.\r\n")
                    return  # wait for a better name
                if text in self.users:
                    self.transport.write(b"Name taken, please choose another.\r\n")
                    return  # wait for a better name
                for other in self.users.values():
                    other.transport.write(f"* {text} has joined\r\n".encode())
                self.users[text] = self
                self.name = text
                self.transport.write(f"Welcome, {text}!\r\n".encode())
            elif text.strip():
                for other in self.users.values():
                    if other is not self:
                        other.transport.write(f"<{self.name}> {text}\r\n".encode())


class TangledChatFactory(Factory):
    """Build TangledChat protocols that share one dict of users."""

    def __init__(self) -> None:
        self.users: dict[str, TangledChat] = {}

    def buildProtocol(self, addr: IAddress) -> TangledChat:
        return TangledChat(self.users)


# -- testing without a network -------------------------------------------------------------------


def play(factory: Factory, script: Sequence[tuple[int, bytes]], chunk_size: int | None = None) -> list[bytes]:
    """Run a conversation with no network at all; return what each client received.

    Each step of *script* is ``(client number, bytes that client sends)``.
    A client connects, to a StringTransport of its own, the first time it
    sends; its bytes reach ``dataReceived`` in pieces of *chunk_size* bytes
    (all at once if None).  The result lists what clients 0, 1, ... received.
    """
    address = IPv4Address("TCP", "127.0.0.1", 0)
    connections: dict[int, tuple[IProtocol, StringTransport]] = {}
    for client, data in script:
        if client not in connections:
            built = factory.buildProtocol(address)
            assert built is not None, "the factory refused the connection"
            transport = StringTransport()
            built.makeConnection(transport)
            connections[client] = (built, transport)
        protocol, transport = connections[client]
        size = chunk_size or max(len(data), 1)
        for start in range(0, len(data), size):
            protocol.dataReceived(data[start : start + size])
    return [connections[client][1].value() for client in sorted(connections)]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve LineChat over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments(
        "A chat room for people at a terminal: choose a name, then every line goes to everyone else."
    )
    args = parser.parse_args(argv)
    return run_server(ChatFactory(ChatRoom(), LineChat), "LineChat", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
