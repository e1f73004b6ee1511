"""Solutions to notebook 8's exercises.

The notebook's exercises subclass ``HowtoChat``; these subclass the course's
``Chat`` (a ``HowtoChat`` with name rules and control characters spelled
out), which passes the same checks and keeps those guarantees too.
"""

from twisted.python.failure import Failure

from writing_servers.chat import Chat, visible


class WhoChat(Chat):
    """Chat, plus ``/who``: the asker alone learns who is here."""

    def handle_CHAT(self, message: str) -> None:
        if message.strip() == "/who":
            self.send_text("Users: " + ", ".join(sorted(self.users)))
        else:
            super().handle_CHAT(message)


class AnnouncingChat(Chat):
    """Chat that tells everyone else when someone joins or leaves."""

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.state == "CHAT":  # the name was accepted; a refused try changes nothing
            self.broadcast(f"* {self.name} has joined")

    def connectionLost(self, reason: Failure) -> None:
        if self.name is not None and self.users.get(self.name) is self:
            self.broadcast(f"* {self.name} has left")  # before super() removes us from users
        super().connectionLost(reason)


class PrivateChat(Chat):
    """Chat, plus ``/msg <name> <text>``: a message for one user only."""

    def handle_CHAT(self, message: str) -> None:
        command, _, rest = message.partition(" ")
        if command != "/msg":
            super().handle_CHAT(message)
            return
        name, _, text = rest.partition(" ")
        recipient = self.users.get(name)
        if not text.strip():
            self.send_text("Usage: /msg <name> <message>")
        elif recipient is None:
            self.send_text(f"No such user: {visible(name)}")
        else:
            recipient.send_text(f"*{self.name}* {visible(text)}")
