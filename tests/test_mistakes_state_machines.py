"""Notebook 5's checks reject the mistakes students make, and the first ✗ line names each one.

Every wrong attempt is written as a student would write it, served and
talked to by the real check over loopback; the reference solutions pass.

PYTEST_DONT_REWRITE: the students' asserts below must raise what they raise in a notebook.
"""

from __future__ import annotations

from typing import Any, ClassVar

from support import first_wrong
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport

from writing_servers.exercises.state_machines import (
    check_password_chat,
    check_second_name_test,
    check_who_chat,
)
from writing_servers.solutions import state_machines as solved
from writing_servers.state_machines import LineChat

# -- Exercise 1: WhoChat -------------------------------------------------------------------------


class WhoInTextReceived(LineChat):
    """'/who' caught before the state dispatch: it is a command at the name prompt too."""

    def text_received(self, text: str) -> None:
        if text == "/who":
            self.send_text("Here: " + ", ".join(self.factory.room.who()))
        else:
            super().text_received(text)


class WhoInJoinOrder(LineChat):
    """Lists the room's members as the dict keeps them: in the order they joined."""

    def handle_CHAT(self, text: str) -> None:
        if text == "/who":
            self.send_text("Here: " + ", ".join(self.factory.room.members))
        else:
            super().handle_CHAT(text)


class WhoToEveryone(LineChat):
    """Broadcasts the answer to the whole room."""

    def handle_CHAT(self, text: str) -> None:
        if text == "/who":
            self.factory.room.broadcast("Here: " + ", ".join(self.factory.room.who()))
        else:
            super().handle_CHAT(text)


class WhoAlsoSaid(LineChat):
    """Answers '/who' but forgets the else: the command goes to the room as a message too."""

    def handle_CHAT(self, text: str) -> None:
        if text == "/who":
            self.send_text("Here: " + ", ".join(self.factory.room.who()))
        super().handle_CHAT(text)


class WhoOnly(LineChat):
    """Answers '/who' and drops every other line (no super())."""

    def handle_CHAT(self, text: str) -> None:
        if text == "/who":
            self.send_text("Here: " + ", ".join(self.factory.room.who()))


class WhoPrefix(LineChat):
    """Treats any line starting with '/who' as the command."""

    def handle_CHAT(self, text: str) -> None:
        if text.startswith("/who"):
            self.send_text("Here: " + ", ".join(self.factory.room.who()))
        else:
            super().handle_CHAT(text)


class WhoOwnList(LineChat):
    """Keeps its own list of names on the class, and forgets people who leave."""

    everyone: ClassVar[list[str]] = []

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.state == "CHAT":
            self.everyone.append(name)

    def handle_CHAT(self, text: str) -> None:
        if text == "/who":
            self.send_text("Here: " + ", ".join(sorted(self.everyone)))
        else:
            super().handle_CHAT(text)


def test_who_in_text_received_is_rejected_at_the_name_prompt() -> None:
    """'/who' handled in text_received is named as a command that works in GETNAME too."""
    report = check_who_chat(WhoInTextReceived)
    assert first_wrong(report) == (
        "at the name prompt (state GETNAME) '/who' got 'Here: alice, carol', where LineChat welcomes it as a "
        "name: a command of state CHAT belongs in handle_CHAT, not in text_received"
    )


def test_names_in_join_order_are_rejected() -> None:
    """Names listed in join order fail, since the check's people join out of alphabetical order."""
    report = check_who_chat(WhoInJoinOrder)
    assert first_wrong(report) == (
        "bob's '/who' got 'Here: carol, alice, bob': those are the names in the order they joined: "
        "sort them (the room's who() does)"
    )


def test_answer_broadcast_to_the_room_is_rejected() -> None:
    """An answer sent to everyone is named: it goes to the asker alone."""
    report = check_who_chat(WhoToEveryone)
    assert first_wrong(report) == (
        "alice should hear '<bob> hi all' next; heard 'Here: alice, bob, carol': only the exact line '/who' "
        "is a command, and its answer goes to the asker alone (self.send_text)"
    )


