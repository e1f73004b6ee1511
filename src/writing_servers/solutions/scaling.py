"""Solutions to notebook 9's exercises."""

from twisted.internet.interfaces import IAddress

from writing_servers.chat import Chat, ChatConnection, ChatFactory


def per_recipient_microseconds(broadcast_ms: dict[int, float]) -> dict[int, float]:
    """For each crowd size, one broadcast's time shared out over its recipients, in microseconds."""
    return {size: milliseconds * 1000 / (size - 1) for size, milliseconds in broadcast_ms.items()}


class FullChat(Chat):
    """A connection that arrives when the chat is full: it says so and hangs up."""

    def connectionMade(self) -> None:
        self.send_text(f"Sorry, the chat is full ({len(self.users)} people); try again later.")
        self.transport.loseConnection()


class FullChatFactory(ChatFactory):
    """A chat for at most *max_people* named people; anyone past that is told so and disconnected."""

    def __init__(self, max_people: int) -> None:
        super().__init__()
        self.max_people = max_people

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= self.max_people:
            return FullChat(self.users)
        return super().buildProtocol(addr)
