"""The howto's chat, its forgotten-return bug, and the course's Chat: StringTransport first, then over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from support import ADDR, CHUNKINGS, chunks, connected, feed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from writing_servers import lab
from writing_servers.chat import (
    NAME_RULE,
    Chat,
    ChatFactory,
    ForgetfulChat,
    HowtoChat,
    HowtoChatFactory,
    name_problem,
    visible,
)
from writing_servers.clients import connect

PROMPT = b"What's your name?\r\n"
TAKEN = b"Name taken, please choose another.\r\n"
INVALID = f"Sorry, a name is {NAME_RULE}. Please choose another.\r\n".encode()
EMPTY = f"Please type a name: {NAME_RULE}.\r\n".encode()
NOT_UTF8 = b"Error: that line is not UTF-8 text\r\n"
TOO_LONG = b"Error: line longer than 1024 bytes; closing the connection\r\n"


def welcome(name: str) -> bytes:
    return f"Welcome, {name}!\r\n".encode()


def join(
    factory: HowtoChatFactory | ChatFactory, name: str, chunking: int | str = "whole"
) -> tuple[Any, StringTransport]:
    """A new connection that has chosen *name*; its transport is cleared after the welcome."""
    protocol, transport = connected(factory)
    feed(protocol, name.encode() + b"\r\n", chunking)
    assert transport.value() == PROMPT + welcome(name)
    transport.clear()
    return protocol, transport


def hang_up(protocol: HowtoChat) -> None:
    """What the reactor does when a connection closes."""
    protocol.connectionLost(Failure(ConnectionDone()))


# -- the howto's chat, and the same chat without its return --------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_howto_chat_refuses_a_taken_name_and_relays_to_the_others(chunking: int | str) -> None:
    """HowtoChat: a taken name is refused and the next line is another try; lines go to everyone else."""
    factory = HowtoChatFactory()
    alice, alice_transport = join(factory, "alice", chunking)
    bob, bob_transport = connected(factory)
    feed(bob, b"alice\r\n", chunking)
    assert bob_transport.value() == PROMPT + TAKEN
    assert bob.state == "GETNAME" and factory.users == {"alice": alice}
    feed(bob, b"bob\n", chunking)  # netcat's bare LF works too
    assert bob_transport.value() == PROMPT + TAKEN + welcome("bob")
    bob_transport.clear()
    feed(alice, b"hi bob\r\n", chunking)
    assert bob_transport.value() == b"<alice> hi bob\r\n"
    assert alice_transport.value() == b""


def test_howto_chat_relays_what_it_gets() -> None:
    """HowtoChat has no name rule and spells nothing out: that is what Chat adds."""
    factory = HowtoChatFactory()
    _, _ = join(factory, "<alice>")
    mallory, _ = join(factory, "mallory")
    listener, listener_transport = join(factory, "bob")
    mallory.dataReceived(b"hi\r<alice> trust me\r\n")  # TextLineReceiver strips only the CR before LF
    assert listener_transport.value() == b"<mallory> hi\r<alice> trust me\r\n"
    assert isinstance(listener, HowtoChat) and not isinstance(listener, Chat)


def test_howto_chat_frees_the_name_on_disconnect() -> None:
    """connectionLost removes the user, so the name can be chosen again."""
    factory = HowtoChatFactory()
    alice, _ = join(factory, "alice")
    visitor, _ = connected(factory)
    hang_up(visitor)  # never had a name: changes nothing
    assert factory.users == {"alice": alice}
    hang_up(alice)
    assert factory.users == {}
    again, _ = join(factory, "alice")
    assert factory.users == {"alice": again}


def test_forgetful_chat_welcomes_a_taken_name_and_steals_it() -> None:
    """Without the return, a taken name is refused *and* welcomed; the newcomer takes the entry in users."""
    factory = HowtoChatFactory()
    factory.protocol = ForgetfulChat
    alice, alice_transport = join(factory, "alice")
    bob, bob_transport = join(factory, "bob")
    mallory, mallory_transport = connected(factory)
    mallory.dataReceived(b"alice\r\n")
    assert mallory_transport.value() == PROMPT + TAKEN + welcome("alice")
    assert factory.users["alice"] is mallory
    mallory_transport.clear()
    bob.dataReceived(b"hunter2\r\n")
    assert mallory_transport.value() == b"<bob> hunter2\r\n"
    assert alice_transport.value() == b""  # the real alice is no longer reachable
    hang_up(alice)  # and her leaving deletes mallory's entry
    assert factory.users == {"bob": bob}
    assert bob_transport.value() == b""


def test_howto_factory_serves_a_subclass_with_shared_users() -> None:
    """factory.protocol may be any HowtoChat subclass; every protocol shares the factory's users."""

    class Shouting(HowtoChat):
        def handle_CHAT(self, message: str) -> None:
            super().handle_CHAT(message.upper())

    factory = HowtoChatFactory()
    factory.protocol = Shouting
    alice, _ = join(factory, "alice")
    _, bob_transport = join(factory, "bob")
    assert isinstance(alice, Shouting) and alice.users is factory.users
    alice.dataReceived(b"hi\r\n")
    assert bob_transport.value() == b"<alice> HI\r\n"


