"""Notebook 8's checks reject the mistakes students make, and the first ✗ line names the cause.

Each wrong attempt is written as a student would write it, on ``HowtoChat``
as the notebook's starters are, and served by the real check over loopback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

from support import first_wrong
from twisted.python.failure import Failure

from writing_servers.chat import HowtoChat
from writing_servers.exercises.chat import check_announcing_chat, check_private_chat, check_who_chat
from writing_servers.helper_protocols import visible
from writing_servers.solutions import chat as solutions


def line_in_file(method: Callable[..., object], text: str) -> int:
    """The file's line number of the first line of *method* holding *text* (the check names file lines)."""
    lines, first = inspect.getsourcelines(method)
    return first + next(n for n, line in enumerate(lines) if text in line)


# -- exercise 1: /who ------------------------------------------------------------------------------


class WhoDispatch(HowtoChat):
    """The part of WhoChat these attempts get right: /who goes to who(), the rest is relayed."""

    def handle_CHAT(self, message: str) -> None:
        if message == "/who":
            self.who()
        else:
            super().handle_CHAT(message)

    def who(self) -> None:
        raise NotImplementedError


class WhoInJoinOrder(WhoDispatch):
    def who(self) -> None:
        self.send_text("Users: " + ", ".join(self.users))


class WhoForEveryone(WhoDispatch):
    def who(self) -> None:
        self.broadcast("Users: " + ", ".join(sorted(self.users)))


class WhoButMe(WhoDispatch):
    def who(self) -> None:
        self.send_text("Users: " + ", ".join(sorted(name for name in self.users if name != self.name)))


class WhoWritesText(WhoDispatch):
    def who(self) -> None:
        self.transport.write("Users: " + ", ".join(sorted(self.users)) + "\r\n")  # str, not bytes


class WhoRemembersEveryone(WhoDispatch):
    names: ClassVar[list[str]] = []  # on the class, and never told who left

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.state == "CHAT":
            self.names.append(name)

    def who(self) -> None:
        self.send_text("Users: " + ", ".join(sorted(self.names)))


class WhoAlsoRelayed(HowtoChat):
    def handle_CHAT(self, message: str) -> None:
        if message == "/who":
            self.send_text("Users: " + ", ".join(sorted(self.users)))
        super().handle_CHAT(message)


class WhoRelaysNothing(HowtoChat):
    def handle_CHAT(self, message: str) -> None:
        if message == "/who":
            self.send_text("Users: " + ", ".join(sorted(self.users)))


class WhoAtThePrompt(HowtoChat):
    def text_received(self, line: str) -> None:
        if line == "/who":
            self.send_text("Users: " + ", ".join(sorted(self.users)))
        else:
            super().text_received(line)


def test_who_in_join_order_is_rejected() -> None:
    """Names listed in join order fail, because zoe joins before adam."""
    assert first_wrong(check_who_chat(WhoInJoinOrder)) == (
        "zoe asks /who: got 'Users: zoe, adam': the names in the order they joined; "
        "the exercise asks for them sorted: 'Users: adam, zoe'"
    )


def test_who_answer_broadcast_is_rejected() -> None:
    """An answer sent to everyone else instead of the asker is named as such."""
    assert first_wrong(check_who_chat(WhoForEveryone)) == (
        "zoe asks /who: nothing came to zoe, but adam got 'Users: adam, zoe': the answer to zoe's /who "
        "goes to zoe alone: self.send_text(...), not broadcast"
    )


def test_who_also_relayed_as_chat_is_rejected() -> None:
    """A /who answered but relayed too (no else, no return) fails where the others see it."""
    assert first_wrong(check_who_chat(WhoAlsoRelayed)) == (
        "adam's next line is zoe's chat (not her /who): got '<zoe> /who': zoe's /who was relayed as chat; "
        "answer it and return instead"
    )


def test_who_without_relaying_other_messages_is_rejected() -> None:
    """Forgetting super().handle_CHAT for other messages is named."""
    assert first_wrong(check_who_chat(WhoRelaysNothing)) == (
        "adam's next line is zoe's chat (not her /who): zoe's 'hello' never arrived: "
        "relay every other message with super().handle_CHAT(message)"
    )


def test_who_leaving_out_the_asker_is_rejected() -> None:
    """A list without the asker's own name fails."""
    assert first_wrong(check_who_chat(WhoButMe)) == (
        "zoe asks /who: got 'Users: adam': it leaves out zoe, who asked; list everyone in the chat: "
        "'Users: adam, zoe'"
    )


def test_who_at_the_name_prompt_is_rejected() -> None:
    """Handling /who in text_received shows the list to someone still choosing a name."""
    assert first_wrong(check_who_chat(WhoAtThePrompt)) == (
        "a visitor at the name prompt typed /who and got 'Users: adam, mike': there a line is a name; "
        "answer /who in handle_CHAT, once a name is chosen"
    )


def test_who_from_a_list_of_its_own_is_rejected() -> None:
    """A list kept apart from the factory's users still names someone who left."""
    assert first_wrong(check_who_chat(WhoRemembersEveryone)) == (
        "after zoe leaves, mike asks /who: expected 'Users: adam, mike', got 'Users: adam, mike, zoe'"
    )


