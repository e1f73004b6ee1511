"""The leanest Twisted chat that speaks like the course's: what ``ChatFactory`` is measured against.

A bare ``LineReceiver`` room: "What's your name?", then whatever line comes
is the name ("Welcome, NAME!"), then each non-empty line goes to everyone
else as ``<NAME> text``; TCP_NODELAY on, as the course's chat has it.  What
it leaves out is what the course adds: the name rule, spelling out control
characters, UTF-8 checks, half-closes and the slow-reader guard.  For the
benchmark's well-behaved clients the bytes on the wire are the same.

Run as a script, it serves like :mod:`twisted_chat` (``PORT <n>``, the
profiling commands, the end of stdin stops it).
"""

from __future__ import annotations

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted_chat import serve


class BareChat(LineReceiver):
    delimiter = b"\n"
    name: bytes | None = None

    def __init__(self, users: dict[bytes, BareChat]) -> None:
        self.users = users

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.transport.write(b"What's your name?\r\n")

    def connectionLost(self, reason: object = None) -> None:
        if self.name is not None:
            self.users.pop(self.name, None)

    def lineReceived(self, line: bytes) -> None:
        line = line.removesuffix(b"\r")
        if self.name is None:
            self.name = line
            self.users[line] = self
            self.transport.write(b"Welcome, " + line + b"!\r\n")
        elif line:
            data = b"<" + self.name + b"> " + line + b"\r\n"
            for other in self.users.values():
                if other is not self:
                    other.transport.write(data)


class BareChatFactory(Factory):
    def __init__(self) -> None:
        self.users: dict[bytes, BareChat] = {}

    def buildProtocol(self, addr: object) -> BareChat:
        return BareChat(self.users)


if __name__ == "__main__":
    serve(BareChatFactory())