# -- the two rules, as plain functions ------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "alice", "Bob_the-2nd", "x" * 20, "0", "-_-"])
def test_name_problem_accepts_names_that_follow_the_rule(name: str) -> None:
    """ASCII letters, digits, - and _, 1 to 20 of them, are a valid name."""
    assert name_problem(name, []) is None


@pytest.mark.parametrize(
    "name",
    ["<alice>", "alice smith", "x" * 21, "аlice", "ali\x1bce", "bob!", "alice\r", "caf\u00e9", "a\u200bb"],
    ids=[
        "brackets",
        "space",
        "21-chars",
        "cyrillic-a",
        "escape",
        "punctuation",
        "cr",
        "accent",
        "zero-width",
    ],
)
def test_name_problem_refuses_names_outside_the_rule(name: str) -> None:
    """Anything else is refused with the rule in words, including look-alikes of other names."""
    assert name_problem(name, []) == f"Sorry, a name is {NAME_RULE}. Please choose another."


def test_name_problem_empty_and_taken() -> None:
    """An empty name asks for one; a taken name (in any case) is refused as the howto refuses it."""
    assert name_problem("", ["alice"]) == f"Please type a name: {NAME_RULE}."
    assert name_problem("alice", ["alice"]) == "Name taken, please choose another."
    assert name_problem("ALICE", ["bob", "alice"]) == "Name taken, please choose another."
    assert name_problem("alicia", ["alice"]) is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("hi\r<alice> fake", "hi^M<alice> fake"),
        ("\x1b[2J\x1b[31mred", "^[[2J^[[31mred"),
        ("a\tb", "a^Ib"),
        ("bell\x07", "bell^G"),
        ("nul\x00", "nul^@"),
        ("del\x7f", "del^?"),
        ("csi\x9b2J", "csi<U+009B>2J"),
        ("\u202eexe.txt", "<U+202E>exe.txt"),
        ("line\u2028sep", "line<U+2028>sep"),
        ("Grüße 👋, 你好", "Grüße 👋, 你好"),
        ("plain ^[ text", "plain ^[ text"),
    ],
    ids=[
        "cr",
        "ansi",
        "tab",
        "bell",
        "nul",
        "del",
        "c1-csi",
        "bidi",
        "line-separator",
        "unicode",
        "caret-text",
    ],
)
def test_visible_spells_out_what_a_terminal_would_obey(text: str, shown: str) -> None:
    """Control and invisible characters become caret notation or <U+XXXX>; printable text is untouched."""
    assert visible(text) == shown
    assert visible(text).isprintable()


# -- Chat with StringTransport: names --------------------------------------------------------------


