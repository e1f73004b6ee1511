"""Notebook 9's checks reject the mistakes beginners make, and their first ✗ line names the cause.

Each wrong attempt is written as a student would write it in the notebook
and checked by the real check; the chat's over real sockets.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from support import first_wrong
from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure

from writing_servers.chat import Chat, ChatConnection, ChatFactory
from writing_servers.exercises.scaling import check_chat_full, check_per_recipient
from writing_servers.solutions import scaling as solved
from writing_servers.solutions.scaling import FullChat


def line_of(method: Callable[..., object], code: str) -> int:
    """The line number in this file of the first line of *method* that holds *code*."""
    lines, start = inspect.getsourcelines(method)
    return start + next(index for index, line in enumerate(lines) if code in line)


# -- exercise 1: per_recipient_microseconds -----------------------------------------------------------


def by_crowd_size(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {size: ms * 1000 / size for size, ms in broadcast_ms.items()}


def in_milliseconds(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {size: ms / (size - 1) for size, ms in broadcast_ms.items()}


def not_divided(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {size: ms * 1000 for size, ms in broadcast_ms.items()}


def floor_divided(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {size: ms * 1000 // (size - 1) for size, ms in broadcast_ms.items()}


def rounded(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {size: round(ms * 1000 / (size - 1)) for size, ms in broadcast_ms.items()}


def hard_coded(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {2: 50.0, 101: 20.0, 1001: 25.0}


def as_text(broadcast_ms: dict[int, float]) -> dict[int, float]:
    return {size: f"{ms * 1000 / (size - 1):.1f} µs" for size, ms in broadcast_ms.items()}  # type: ignore[misc]


def test_per_recipient_solution_passes() -> None:
    """The reference solution passes."""
    report = check_per_recipient(solved.per_recipient_microseconds)
    assert report.passed, repr(report)


def test_per_recipient_divided_by_the_crowd() -> None:
    """Dividing by the crowd size instead of the recipients is named on the first wrong line."""
    assert first_wrong(check_per_recipient(by_crowd_size)) == (
        "Divided by the crowd size, but the sender does not receive its own message: divide by size - 1. "
        "0.05 ms to 1 recipient(s) should be 50 µs each, got 25.0"
    )


def test_per_recipient_wrong_units() -> None:
    """Milliseconds left as they are, or the whole broadcast's time, are each named."""
    assert first_wrong(check_per_recipient(in_milliseconds)) == (
        "Still in milliseconds: multiply by 1000 for microseconds. "
        "0.05 ms to 1 recipient(s) should be 50 µs each, got 0.05"
    )
    assert first_wrong(check_per_recipient(not_divided)) == (
        "The whole broadcast's time: divide it by the recipients, size - 1. "
        "2.0 ms to 100 recipient(s) should be 20 µs each, got 2000.0"
    )


def test_per_recipient_rounding() -> None:
    """// and round() pass whole answers; the second sample's fractions show them, each named."""
    assert first_wrong(check_per_recipient(floor_divided)) == (
        "Rounded down: // drops the fraction; divide with /. "
        "0.2 ms to 3 recipient(s) should be 66.67 µs each, got 66.0"
    )
    assert first_wrong(check_per_recipient(rounded)) == (
        "Rounded: keep the fraction. 0.2 ms to 3 recipient(s) should be 66.67 µs each, got 67"
    )


def test_per_recipient_hard_coded_or_text() -> None:
    """Numbers written into the code fail on the second sample; text instead of numbers is named."""
    assert first_wrong(check_per_recipient(hard_coded)) == (
        "given the sizes [4, 41, 401], it should return a dict with the same sizes; got [2, 101, 1001]: "
        "compute each from the dict it is given"
    )
    assert first_wrong(check_per_recipient(as_text)) == (
        "Return numbers, not text. 0.05 ms to 1 recipient(s) should be 50 µs each, got '50.0 µs'"
    )


# -- exercise 2: FullChatFactory ----------------------------------------------------------------------


class FullAtTwo(ChatFactory):
    def __init__(self, max_people: int) -> None:
        super().__init__()
        self.max_people = max_people

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= 2:
            return FullChat(self.users)
        return super().buildProtocol(addr)