def test_command_also_passed_to_the_room_is_rejected() -> None:
    """A '/who' that also reaches the room as chat is named."""
    report = check_who_chat(WhoAlsoSaid)
    assert first_wrong(report) == (
        "alice should hear '<bob> hi all' next; heard '<bob> /who': a command is not a message: "
        "don't pass '/who' on to the room too"
    )


def test_other_lines_dropped_are_rejected() -> None:
    """A handle_CHAT that forgets super() for other lines is told to call it."""
    report = check_who_chat(WhoOnly)
    assert first_wrong(report) == (
        "alice should hear '<bob> hi all' next; heard nothing within 1 s: "
        "pass every other line on with super().handle_CHAT(text)"
    )


def test_prefix_match_is_rejected() -> None:
    """'/whoever' is chat; a startswith test makes it a command."""
    report = check_who_chat(WhoPrefix)
    assert first_wrong(report) == (
        "alice's '/whoever' was answered 'Here: alice, bob, carol': only the exact line '/who' is a command"
    )


def test_own_list_that_forgets_leavers_is_rejected() -> None:
    """A list of names kept by the protocol still lists bob after he left."""
    WhoOwnList.everyone = []
    report = check_who_chat(WhoOwnList)
    assert first_wrong(report) == (
        "carol's '/who' after bob left got 'Here: alice, bob, carol': bob has left: ask the room each time "
        "(self.factory.room.who()), not a list of your own"
    )


def test_who_solution_passes() -> None:
    """The reference WhoChat passes every line."""
    report = check_who_chat(solved.WhoChat)
    assert report.passed, repr(report)


# -- Exercise 2: PasswordChat --------------------------------------------------------------------


class FallsThrough(solved.PasswordChat):
    """Says 'Wrong password.' but forgets to return: a wrong password is admitted anyway."""

    def handle_PASSWORD(self, text: str) -> None:
        if text != self.password:
            self.send_text("Wrong password.")
        self.state = "GETNAME"
        self.send_text("What's your name?")


class StateNeverChanges(FallsThrough):
    """Asks for the name after the right password but never leaves PASSWORD."""

    def handle_PASSWORD(self, text: str) -> None:
        if text != self.password:
            self.send_text("Wrong password.")
            return
        self.send_text("What's your name?")


class HardCodedPassword(FallsThrough):
    """Compares with the string it saw in the starter, not with self.password."""

    def handle_PASSWORD(self, text: str) -> None:
        if text != "twisted":
            self.send_text("Wrong password.")
            return
        self.state = "GETNAME"
        self.send_text("What's your name?")


class AsksNameFirst(HardCodedPassword):
    """Calls LineChat's connectionMade, which asks for the name before the password."""

    def connectionMade(self) -> None:
        LineChat.connectionMade(self)
        self.send_text("Password?")


class StateOnTheClass(FallsThrough):
    """Moves the class, not the connection, to GETNAME: everyone after alice skips the password."""

    def handle_PASSWORD(self, text: str) -> None:
        if text != self.password:
            self.send_text("Wrong password.")
            return
        type(self).state = "GETNAME"
        self.send_text("What's your name?")


class PasswordAsName(FallsThrough):
    """Chains into GETNAME with the same line: the password becomes the name, announced to all."""

    def handle_PASSWORD(self, text: str) -> None:
        if text != self.password:
            self.send_text("Wrong password.")
            return
        self.state = "GETNAME"
        self.handle_GETNAME(text)


class WritesText(FallsThrough):
    """Writes the prompt as text: the transport takes bytes only."""

    def connectionMade(self) -> None:
        self.transport.write("Password?\r\n")


