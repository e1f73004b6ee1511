"""Solutions to notebook 8's exercises.

Like the notebook's starters, they subclass the howto's ``HowtoChat``, so
the code ``solution(n)`` shows runs where the exercise is.
"""

from twisted.python.failure import Failure

from writing_servers.chat import HowtoChat, visible


class WhoChat(HowtoChat):
    """Chat, plus ``/who``: the asker alone learns who is here."""

    def handle_CHAT(self, message: str) -> None:
        if message.strip() == "/who":
            self.send_text("Users: " + ", ".join(sorted(self.users)))
        else:
            super().handle_CHAT(message)


class AnnouncingChat(HowtoChat):
    """Chat that tells everyone else when someone joins or leaves."""

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.state == "CHAT":  # the name was accepted; a refused try changes nothing
            self.broadcast(f"* {self.name} has joined")

    def connectionLost(self, reason: Failure) -> None:
        if self.name is not None and self.users.get(self.name) is self:
            self.broadcast(f"* {self.name} has left")  # before super() removes us from users
        super().connectionLost(reason)


class PrivateChat(HowtoChat):
    """Chat, plus ``/msg <name> <text>``: a message for one user only."""

    def handle_CHAT(self, message: str) -> None:
        command, _, rest = message.partition(" ")
        if command != "/msg":
            super().handle_CHAT(message)
            return
        name, _, text = rest.partition(" ")
        recipient = self.users.get(name)
        if not text.strip():
            self.send_text("Usage: /msg <name> <text>")
        elif recipient is None:
            self.send_text(f"No such user: {visible(name)}")
        else:
            recipient.send_text(f"*{self.name}* {visible(text)}")


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {1: (WhoChat,), 2: (AnnouncingChat,), 3: (PrivateChat,)}

WHY = {
    1: "self.users is the factory's dict, shared by every connection, so it holds exactly the names in the "
    "chat, and sorted() orders them whatever order people joined in; send_text answers the asker alone, and "
    "every other message goes to super().handle_CHAT as before.",
    2: "Only a name super().handle_GETNAME accepts moves the connection to CHAT, so a refused try is never "
    "announced, and broadcast skips the newcomer; connectionLost announces only a connection that owns its "
    "name in users, before super() frees the name.",
    3: "partition splits off the command, then the name, keeping the text whole, and users.get(name) is the "
    "one protocol to write to (yours too) or None; visible spells out control characters, so the text "
    "cannot steer the recipient's terminal.",
}