def test_connecting_asks_for_a_name() -> None:
    """The first thing a client receives is the prompt, and it starts in state GETNAME."""
    protocol, transport = connected(ChatFactory())
    assert transport.value() == PROMPT
    assert protocol.state == "GETNAME"


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["CRLF", "LF"])
def test_choosing_a_name(chunking: int | str, ending: bytes) -> None:
    """A valid name is welcomed and stored in the factory's users, from telnet and netcat alike."""
    factory = ChatFactory()
    protocol, transport = connected(factory)
    feed(protocol, b"alice" + ending, chunking)
    assert transport.value() == PROMPT + welcome("alice")
    assert protocol.state == "CHAT"
    assert factory.users == {"alice": protocol}


def test_surrounding_spaces_are_not_part_of_the_name() -> None:
    """'  bob  ' is taken to mean 'bob'."""
    factory = ChatFactory()
    protocol, transport = connected(factory)
    protocol.dataReceived(b"  bob  \r\n")
    assert transport.value() == PROMPT + welcome("bob")
    assert list(factory.users) == ["bob"]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_taken_name_does_not_fall_through(chunking: int | str) -> None:
    """The howto's bug is absent: a taken name gets only the refusal, and the name keeps its owner."""
    factory = ChatFactory()
    alice, _ = join(factory, "alice")
    second, transport = connected(factory)
    feed(second, b"alice\r\n", chunking)
    assert transport.value() == PROMPT + TAKEN
    assert b"Welcome" not in transport.value()
    assert factory.users == {"alice": alice}
    assert second.state == "GETNAME" and second.name is None
    feed(second, b"bob\r\n", chunking)
    assert transport.value() == PROMPT + TAKEN + welcome("bob")
    assert factory.users == {"alice": alice, "bob": second}


def test_taken_is_case_insensitive() -> None:
    """'ALICE' is refused while 'alice' is here; the refusal keeps the connection in GETNAME."""
    factory = ChatFactory()
    join(factory, "alice")
    second, transport = connected(factory)
    second.dataReceived(b"ALICE\r\n")
    assert transport.value() == PROMPT + TAKEN
    assert list(factory.users) == ["alice"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"\r\n", EMPTY),
        (b"   \r\n", EMPTY),
        (b"\t\r\n", EMPTY),
        (b"<alice>\r\n", INVALID),
        (b"alice> hi. <bob\r\n", INVALID),
        ("аlice\r\n".encode(), INVALID),
        (b"x" * 21 + b"\r\n", INVALID),
        (b"ali\x1b[31mce\r\n", INVALID),
        (b"al\rice\r\n", INVALID),
    ],
    ids=["empty", "spaces", "tab", "brackets", "spoof", "cyrillic", "too-long", "ansi", "cr"],
)
@pytest.mark.parametrize("chunking", [1, 2, "halves", "whole"])
def test_bad_names_are_refused_with_a_reason(line: bytes, reply: bytes, chunking: int | str) -> None:
    """Each bad name gets one line saying why; nothing is stored and the next try is a name again."""
    factory = ChatFactory()
    protocol, transport = connected(factory)
    feed(protocol, line, chunking)
    assert transport.value() == PROMPT + reply
    assert protocol.state == "GETNAME"
    assert factory.users == {}
    assert not transport.disconnecting
    protocol.dataReceived(b"carol\r\n")
    assert transport.value() == PROMPT + reply + welcome("carol")


def test_bad_names_are_never_relayed() -> None:
    """Users already chatting hear nothing about someone else's failed tries."""
    factory = ChatFactory()
    _, alice_transport = join(factory, "alice")
    protocol, _ = connected(factory)
    for line in [b"alice\r\n", b"<alice>\r\n", b"\r\n", b"\xff\r\n"]:
        protocol.dataReceived(line)
    assert alice_transport.value() == b""