def test_text_written_to_the_transport_is_named() -> None:
    """A str written to the transport is reported once, as the student's line, with what to write instead."""
    report = check_password_chat(WritesText)
    assert first_wrong(report).startswith("WritesText.connectionMade, line ")
    assert first_wrong(report).endswith('TypeError: Data must be bytes — write b"..." or text.encode()')
    assert sum(1 for line in report.lines() if line.kind == "bad") == 1


def test_wrong_password_admitted_is_rejected() -> None:
    """Falling through after 'Wrong password.' is named: the state must stay PASSWORD."""
    report = check_password_chat(FallsThrough)
    assert first_wrong(report) == (
        "alice typed 'twiste' at the password prompt; expected 'Wrong password.', got \"What's your name?\": "
        "after a wrong password the state must stay PASSWORD: send 'Wrong password.' and return"
    )


def test_state_never_changing_is_rejected() -> None:
    """A right password that leaves the state at PASSWORD is named."""
    report = check_password_chat(StateNeverChanges)
    assert first_wrong(report) == (
        "after the password, the name 'alice' should be welcomed; got 'Wrong password.': "
        'set self.state = "GETNAME" after the right password'
    )


def test_hard_coded_password_is_rejected() -> None:
    """A password compared with a fixed string fails once a subclass sets another one."""
    report = check_password_chat(HardCodedPassword)
    assert first_wrong(report) == (
        "with password = 'swordfish' on a subclass, 'twisted' got \"What's your name?\" and 'swordfish' got "
        "'Welcome, swordfish!': compare with self.password, not a fixed string"
    )


def test_name_prompt_before_the_password_is_rejected() -> None:
    """Calling LineChat's connectionMade asks for the name first; the check says not to."""
    report = check_password_chat(AsksNameFirst)
    assert first_wrong(report) == (
        "a new connection should be greeted 'Password?'; got \"What's your name?\": connectionMade should "
        "send only 'Password?' (LineChat's, which super() would call, asks the name)"
    )


def test_state_on_the_class_is_rejected() -> None:
    """State set on the class lets a second connection skip the password."""
    report = check_password_chat(StateOnTheClass)
    assert first_wrong(report) == (
        "bob, a second connection, typed 'bob' at the password prompt; expected 'Wrong password.', got "
        "'Welcome, bob!': each connection has its own state: set self.state, never PasswordChat.state"
    )


def test_password_taken_as_a_name_is_rejected() -> None:
    """A password that becomes the name (and is announced to everyone) is named."""
    report = check_password_chat(PasswordAsName)
    assert first_wrong(report) == (
        "alice's right password, 'twisted', should be answered \"What's your name?\"; got 'Welcome, twisted!': "
        "the password was taken as a name too, and announced to everyone: ask for the name, then wait"
    )


def test_password_solution_passes() -> None:
    """The reference PasswordChat passes every line."""
    report = check_password_chat(solved.PasswordChat)
    assert report.passed, repr(report)


# -- Exercise 3: a test that catches the tangle ---------------------------------------------------


def _joined_pair(factory: Factory[Any]) -> tuple[Any, StringTransport, Any, StringTransport]:
    alice, alice_transport = factory.buildProtocol(None), StringTransport()
    bob, bob_transport = factory.buildProtocol(None), StringTransport()
    alice.makeConnection(alice_transport)
    bob.makeConnection(bob_transport)
    alice.dataReceived(b"alice\r\n")
    return alice, alice_transport, bob, bob_transport


def names_in_two_chunks(factory: Factory[Any]) -> None:
    """Sends the names in two calls: TangledChat never sees two lines at once."""
    _, _, bob, bob_transport = _joined_pair(factory)
    bob.dataReceived(b"alice\r\n")
    bob.dataReceived(b"bob\r\n")
    assert bob_transport.value().endswith(b"Welcome, bob!\r\n")


def asserts_nothing_about_bob(factory: Factory[Any]) -> None:
    """Sends one chunk but asserts nothing about bob."""
    _, alice_transport, bob, _ = _joined_pair(factory)
    bob.dataReceived(b"alice\r\nbob\r\n")
    assert alice_transport.value().startswith(b"What's your name?")