def test_who_writing_text_names_the_line() -> None:
    """Writing str to the transport is reported at the student's own line, with the fix."""
    line = line_in_file(WhoWritesText.who, "transport.write")
    assert first_wrong(check_who_chat(WhoWritesText)) == (
        f'WhoWritesText.who, line {line}: TypeError: Data must be bytes — write b"..." or text.encode()'
    )


# -- exercise 2: announcements ---------------------------------------------------------------------


class JoinsAnnounced(HowtoChat):
    """The join half of AnnouncingChat, right: the attempts below get the leave half wrong."""

    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.state == "CHAT":
            self.broadcast(f"* {name} has joined")


class LeavesAnnounced(HowtoChat):
    """The leave half of AnnouncingChat, right: the attempts below get the join half wrong."""

    def connectionLost(self, reason: Failure) -> None:
        if self.name in self.users:
            self.broadcast(f"* {self.name} has left")
        super().connectionLost(reason)


class AnnouncingToAll(LeavesAnnounced):
    def handle_GETNAME(self, name: str) -> None:
        super().handle_GETNAME(name)
        if self.state == "CHAT":
            for protocol in self.users.values():
                protocol.send_text(f"* {name} has joined")


class AnnouncingEveryTry(LeavesAnnounced):
    def handle_GETNAME(self, name: str) -> None:
        self.broadcast(f"* {name} has joined")
        super().handle_GETNAME(name)


class AnnouncingEveryLeave(JoinsAnnounced):
    def connectionLost(self, reason: Failure) -> None:
        self.broadcast(f"* {self.name} has left")
        super().connectionLost(reason)


class AnnouncingTooLate(JoinsAnnounced):
    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if self.name in self.users:  # never: super() has just removed it
            self.broadcast(f"* {self.name} has left")


class AnnouncingWithoutSuper(JoinsAnnounced):
    def connectionLost(self, reason: Failure) -> None:
        if self.name in self.users:
            self.broadcast(f"* {self.name} has left")


def test_announcing_to_the_newcomer_too_is_rejected() -> None:
    """A join announced to the one who joined fails at once."""
    assert first_wrong(check_announcing_chat(AnnouncingToAll)) == (
        "zoe hears that adam joined: got '* zoe has joined': zoe was told of their own arrival; "
        "self.broadcast(...) tells everyone else"
    )


def test_announcing_a_refused_try_is_rejected() -> None:
    """Announcing before HowtoChat decides announces a name that was refused."""
    assert first_wrong(check_announcing_chat(AnnouncingEveryTry)) == (
        "zoe's next line is adam's chat: the refused visitor came and went unannounced: got '* zoe has joined': "
        "a visitor was refused the name 'zoe', and that was announced; announce only once the name is "
        "accepted (self.state is 'CHAT' after super().handle_GETNAME(name))"
    )


def test_announcing_a_nameless_visitor_leaving_is_rejected() -> None:
    """A departure announced without a name check announces the visitor as None."""
    assert first_wrong(check_announcing_chat(AnnouncingEveryLeave)) == (
        "zoe's next line is adam's chat: the refused visitor came and went unannounced: got '* None has left': "
        "a visitor who never got a name was announced; announce a departure only if there was a name"
    )


def test_announcing_after_super_is_rejected() -> None:
    """Looking for the name after super().connectionLost has freed it announces nothing."""
    assert first_wrong(check_announcing_chat(AnnouncingTooLate)) == (
        "zoe hears that mike left: nothing came; in connectionLost, tell the others before "
        "super().connectionLost(reason) removes the name from self.users"
    )


def test_announcing_without_freeing_the_name_is_rejected() -> None:
    """Without super().connectionLost the name stays taken after its owner left."""
    assert first_wrong(check_announcing_chat(AnnouncingWithoutSuper)) == (
        "someone new takes the name mike left free: got 'Name taken, please choose another.': mike's name "
        "was not freed when he left; end connectionLost with super().connectionLost(reason)"
    )


# -- exercise 3: private messages ------------------------------------------------------------------


class PrivateParsing(HowtoChat):
    """The parsing these attempts get right; each delivers a well-formed /msg in its own wrong way."""

    def handle_CHAT(self, message: str) -> None:
        command, _, rest = message.partition(" ")
        if command != "/msg":
            super().handle_CHAT(message)
            return
        name, _, text = rest.partition(" ")
        if not text:
            self.send_text("Usage: /msg <name> <text>")
        elif name not in self.users:
            self.send_text(f"No such user: {name}")
        else:
            self.deliver(name, text)

    def deliver(self, name: str, text: str) -> None:
        raise NotImplementedError


class PrivateToEveryone(PrivateParsing):
    def deliver(self, name: str, text: str) -> None:
        self.broadcast(f"*{self.name}* {visible(text)}")


class PrivateRaw(PrivateParsing):
    def deliver(self, name: str, text: str) -> None:
        self.users[name].send_text(f"*{self.name}* {text}")


class PrivateUnsigned(PrivateParsing):
    def deliver(self, name: str, text: str) -> None:
        self.users[name].send_text(visible(text))