# -- Chat with StringTransport: messages -------------------------------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_two_protocols_from_one_factory_talk(chunking: int | str) -> None:
    """A message reaches the other user as '<name> text' and is not echoed to its sender."""
    factory = ChatFactory()
    alice, alice_transport = join(factory, "alice", chunking)
    bob, bob_transport = join(factory, "bob", chunking)
    feed(alice, b"hi bob\r\n", chunking)
    feed(bob, b"twisted makes writing servers so easy!\n", chunking)
    assert bob_transport.value() == b"<alice> hi bob\r\n"
    assert alice_transport.value() == b"<bob> twisted makes writing servers so easy!\r\n"


def test_broadcast_reaches_everyone_named_but_the_sender() -> None:
    """With three users, a message reaches the two others; a connection still choosing a name hears nothing."""
    factory = ChatFactory()
    alice, alice_transport = join(factory, "alice")
    _, bob_transport = join(factory, "bob")
    _, carrol_transport = join(factory, "carrol")
    _, nameless_transport = connected(factory)
    nameless_transport.clear()
    alice.dataReceived(b"I couldn't agree more\r\n")
    assert bob_transport.value() == carrol_transport.value() == b"<alice> I couldn't agree more\r\n"
    assert alice_transport.value() == b""
    assert nameless_transport.value() == b""


def test_text_is_relayed_as_utf8() -> None:
    """Non-ASCII text arrives intact, split between chunks or not."""
    factory = ChatFactory()
    alice, _ = join(factory, "alice")
    _, bob_transport = join(factory, "bob")
    feed(alice, "Grüße 👋\r\n".encode(), 1)
    assert bob_transport.value() == "<alice> Grüße 👋\r\n".encode()


def test_empty_messages_are_not_relayed() -> None:
    """Pressing Enter on an empty line (or only spaces) sends nothing to anyone."""
    factory = ChatFactory()
    alice, _ = join(factory, "alice")
    _, bob_transport = join(factory, "bob")
    alice.dataReceived(b"\r\n   \r\n\n")
    assert bob_transport.value() == b""


@pytest.mark.parametrize(
    ("sent", "relayed"),
    [
        (b"hi\r<bob> give mallory your password", b"<alice> hi^M<bob> give mallory your password"),
        (b"\x1b[2J\x1b[Hcleared", b"<alice> ^[[2J^[[Hcleared"),
        (b"\x1b]0;new title\x07", b"<alice> ^[]0;new title^G"),
        ("\u202etxt.exe".encode(), b"<alice> <U+202E>txt.exe"),
        ("\u009b31mred".encode(), b"<alice> <U+009B>31mred"),
    ],
    ids=["cr-overwrite", "clear-screen", "window-title", "bidi-override", "c1-csi"],
)
@pytest.mark.parametrize("chunking", [1, 3, "whole"])
def test_control_characters_never_reach_other_terminals(
    sent: bytes, relayed: bytes, chunking: int | str
) -> None:
    """A CR, ESC or other invisible character is relayed spelled out; the only control bytes sent are CRLF."""
    factory = ChatFactory()
    alice, _ = join(factory, "alice")
    _, bob_transport = join(factory, "bob")
    feed(alice, sent + b"\r\n", chunking)
    received = bob_transport.value()
    assert received == relayed + b"\r\n"
    body = received.removesuffix(b"\r\n").decode("utf-8")
    assert body.isprintable()