def asserts_on_attributes(factory: Factory[Any]) -> None:
    """Asserts on LineChat's state attribute, which TangledChat has not."""
    _, _, bob, _ = _joined_pair(factory)
    bob.dataReceived(b"alice\r\nbob\r\n")
    assert bob.state == "CHAT"


def expects_bare_line_feeds(factory: Factory[Any]) -> None:
    """Expects bare LF line ends, which LineChat does not send."""
    _, _, bob, bob_transport = _joined_pair(factory)
    bob.dataReceived(b"alice\r\nbob\r\n")
    assert bob_transport.value().endswith(b"Welcome, bob!\n"), bob_transport.value()


def own_chat_only(factory: Factory[Any]) -> None:
    """Ignores the factory it is given and tests a LineChat of its own making."""
    from writing_servers.state_machines import ChatFactory, ChatRoom

    solved.test_second_name_in_one_chunk(ChatFactory(ChatRoom(), LineChat))


def test_one_chunk_test_that_asserts_nothing_is_rejected() -> None:
    """A test that sends one chunk but checks nothing about bob is told to assert on value()."""
    report = check_second_name_test(asserts_nothing_about_bob)
    assert first_wrong(report) == (
        "your test passes against TangledChat too, so it would not catch the bug: it sent both names in one "
        "chunk, but asserted nothing that notices bob was never welcomed: assert on the second transport's value()"
    )


def test_two_chunk_test_is_rejected() -> None:
    """A test that never puts two lines in one chunk is told so."""
    report = check_second_name_test(names_in_two_chunks)
    assert first_wrong(report) == (
        "your test passes against TangledChat too, so it would not catch the bug: it never sent two lines in "
        "one dataReceived call, so TangledChat's bug never shows"
    )


def test_attribute_test_is_rejected() -> None:
    """A test through .state raises AttributeError against TangledChat, and the line says where."""
    report = check_second_name_test(asserts_on_attributes)
    assert first_wrong(report).startswith("against TangledChat your test raised asserts_on_attributes, line ")
    assert first_wrong(report).endswith(
        "AttributeError: 'TangledChat' object has no attribute 'state', not an AssertionError: "
        "test through transport.value(), not through attributes only one class has"
    )


def test_wrong_bytes_test_is_rejected() -> None:
    """A test that fails against LineChat shows what LineChat really sent."""
    report = check_second_name_test(expects_bare_line_feeds)
    assert first_wrong(report) == (
        "your test fails against LineChat, which handles this case correctly: AssertionError: "
        'b"What\'s your name?\\r\\nName taken, please choose another.\\r\\nWelcome, bob!\\r\\n" '
        "(LineChat sent the second client b\"What's your name?\\r\\nName taken, please choose another.\\r\\n"
        'Welcome, bob!\\r\\n")'
    )


def test_test_of_its_own_chat_is_rejected() -> None:
    """A test that builds its own factory never tests the one passed in."""
    report = check_second_name_test(own_chat_only)
    assert first_wrong(report) == (
        "your test passes against TangledChat too, so it would not catch the bug: it never called "
        "factory.buildProtocol(None), so it tested a chat of its own"
    )


def test_unwritten_test_is_named() -> None:
    """The unsolved starter is reported as not written yet, in one line."""

    def test_second_name_in_one_chunk(factory: Factory[Any]) -> None:
        raise NotImplementedError("two protocols on StringTransports; both names in one chunk")

    report = check_second_name_test(test_second_name_in_one_chunk)
    assert first_wrong(report) == (
        "test_second_name_in_one_chunk is not written yet (two protocols on StringTransports; both names in one chunk)"
    )


def test_second_name_solution_passes() -> None:
    """The reference test passes against LineChat and catches TangledChat."""
    report = check_second_name_test(solved.test_second_name_in_one_chunk)
    assert report.passed, repr(report)