class PrivateBackToSender(PrivateParsing):
    def deliver(self, name: str, text: str) -> None:
        self.send_text(f"*{self.name}* {visible(text)}")


class PrivateNotToMyself(PrivateParsing):
    def deliver(self, name: str, text: str) -> None:
        for protocol in self.users.values():
            if protocol is not self and protocol.name == name:  # the loop from broadcast
                protocol.send_text(f"*{self.name}* {visible(text)}")
                return
        self.send_text(f"No such user: {name}")


class PrivateFirstWord(HowtoChat):
    def handle_CHAT(self, message: str) -> None:
        words = message.split(" ")
        if words[0] == "/msg" and words[1] in self.users:
            self.users[words[1]].send_text(f"*{self.name}* {visible(words[2])}")
        else:
            super().handle_CHAT(message)


class PrivateUnpacking(HowtoChat):
    def handle_CHAT(self, message: str) -> None:
        if not message.startswith("/msg "):
            super().handle_CHAT(message)
            return
        _, name, text = message.split(" ", 2)
        if name in self.users:
            self.users[name].send_text(f"*{self.name}* {visible(text)}")
        else:
            self.send_text(f"No such user: {name}")


class PrivateUnknownRelayed(HowtoChat):
    def handle_CHAT(self, message: str) -> None:
        command, _, rest = message.partition(" ")
        name, _, text = rest.partition(" ")
        if command == "/msg" and name in self.users:
            self.users[name].send_text(f"*{self.name}* {visible(text)}")
        else:
            super().handle_CHAT(message)


def test_private_message_to_everyone_is_rejected() -> None:
    """A private message broadcast is found by the next person it was not for."""
    assert first_wrong(check_private_chat(PrivateToEveryone)) == (
        "zoe's private message to adam with ESC [2J (clear the screen) in it arrives spelled out: "
        "got '*zoe* see you at five': a private message for mike; send it to that user's protocol alone"
    )


def test_private_message_with_raw_escapes_is_rejected() -> None:
    """Control characters passed through unspelled fail, naming visible."""
    assert first_wrong(check_private_chat(PrivateRaw)) == (
        "zoe's private message to adam with ESC [2J (clear the screen) in it arrives spelled out: "
        "got '*zoe* \\\\x1b[2Jred alert': the ESC reached adam's terminal as it is; "
        "pass the text through visible(text)"
    )


def test_private_message_cut_to_one_word_is_rejected() -> None:
    """Splitting on every space keeps only the text's first word."""
    assert first_wrong(check_private_chat(PrivateFirstWord)) == (
        "zoe sends mike a private message: got '*zoe* see': only part of the text; split the name off "
        "once and keep the rest whole (str.partition)"
    )


def test_private_message_without_text_crashing_is_rejected() -> None:
    """'/msg adam' with no text crashes an unpacking split: the student's line is named."""
    line = line_in_file(PrivateUnpacking.handle_CHAT, "split")
    assert first_wrong(check_private_chat(PrivateUnpacking)) == (
        f"PrivateUnpacking.handle_CHAT, line {line}: ValueError: not enough values to unpack (expected 3, got 2)"
    )


def test_private_message_without_the_sender_is_rejected() -> None:
    """A private message that does not say who sent it fails."""
    assert first_wrong(check_private_chat(PrivateUnsigned)) == (
        "zoe sends mike a private message: got 'see you at five': it does not say who sent it; "
        "put the sender's name first: '*zoe* see you at five'"
    )


def test_private_message_to_oneself_refused_is_rejected() -> None:
    """A lookup that skips the sender answers 'No such user' to someone writing to themselves."""
    assert first_wrong(check_private_chat(PrivateNotToMyself)) == (
        "mike sends himself a private message: got 'No such user: mike': mike is here; look the name up "
        "in self.users, which holds everyone, the sender too"
    )


def test_private_message_to_an_unknown_name_relayed_is_rejected() -> None:
    """A /msg to someone absent that falls through to chat is found where it went."""
    assert first_wrong(check_private_chat(PrivateUnknownRelayed)) == (
        "zoe writes to dave, who is not here: nothing came to zoe, but adam got '<zoe> /msg dave hello?': "
        "a /msg relayed to everyone as chat; handle /msg before relaying"
    )


def test_private_message_sent_back_to_the_sender_is_rejected() -> None:
    """self.send_text instead of the recipient's: the message is found on the sender's screen."""
    assert first_wrong(check_private_chat(PrivateBackToSender)) == (
        "zoe sends mike a private message: nothing came to mike, but zoe got '*zoe* see you at five': "
        "a private message for mike; send it to that user's protocol alone"
    )


# -- the reference solutions -----------------------------------------------------------------------


def test_reference_solutions_pass() -> None:
    """The reference solutions pass (test_exercises also runs the code solution(n) shows)."""
    for check, solved in [
        (check_who_chat, solutions.WhoChat),
        (check_announcing_chat, solutions.AnnouncingChat),
        (check_private_chat, solutions.PrivateChat),
    ]:
        report = check(solved)
        assert report.passed, repr(report)