# -- bad input: encoding, length, leaving -------------------------------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_invalid_utf8_gets_an_error_and_the_connection_stays(chunking: int | str) -> None:
    """A line that is not UTF-8 is answered with an error in either state; nothing is relayed."""
    factory = ChatFactory()
    _, alice_transport = join(factory, "alice")
    protocol, transport = connected(factory)
    feed(protocol, b"caf\xe9\r\nbob\r\ncaf\xe9\r\ncaf\xc3\xa9\r\n", chunking)
    assert transport.value() == PROMPT + NOT_UTF8 + welcome("bob") + NOT_UTF8
    assert alice_transport.value() == "<bob> café\r\n".encode()
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", [1, 7, "halves", "whole"])
def test_overlong_line_closes_with_a_reason_and_frees_the_name(chunking: int | str) -> None:
    """A line over 1024 bytes ends the connection with an error; none of it is relayed; the name is freed."""
    factory = ChatFactory()
    _, alice_transport = join(factory, "alice")
    bob, bob_transport = join(factory, "bob")
    for piece in chunks(b"x" * 2000 + b"\r\nafter\r\n", chunking):
        if bob_transport.disconnecting:
            break  # a real TCP transport stops reading once loseConnection is called
        bob.dataReceived(piece)
    assert bob_transport.value() == TOO_LONG
    assert bob_transport.disconnecting
    assert alice_transport.value() == b""
    hang_up(bob)
    assert list(factory.users) == ["alice"]


def test_overlong_name_line_closes_too() -> None:
    """An overlong line while choosing a name also closes, and the users table is untouched."""
    factory = ChatFactory()
    join(factory, "alice")
    protocol, transport = connected(factory)
    protocol.dataReceived(b"n" * 1025)
    assert transport.value() == PROMPT + TOO_LONG
    assert transport.disconnecting
    hang_up(protocol)
    assert list(factory.users) == ["alice"]


def test_name_is_freed_on_disconnect() -> None:
    """connectionLost removes the user; the name can be chosen again and messages no longer go to them."""
    factory = ChatFactory()
    alice, alice_transport = join(factory, "alice")
    bob, _ = join(factory, "bob")
    hang_up(alice)
    assert list(factory.users) == ["bob"]
    bob.dataReceived(b"anyone?\r\n")
    assert alice_transport.value() == b""
    again, _ = join(factory, "alice")
    assert factory.users == {"bob": bob, "alice": again}


def test_leaving_before_choosing_a_name_changes_nothing() -> None:
    """A connection that never got a name leaves the users table as it was, even after a refused try."""
    factory = ChatFactory()
    alice, _ = join(factory, "alice")
    visitor, _ = connected(factory)
    visitor.dataReceived(b"alice\r\n")
    hang_up(visitor)
    assert factory.users == {"alice": alice}


def test_connection_lost_frees_only_its_own_name() -> None:
    """A protocol whose name now belongs to another connection does not delete that entry."""
    factory = ChatFactory()
    alice, _ = join(factory, "alice")
    stale = Chat(factory.users)
    stale.makeConnection(StringTransport())
    stale.name = "alice"  # as if it once had the name
    hang_up(stale)
    assert factory.users == {"alice": alice}


def test_factory_builds_the_configured_protocol_with_shared_users() -> None:
    """Every protocol the factory builds shares its users dict; factory.protocol may be a Chat subclass."""

    class Shouting(Chat):
        def handle_CHAT(self, message: str) -> None:
            super().handle_CHAT(message.upper())

    factory = ChatFactory()
    factory.protocol = Shouting
    alice, _ = join(factory, "alice")
    _, bob_transport = join(factory, "bob")
    assert isinstance(alice, Shouting)
    assert alice.users is factory.users
    alice.dataReceived(b"hi\r\n")
    assert bob_transport.value() == b"<alice> HI\r\n"


# -- over loopback -------------------------------------------------------------------------------


#: The howto's sample session, as bob's terminal shows it: (typed, line bob reads next) in order.
HOWTO_SESSION_BOB = [
    "What's your name?",
    "> test",
    "Name taken, please choose another.",
    "> bob",
    "Welcome, bob!",
    "> hello",
    "<alice> hi bob",
    "> twisted makes writing servers so easy!",
    "<alice> I couldn't agree more",
    "<carrol> yeah, it's great",
]


