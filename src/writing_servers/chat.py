"""Section "Putting it All Together": the howto's chat server, then the course's.

The howto's last example uses everything before it at once: shared state on
the factory (``users``, a dict from each chosen name to that person's
connection, the same dict for every connection), a state machine per
connection (``GETNAME`` until a free name is chosen, then ``CHAT``; each line
goes to ``handle_<STATE>``), and one protocol writing to the others.

* :class:`ChatConnection` and :class:`HowtoChat` are the howto's ``Chat``,
  in text (on :class:`~writing_servers.helper_protocols.TextLineReceiver`),
  split in two only so that each part fits on a screen: the connection's
  events, then the state machine.  :class:`HowtoChatFactory` is the howto's
  ``ChatFactory``.
* :class:`ForgetfulChat` is :class:`HowtoChat` with the ``return`` after
  "Name taken" forgotten: a taken name is welcomed anyway and steals the
  entry in ``users``.  A bug to look at, not to use.
* :class:`Chat` and :class:`ChatFactory` are the course's chat, the one
  ``writing-servers serve chat`` runs: :class:`HowtoChat` plus a name rule
  (:func:`name_problem`), control characters spelled out
  (:func:`~writing_servers.helper_protocols.visible`), names freed only by
  their owner, TCP_NODELAY and a broadcast that encodes each line once.
  Like every ``TextLineReceiver``, both chats cut off a peer that stops
  reading once ``MAX_UNSENT`` bytes wait for it.

:func:`main` serves :class:`Chat` as a standalone program:
``python -m writing_servers.chat --port 8000``.
"""

import re
from collections.abc import Iterable, Sequence

from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from writing_servers.helper_protocols import TextLineReceiver, visible
from writing_servers.programs import run_server, server_arguments

__all__ = [
    "NAME",
    "NAME_RULE",
    "Chat",
    "ChatConnection",
    "ChatFactory",
    "ForgetfulChat",
    "HowtoChat",
    "HowtoChatFactory",
    "main",
    "name_problem",
    "visible",
]


class ChatConnection(TextLineReceiver):
    """One person's connection: the shared users, a name once chosen, and a state."""

    def __init__(self, users: dict[str, "ChatConnection"]) -> None:
        self.users = users  # the factory's dict, shared by every connection
        self.name: str | None = None
        self.state = "GETNAME"

    def connectionMade(self) -> None:
        self.send_text("What's your name?")

    def connectionLost(self, reason: Failure) -> None:
        if self.name in self.users:
            del self.users[self.name]


class HowtoChat(ChatConnection):
    """The howto's state machine: a name first (GETNAME), then every line goes to the others (CHAT)."""

    def text_received(self, line: str) -> None:
        if self.state == "GETNAME":
            self.handle_GETNAME(line)
        else:
            self.handle_CHAT(line)

    def handle_GETNAME(self, name: str) -> None:
        if name in self.users:
            self.send_text("Name taken, please choose another.")
            return
        self.send_text(f"Welcome, {name}!")
        self.name = name
        self.users[name] = self
        self.state = "CHAT"

    def handle_CHAT(self, message: str) -> None:
        self.broadcast(f"<{self.name}> {message}")

    def broadcast(self, line: str) -> None:
        """Send *line* to everyone in the chat but this connection's user."""
        for protocol in self.users.values():
            if protocol is not self:
                protocol.send_text(line)


class HowtoChatFactory(Factory):
    """Builds one chat protocol per connection, every one sharing this factory's ``users``."""

    protocol = HowtoChat  # a subclass works too: factory.protocol = WhoChat

    def __init__(self) -> None:
        self.users: dict[str, ChatConnection] = {}  # maps each name to that person's connection

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        return self.protocol(self.users)


class ForgetfulChat(HowtoChat):
    """HowtoChat without the ``return`` after "Name taken": a bug to look at, not to use."""

    def handle_GETNAME(self, name: str) -> None:
        if name in self.users:
            self.send_text("Name taken, please choose another.")
            # (the return is missing here)
        self.send_text(f"Welcome, {name}!")
        self.name = name
        self.users[name] = self
        self.state = "CHAT"


#: A valid name: ASCII letters, digits, "-" and "_", 1 to 20 of them.
NAME = re.compile(r"[A-Za-z0-9_-]{1,20}")
#: The same rule in words, for people.
NAME_RULE = "1 to 20 ASCII letters, digits, hyphens or underscores"


def name_problem(name: str, taken: Iterable[str]) -> str | None:
    """Why *name* cannot be used, as a reply to the person who chose it; ``None`` if it can.

    Names that differ only in case count as the same name: ``ALICE`` is
    taken while ``alice`` is here.
    """
    if not name:
        return f"Please type a name: {NAME_RULE}."
    if not NAME.fullmatch(name):
        return f"Sorry, a name is {NAME_RULE}. Please choose another."
    if name.casefold() in {other.casefold() for other in taken}:
        return "Name taken, please choose another."
    return None


class Chat(HowtoChat):
    """The course's chat: HowtoChat with a name rule, terminal-safe messages and a faster broadcast."""

    def connectionMade(self) -> None:
        if ITCPTransport.providedBy(self.transport):  # a real TCP connection, not a test's transport
            # Chat lines are small and someone waits for each: send them at once, no Nagle delay.
            self.transport.setTcpNoDelay(True)
        super().connectionMade()

    def connectionLost(self, reason: Failure) -> None:
        # Free the name only if this connection owns it; one that never chose a name owns nothing.
        if self.name is not None and self.users.get(self.name) is self:
            del self.users[self.name]

    def handle_GETNAME(self, name: str) -> None:
        name = name.strip()
        problem = name_problem(name, self.users)
        if problem is not None:
            self.send_text(problem)
            return  # still in GETNAME: the next line is another try
        super().handle_GETNAME(name)

    def handle_CHAT(self, message: str) -> None:
        if message.strip():  # an empty line is not worth sending to anyone
            super().handle_CHAT(visible(message))

    def broadcast(self, line: str) -> None:
        data = line.encode("utf-8") + b"\r\n"  # encoded once, however many people receive it
        for protocol in list(self.users.values()):  # a copy: the loop must not see the dict change
            if protocol is not self:
                protocol.send_bytes(data)

    def peer_description(self) -> str:
        return self.name if self.name is not None else "a client choosing a name"


class ChatFactory(HowtoChatFactory):
    """HowtoChatFactory for the course's :class:`Chat`: builds one per connection, all sharing ``users``."""

    protocol = Chat  # a subclass works too: factory.protocol = MyChat


def main(argv: Sequence[str] | None = None) -> int:
    """Serve Chat over TCP until interrupted; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments(
        "The howto's chat server: choose a name, then every line goes to everyone else."
    )
    args = parser.parse_args(argv)
    return run_server(ChatFactory(), "Chat", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
