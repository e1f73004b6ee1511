"""Section "Putting it All Together": a chat server.

The howto's last example uses everything before it at once:

* **shared state on the factory**: :class:`ChatFactory` keeps ``users``, a
  dict from each chosen name to that user's protocol, and hands the same dict
  to every connection, so one connection can write to all the others;
* **a state machine per connection**: a :class:`Chat` is in state
  ``GETNAME`` until its user picks a valid, free name, then in ``CHAT``; each
  line goes to the method ``handle_<STATE>``;
* **a helper protocol underneath**: :class:`~writing_servers.helper_protocols.TextLineReceiver`
  accepts telnet's CRLF and netcat's bare LF, refuses lines that are not
  UTF-8, and closes the connection on an overlong line.

Where it differs from the howto's listing, on purpose:

* a taken name is refused and *nothing else happens*: ``handle_GETNAME``
  returns after the refusal instead of falling through to the welcome;
* names follow one rule (:data:`NAME_RULE`, checked by :func:`name_problem`),
  so nobody can call themselves ``<alice>`` or ``ALICE`` while ``alice`` is
  here;
* a name is freed only by the connection that owns it;
* control characters in messages are spelled out
  (:func:`~writing_servers.helper_protocols.visible`), so one
  user cannot move the cursor, recolour text or overwrite a line on another
  user's terminal;
* someone who stops reading cannot make the server hold everyone's messages
  for them forever: past a limit their connection is aborted
  (``TextLineReceiver.MAX_UNSENT``), and the others never wait for them.

:func:`main` serves the chat as a standalone program:
``python -m writing_servers.chat --port 8000``.
"""

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from writing_servers.helper_protocols import TextLineReceiver, visible
from writing_servers.programs import run_server, server_arguments

__all__ = ["NAME", "NAME_RULE", "Chat", "ChatFactory", "main", "name_problem", "visible"]

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


class Chat(TextLineReceiver):
    """One person's connection to the chat: first a name (state GETNAME), then messages (state CHAT)."""

    def __init__(self, users: dict[str, "Chat"]) -> None:
        self.users = users  # the factory's dict, shared by every connection
        self.name: str | None = None
        self.state: Literal["GETNAME", "CHAT"] = "GETNAME"

    def connectionMade(self) -> None:
        if ITCPTransport.providedBy(self.transport):  # a real TCP connection, not a test's transport
            # Chat lines are small and someone waits for each: send them at once, no Nagle delay.
            self.transport.setTcpNoDelay(True)
        self.send_text("What's your name?")

    def connectionLost(self, reason: Failure) -> None:
        # Free the name only if this connection owns it; one that never chose a name owns nothing.
        if self.name is not None and self.users.get(self.name) is self:
            del self.users[self.name]

    def text_received(self, text: str) -> None:
        handler = getattr(self, "handle_" + self.state)  # "GETNAME" -> self.handle_GETNAME
        handler(text)

    def handle_GETNAME(self, name: str) -> None:
        name = name.strip()
        problem = name_problem(name, self.users)
        if problem is not None:
            self.send_text(problem)
            return  # still in GETNAME: the next line is another try
        self.send_text(f"Welcome, {name}!")
        self.name = name
        self.users[name] = self
        self.state = "CHAT"

    def handle_CHAT(self, message: str) -> None:
        if message.strip():  # an empty line is not worth sending to anyone
            self.broadcast(f"<{self.name}> {visible(message)}")

    def broadcast(self, text: str) -> None:
        """Send *text* to everyone in the chat except this connection's user."""
        data = text.encode("utf-8") + b"\r\n"  # encoded once, however many people receive it
        for protocol in list(self.users.values()):  # a copy: the loop must not see the dict change
            if protocol is not self:
                protocol.send_bytes(data)

    def peer_description(self) -> str:
        return self.name if self.name is not None else "a client choosing a name"


class ChatFactory(Factory):
    """Builds a :class:`Chat` per connection; every one of them shares this factory's ``users``."""

    protocol = Chat  # a subclass of Chat works too: factory.protocol = MyChat

    def __init__(self) -> None:
        self.users: dict[str, Chat] = {}  # maps each name to the protocol of the person using it

    def buildProtocol(self, addr: IAddress) -> Chat:
        return self.protocol(self.users)


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