@pytest.mark.parametrize("make_factory", [HowtoChatFactory, ChatFactory], ids=["HowtoChat", "Chat"])
def test_the_howto_session_over_loopback(make_factory: type[HowtoChatFactory] | type[ChatFactory]) -> None:
    """test, alice and carrol are here; bob's terminal then shows exactly the howto's sample session."""
    lab.call(lambda: None)  # errors logged by an earlier test's last callbacks are not this session's
    lab.errors().take_new()
    factory = make_factory()
    server = lab.listen(factory, name="test-chat")
    people = {}
    for name in ["test", "alice", "carrol"]:
        people[name] = connect(server, timeout=5, title=name)
        assert people[name].read_line() == "What's your name?"
        people[name].send_line(name, ending=b"\n" if name == "carrol" else b"\r\n")
        assert people[name].read_line() == f"Welcome, {name}!"
    alice, carrol = people["alice"], people["carrol"]
    shown = []
    with connect(server, timeout=5, title="bob") as bob:

        def bob_types(line: str) -> None:
            bob.send_line(line)
            shown.append(f"> {line}")

        shown.append(bob.read_line())
        for attempt in ["test", "bob"]:
            bob_types(attempt)
            shown.append(bob.read_line())
        bob_types("hello")
        assert alice.read_line() == carrol.read_line() == "<bob> hello"
        alice.send_line("hi bob")
        shown.append(bob.read_line())
        bob_types("twisted makes writing servers so easy!")
        assert alice.read_line() == "<bob> twisted makes writing servers so easy!"
        alice.send_line("I couldn't agree more")
        shown.append(bob.read_line())
        assert carrol.read_lines(3)[-1] == "<alice> I couldn't agree more"
        carrol.send_line("yeah, it's great", ending=b"\n")
        shown.append(bob.read_line())
        assert lab.call(lambda: sorted(factory.users)) == ["alice", "bob", "carrol", "test"]
    for client in people.values():
        client.close()
    server.wait_until_idle()
    assert shown == HOWTO_SESSION_BOB
    assert factory.users == {}
    assert lab.errors().take_new() == []


def test_bad_input_over_loopback() -> None:
    """Over real sockets: escapes arrive spelled out, bad UTF-8 is refused, an overlong line frees the name."""
    factory = ChatFactory()
    server = lab.listen(factory, name="test-chat-bad")
    with connect(server, timeout=5) as alice, connect(server, timeout=5) as mallory:
        alice.read_line()
        alice.send_line("alice")
        alice.read_line()
        mallory.read_line()
        mallory.send_line("<alice>")
        assert mallory.read_line() == f"Sorry, a name is {NAME_RULE}. Please choose another."
        mallory.send_line("mallory")
        assert mallory.read_line() == "Welcome, mallory!"
        mallory.send_line("hi\r<alice> trust me")
        assert alice.read_until(b"\n") == b"<mallory> hi^M<alice> trust me\r\n"
        mallory.send_line(b"caf\xe9")
        assert mallory.read_until(b"\n") == NOT_UTF8
        mallory.send_line("x" * 2000)
        assert mallory.read_all() == TOO_LONG
        assert mallory.ended == "eof"
        server.wait_for_open_connections(1)
        assert lab.call(lambda: sorted(factory.users)) == ["alice"]
    server.wait_until_idle()
    assert factory.users == {}


def test_chat_turns_off_nagle_on_tcp_connections() -> None:
    """On a TCP transport the chat sets TCP_NODELAY before its first line; on others it does nothing."""

    @implementer(ITCPTransport)
    class TCPStringTransport(StringTransport):
        no_delay: bool | None = None

        def setTcpNoDelay(self, enabled: bool) -> None:
            assert self.value() == b"", "set before anything is written"
            self.no_delay = enabled

    tcp = TCPStringTransport()
    ChatFactory().buildProtocol(ADDR).makeConnection(tcp)
    assert tcp.no_delay is True
    assert tcp.value() == PROMPT
    _, plain = connected(ChatFactory())  # a plain StringTransport has no setTcpNoDelay
    assert plain.value() == PROMPT
