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


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {1: (per_recipient_microseconds,), 2: (FullChat, FullChatFactory)}

WHY = {
    1: "A broadcast goes to everyone but its sender, size - 1 people, so its time divided by that is the "
    "cost of one recipient; times 1000 turns milliseconds into microseconds, and / keeps the fraction.",
    2: "self.users holds exactly the people who have chosen a name, and the chat removes each one as they "
    "leave, so len(self.users) is the real count at every new connection; the refusing protocol writes "
    "its line first, and loseConnection then hangs up once that line is sent.",
}