class SaysTwoPeople(FullChat):
    def connectionMade(self) -> None:
        self.send_text("Sorry, the chat is full (2 people); try again later.")
        self.transport.loseConnection()


class SaysTwoPeopleFactory(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= self.max_people:
            return SaysTwoPeople(self.users)
        return ChatFactory.buildProtocol(self, addr)


class CountsConnections(ChatFactory):
    def __init__(self, max_people: int) -> None:
        super().__init__()
        self.max_people = max_people
        self.connections = 0

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if self.connections >= self.max_people:
            return FullChat(self.users)
        self.connections += 1
        return super().buildProtocol(addr)


class CountedChat(Chat):
    factory: NeverFrees

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.name is not None:
            self.factory.people += 1


class NeverFrees(ChatFactory):
    def __init__(self, max_people: int) -> None:
        super().__init__()
        self.max_people = max_people
        self.people = 0

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if self.people >= self.max_people:
            return FullChat(self.users)
        protocol = CountedChat(self.users)
        protocol.factory = self
        return protocol


class VisitorsFull(Chat):
    def __init__(self, users: dict[str, ChatConnection], visitors: int) -> None:
        super().__init__(users)
        self.visitors = visitors

    def connectionMade(self) -> None:
        self.send_text(f"Sorry, the chat is full ({self.visitors} people); try again later.")
        self.transport.loseConnection()


class CountsVisitorsInMessage(solved.FullChatFactory):
    visitors = 0

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        self.visitors += 1
        if len(self.users) >= self.max_people:
            return VisitorsFull(self.users, self.visitors)
        return ChatFactory.buildProtocol(self, addr)


class LeavingChat(Chat):
    """Counts people who join, and takes one off whenever any connection ends, refused ones too."""

    factory: CountsRefusedLeaving

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.name is not None:
            self.factory.people += 1

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.factory.people -= 1


class RefusedLeaving(LeavingChat):
    def connectionMade(self) -> None:
        self.send_text(f"Sorry, the chat is full ({len(self.users)} people); try again later.")
        self.transport.loseConnection()


class CountsRefusedLeaving(ChatFactory):
    def __init__(self, max_people: int) -> None:
        super().__init__()
        self.max_people = max_people
        self.people = 0

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        protocol: LeavingChat
        if self.people >= self.max_people:
            protocol = RefusedLeaving(self.users)
        else:
            protocol = LeavingChat(self.users)
        protocol.factory = self
        return protocol


class OneTooMany(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) > self.max_people:
            return FullChat(self.users)
        return ChatFactory.buildProtocol(self, addr)


class StaysConnected(Chat):
    def connectionMade(self) -> None:
        self.send_text(f"Sorry, the chat is full ({len(self.users)} people); try again later.")


class NeverHangsUp(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= self.max_people:
            return StaysConnected(self.users)
        return ChatFactory.buildProtocol(self, addr)


class RefusesSilently(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection | None:  # type: ignore[override]
        if len(self.users) >= self.max_people:
            return None
        return ChatFactory.buildProtocol(self, addr)


class HangsUpFirst(Chat):
    def connectionMade(self) -> None:
        self.transport.loseConnection()
        self.send_text(f"Sorry, the chat is full ({len(self.users)} people); try again later.")


class WritesAfterHangingUp(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= self.max_people:
            return HangsUpFirst(self.users)
        return ChatFactory.buildProtocol(self, addr)


class PromptsFirst(Chat):
    def connectionMade(self) -> None:
        super().connectionMade()
        self.send_text(f"Sorry, the chat is full ({len(self.users)} people); try again later.")
        self.transport.loseConnection()


class AsksThenRefuses(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= self.max_people:
            return PromptsFirst(self.users)
        return ChatFactory.buildProtocol(self, addr)


class WritesText(Chat):
    def connectionMade(self) -> None:
        self.transport.write(f"Sorry, the chat is full ({len(self.users)} people); try again later.\r\n")  # type: ignore[arg-type]
        self.transport.loseConnection()


class RefusesWithText(solved.FullChatFactory):
    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        if len(self.users) >= self.max_people:
            return WritesText(self.users)
        return ChatFactory.buildProtocol(self, addr)


def test_chat_full_solution_passes() -> None:
    """The reference solution passes."""
    report = check_chat_full(solved.FullChatFactory)
    assert report.passed, repr(report)


def test_chat_full_hard_coded_numbers() -> None:
    """A limit of 2 or a message saying 2 written into the code fails with room for 3."""
    assert first_wrong(check_chat_full(FullAtTwo)) == (
        "FullChatFactory(3) refused a newcomer with only 2 people in: refuse once len(self.users) reaches "
        "self.max_people; it sent 'Sorry, the chat is full (2 people); try again later.'"
    )
    assert first_wrong(check_chat_full(SaysTwoPeopleFactory)) == (
        "the refusal says 2 people, but 3 have chosen a name: say how many are in, len(self.users)"
    )


def test_chat_full_counting_connections() -> None:
    """Counting a connection that has not chosen a name yet is named as such."""
    assert first_wrong(check_chat_full(CountsConnections)) == (
        "mia was refused with 2 people in and one more connection still choosing a name: count only the "
        "people who have chosen one, len(self.users), not connections; "
        "it sent 'Sorry, the chat is full (2 people); try again later.'"
    )


def test_chat_full_not_freeing_or_counting_the_refused() -> None:
    """A place not freed when someone leaves, or refused visitors counted, is named."""
    assert first_wrong(check_chat_full(NeverFrees)).startswith(
        "once zoe left, FullChatFactory(3) had a free place (2 people in) but refused a newcomer: "
        "count len(self.users), which holds only the people in the chat now, not the ones who left or "
        "were refused;"
    )
    assert first_wrong(check_chat_full(CountsVisitorsInMessage)) == (
        "the refusal says 5 people, but 3 have chosen a name: say how many are in, len(self.users)"
    )


def test_chat_full_refused_leaving_frees_a_place_twice() -> None:
    """Taking a refused visitor's leaving off the count lets the next visitor in: named as not refused."""
    assert first_wrong(check_chat_full(CountsRefusedLeaving)) == (
        "with 3 people in FullChatFactory(3), the next one was asked for a name instead of being refused: "
        "refuse once len(self.users) reaches self.max_people"
    )


def test_chat_full_off_by_one() -> None:
    """> instead of >= lets one person too many in."""
    assert first_wrong(check_chat_full(OneTooMany)) == (
        "with 3 people in FullChatFactory(3), a newcomer was asked for a name instead of being refused: "
        "refuse once len(self.users) reaches self.max_people"
    )


def test_chat_full_hanging_up_mistakes() -> None:
    """Not hanging up, hanging up without a word, or writing after loseConnection: each named."""
    assert first_wrong(check_chat_full(NeverHangsUp)) == (
        "a newcomer was told the chat is full but not disconnected: call self.transport.loseConnection() "
        "after sending the line"
    )
    assert first_wrong(check_chat_full(RefusesSilently)) == (
        "with 3 people in FullChatFactory(3), a newcomer was disconnected without being told: "
        "send the line, then call loseConnection()"
    )
    assert first_wrong(check_chat_full(WritesAfterHangingUp)) == (
        "the server wrote b'Sorry, the chat is full (3 people); try again later.\\r\\n' after "
        "loseConnection(): send the line first, then hang up "
        "(Twisted may drop a write made after loseConnection; over TLS it does)"
    )


def test_chat_full_asking_for_a_name_first() -> None:
    """A refusing protocol that calls super().connectionMade() asks for a name before refusing."""
    assert first_wrong(check_chat_full(AsksThenRefuses)) == (
        "a newcomer was asked for a name before being refused: the refusing protocol's connectionMade "
        "should send only the refusal (not call super().connectionMade(), which asks for a name)"
    )


def test_chat_full_text_instead_of_bytes() -> None:
    """transport.write of a str names the student's line and says to write bytes."""
    assert first_wrong(check_chat_full(RefusesWithText)) == (
        f"WritesText.connectionMade, line {line_of(WritesText.connectionMade, 'write(')}: "
        'TypeError: Data must be bytes — write b"..." or text.encode()'
    )
