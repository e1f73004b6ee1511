"""Solutions to notebook 5's exercises."""

from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport

from writing_servers.state_machines import LineChat


class WhoChat(LineChat):
    """LineChat, plus a '/who' command in the CHAT state; the framing is untouched."""

    def handle_CHAT(self, text: str) -> None:
        if text == "/who":
            self.send_text("Here: " + ", ".join(self.factory.room.who()))
        else:
            super().handle_CHAT(text)


class PasswordChat(LineChat):
    """LineChat with a PASSWORD state before GETNAME."""

    password = "twisted"
    state = "PASSWORD"

    def connectionMade(self) -> None:
        self.send_text("Password?")

    def handle_PASSWORD(self, text: str) -> None:
        if text != self.password:
            self.send_text("Wrong password.")
            return
        self.state = "GETNAME"
        self.send_text("What's your name?")


def test_second_name_in_one_chunk(factory: Factory) -> None:
    """A client whose first name is taken can send another in the same chunk, and is welcomed."""
    alice, alice_transport = factory.buildProtocol(None), StringTransport()
    bob, bob_transport = factory.buildProtocol(None), StringTransport()
    alice.makeConnection(alice_transport)
    bob.makeConnection(bob_transport)
    alice.dataReceived(b"alice\r\n")
    bob.dataReceived(b"alice\r\nbob\r\n")  # one chunk: the taken name, then another
    assert bob_transport.value() == (
        b"What's your name?\r\nName taken, please choose another.\r\nWelcome, bob!\r\n"
    ), bob_transport.value()
    assert alice_transport.value().endswith(b"* bob has joined\r\n"), alice_transport.value()


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {1: (WhoChat,), 2: (PasswordChat,), 3: (test_second_name_in_one_chunk,)}

WHY = {
    1: "handle_CHAT runs only in state CHAT, so at the name prompt '/who' is still just a name to try; "
    "the room's who() is sorted and always current, and send_text answers the asker alone.",
    2: "A state is a handle_<STATE> method that text_received finds by name: a wrong password returns "
    "before the state changes, and only the right one sets self.state, on this connection alone.",
    3: "Both names arrive in one dataReceived call, so only a protocol that handles every line of a chunk "
    "welcomes bob; the asserts read transport.value(), the bytes any chat must send, not attributes.",
}
