"""The chat in layers: the room alone, the front ends on StringTransport, the tangled anti-example, loopback."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
from support import CHUNKINGS, chunks, connected
from twisted.internet.testing import StringTransport

from writing_servers import lab, state_machines
from writing_servers.clients import connect
from writing_servers.state_machines import (
    ChatFactory,
    ChatRoom,
    Inbox,
    JsonChat,
    LineChat,
    TangledChat,
    TangledChatFactory,
    name_problem,
    play,
)

ASK = b"What's your name?\r\n"
TAKEN = b"Name taken, please choose another.\r\n"

# -- the application alone: plain objects, no Twisted ---------------------------------------------


def test_room_welcomes_and_announces() -> None:
    """Joining welcomes the newcomer and tells everyone already there."""
    room, alice, bob = ChatRoom(), Inbox(), Inbox()
    room.join("alice", alice)
    room.join("bob", bob)
    assert alice.received == ["Welcome, alice!", "* bob has joined"]
    assert bob.received == ["Welcome, bob!"]
    assert room.who() == ["alice", "bob"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("alice", "Name taken, please choose another."),
        ("", "Please type a name."),
        ("  ", "Please type a name."),
        ("ALICE", "Name taken, please choose another."),
        ("<bob>", "A name is 1 to 20 printable characters, without spaces, <, > or *."),
        ("x" * 21, "A name is 1 to 20 printable characters, without spaces, <, > or *."),
        ("bo\x1bb", "A name is 1 to 20 printable characters, without spaces, <, > or *."),
    ],
)
def test_room_refuses_taken_blank_and_look_alike_names(name: str, reason: str) -> None:
    """A taken or blank name is refused with the reason, and changes nothing."""
    room, alice, other = ChatRoom(), Inbox(), Inbox()
    assert room.join("alice", alice) is None
    assert room.join(name, other) == reason
    assert room.who() == ["alice"]
    assert room.members["alice"] is alice
    assert alice.received == ["Welcome, alice!"] and other.received == []


def test_room_say_reaches_everyone_but_the_speaker() -> None:
    """A message goes to every other member, prefixed with the speaker's name; blank ones go nowhere."""
    room, alice, bob, carol = ChatRoom(), Inbox(), Inbox(), Inbox()
    for name, member in [("alice", alice), ("bob", bob), ("carol", carol)]:
        room.join(name, member)
    for inbox in (alice, bob, carol):
        inbox.received.clear()
    room.say("bob", "hi all")
    room.say("bob", "   ")
    assert alice.received == carol.received == ["<bob> hi all"]
    assert bob.received == []


def test_room_leave_announces_and_ignores_strangers() -> None:
    """Leaving tells the others; leaving under a name that never joined does nothing."""
    room, alice, bob = ChatRoom(), Inbox(), Inbox()
    room.join("alice", alice)
    room.join("bob", bob)
    room.leave("bob")
    room.leave("nobody")
    assert alice.received == ["Welcome, alice!", "* bob has joined", "* bob has left"]
    assert room.who() == ["alice"]


def test_room_broadcast_survives_a_member_leaving_during_delivery() -> None:
    """A member who leaves while a message is being delivered does not break delivery to the rest."""
    room, alice, carol = ChatRoom(), Inbox(), Inbox()

    class Quitter(Inbox):
        def deliver(self, text: str) -> None:
            super().deliver(text)
            if text.startswith("<"):  # the first chat message makes bob leave
                room.leave("bob")

    room.join("alice", alice)
    room.join("bob", Quitter())
    room.join("carol", carol)
    room.say("alice", "hello")
    assert carol.received == ["Welcome, carol!", "* bob has left", "<alice> hello"]
    assert room.who() == ["alice", "carol"]


def test_application_runs_with_twisted_unimportable() -> None:
    """Member, name_problem, ChatRoom and Inbox work in a Python where importing twisted fails."""
    source = "\n\n".join(
        inspect.getsource(getattr(state_machines, name))
        for name in ["Member", "name_problem", "ChatRoom", "Inbox"]
    )
    program = (
        "import sys\nsys.modules['twisted'] = None  # any 'import twisted...' now raises ImportError\n"
        "import typing\nfrom collections.abc import Iterable\n"
        + source
        + "\nroom, alice, bob = ChatRoom(), Inbox(), Inbox()\n"
        "room.join('alice', alice); room.join('bob', bob); room.say('bob', 'hi')\n"
        "assert alice.received[-1] == '<bob> hi', alice.received\n"
        "assert not any(name.startswith('twisted') for name in sys.modules if sys.modules[name] is not None)\n"
        "print('ok')\n"
    )
    assert "twisted" not in source.lower()
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


# -- LineChat on StringTransport ----------------------------------------------------------------

SESSION = [(0, b"alice\r\n"), (1, b"alice\r\nbob\r\nhi alice\r\n"), (0, b"hi bob\r\n")]
SESSION_RECEIVED = [
    ASK + b"Welcome, alice!\r\n* bob has joined\r\n<bob> hi alice\r\n",
    ASK + TAKEN + b"Welcome, bob!\r\n<alice> hi bob\r\n",
]


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["CRLF", "LF"])
def test_line_chat_two_clients_share_one_room(chunking: int | str, ending: bytes) -> None:
    """Two LineChats on one room: names, a refusal and messages, however the bytes are chunked."""
    room = ChatRoom()
    alice, alice_transport = connected(ChatFactory(room, LineChat))
    bob, bob_transport = connected(ChatFactory(room, LineChat))
    for protocol, data in [
        (alice, b"alice\r\n"),
        (bob, b"alice\r\nbob\r\nhi alice\r\n"),
        (alice, "hi bob, grüße\r\n".encode()),
    ]:
        for piece in chunks(data.replace(b"\r\n", ending), chunking):
            protocol.dataReceived(piece)
    assert alice_transport.value() == ASK + b"Welcome, alice!\r\n* bob has joined\r\n<bob> hi alice\r\n"
    assert bob_transport.value() == ASK + TAKEN + "Welcome, bob!\r\n<alice> hi bob, grüße\r\n".encode()
    assert (alice.state, bob.state) == ("CHAT", "CHAT")
    assert room.who() == ["alice", "bob"]


def test_line_chat_dispatches_on_its_state() -> None:
    """The same line is a name in GETNAME and a message in CHAT."""
    room, inbox = ChatRoom(), Inbox()
    room.join("zed", inbox)
    protocol, _ = connected(ChatFactory(room, LineChat))
    assert protocol.state == "GETNAME"
    protocol.dataReceived(b"hello\r\n")
    assert (protocol.state, protocol.name) == ("CHAT", "hello")
    protocol.dataReceived(b"hello\r\n")
    assert inbox.received[-1] == "<hello> hello"


def test_line_chat_blank_name_then_a_real_one() -> None:
    """A blank name is refused with a reason and the next line is another try."""
    transport = play(ChatFactory(ChatRoom(), LineChat), [(0, b"\r\n   \ncarol\n")])[0]
    assert transport == ASK + b"Please type a name.\r\nPlease type a name.\r\nWelcome, carol!\r\n"


def test_line_chat_leaves_the_room_when_the_connection_ends() -> None:
    """connectionLost in CHAT leaves the room (the others hear it); in GETNAME it does nothing."""
    room, inbox = ChatRoom(), Inbox()
    room.join("zed", inbox)
    named, _ = connected(ChatFactory(room, LineChat))
    unnamed, _ = connected(ChatFactory(room, LineChat))
    named.dataReceived(b"alice\n")
    unnamed.connectionLost()
    named.connectionLost()
    assert inbox.received == ["Welcome, zed!", "* alice has joined", "* alice has left"]
    assert room.who() == ["zed"]


def test_line_chat_invalid_utf8_and_overlong_lines_are_the_framings_job() -> None:
    """The framing layer refuses a non-UTF-8 line and closes on an overlong one; the room never sees them."""
    room, inbox = ChatRoom(), Inbox()
    room.join("zed", inbox)
    protocol, transport = connected(ChatFactory(room, LineChat))
    protocol.dataReceived(b"caf\xe9\r\n" + b"x" * 2000)
    assert transport.value() == ASK + (
        b"Error: that line is not UTF-8 text\r\nError: line longer than 1024 bytes; closing the connection\r\n"
    )
    assert transport.disconnecting
    assert inbox.received == ["Welcome, zed!"]


def test_string_transport_refuses_text() -> None:
    """StringTransport.write of str raises TypeError: a free check that a protocol writes bytes."""
    with pytest.raises(TypeError):
        StringTransport().write("text")  # type: ignore[arg-type]


# -- JsonChat ------------------------------------------------------------------------------------


def lines_of(data: bytes) -> list[object]:
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_json_chat_join_say_who(chunking: int | str) -> None:
    """JSON requests join, say and who, with replies as JSON lines, however the bytes are chunked."""
    room = ChatRoom()
    line, line_transport = connected(ChatFactory(room, LineChat))
    bot, bot_transport = connected(ChatFactory(room, JsonChat))
    line.dataReceived(b"alice\n")
    for piece in chunks(
        '{"join": "alice"}\n{"join": "bøt"}\r\n{"say": "hi"}\n{"who": ""}\n'.encode(),
        chunking,
    ):
        bot.dataReceived(piece)
    line.dataReceived(b"hello bot\r\n")
    assert lines_of(bot_transport.value()) == [
        {"error": "Name taken, please choose another."},
        {"text": "Welcome, bøt!"},
        {"who": ["alice", "bøt"]},
        {"text": "<alice> hello bot"},
    ]
    assert "bøt".encode() in bot_transport.value()  # UTF-8 as it is, not \u-escaped
    assert line_transport.value().endswith("* bøt has joined\r\n<bøt> hi\r\n".encode())


@pytest.mark.parametrize(
    ("request_line", "error"),
    [
        (b"hello", "that line is not JSON"),
        (b'["join", "x"]', 'send one request per line, like {"say": "hello"}'),
        (b'{"join": "x", "say": "y"}', 'send one request per line, like {"say": "hello"}'),
        (b'{"say": "hi"}', "no 'say' in state GETNAME"),
        (b'{"dance": ""}', "no 'dance' in state GETNAME"),
        (b'{"join": 7}', "the value of 'join' must be a string"),
    ],
)
def test_json_chat_refuses_bad_requests(request_line: bytes, error: str) -> None:
    """A malformed or out-of-state request gets an error object, and the connection stays usable."""
    protocol, transport = connected(ChatFactory(ChatRoom(), JsonChat))
    protocol.dataReceived(request_line + b'\n{"join": "ok"}\n')
    assert lines_of(transport.value()) == [{"error": error}, {"text": "Welcome, ok!"}]
    assert not transport.disconnecting


def test_json_chat_cannot_join_twice() -> None:
    """In CHAT, join is not a request: the state decides which requests exist."""
    protocol, transport = connected(ChatFactory(ChatRoom(), JsonChat))
    protocol.dataReceived(b'{"join": "a"}\n{"join": "b"}\n')
    assert lines_of(transport.value()) == [{"text": "Welcome, a!"}, {"error": "no 'join' in state CHAT"}]


def test_json_chat_leaves_when_the_connection_ends() -> None:
    """A JSON member who disconnects leaves the room."""
    room, inbox = ChatRoom(), Inbox()
    room.join("zed", inbox)
    bot, _ = connected(ChatFactory(room, JsonChat))
    bot.dataReceived(b'{"join": "bot"}\n')
    bot.connectionLost()
    assert inbox.received[-1] == "* bot has left"
    assert room.who() == ["zed"]


def test_chat_factory_builds_its_front_end_on_the_shared_room() -> None:
    """ChatFactory builds the front end it was given, for its room, and sets .factory."""
    room = ChatRoom()
    factory = ChatFactory(room, JsonChat)
    protocol, _ = connected(factory)
    assert isinstance(protocol, JsonChat)
    assert protocol.factory is factory and factory.room is room


# -- the tangled anti-example against the layered version ----------------------------------------


def test_play_numbers_clients_and_chunks_input() -> None:
    """play connects each client when it first speaks and returns what each one received."""
    assert play(ChatFactory(ChatRoom(), LineChat), SESSION) == SESSION_RECEIVED


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 5, 7, 8, 9])
def test_tangled_and_layered_agree_when_no_chunk_holds_two_line_ends(chunk_size: int) -> None:
    """On the session, split so that no chunk holds two line ends, both chats send exactly the same."""
    assert play(TangledChatFactory(), SESSION, chunk_size) == SESSION_RECEIVED
    assert play(ChatFactory(ChatRoom(), LineChat), SESSION, chunk_size) == SESSION_RECEIVED


@pytest.mark.parametrize(
    ("chunk_size", "tangled_received"),
    [
        (None, [ASK + b"Welcome, alice!\r\n", ASK + TAKEN]),
        (
            6,
            [
                ASK + b"Welcome, alice!\r\n* hi alice has joined\r\n",
                ASK + TAKEN + b"Welcome, hi alice!\r\n<alice> hi bob\r\n",
            ],
        ),
    ],
    ids=["whole", "6"],
)
def test_tangled_loses_lines_after_a_refused_name(
    chunk_size: int | None, tangled_received: list[bytes]
) -> None:
    """A chunk holding a taken name and more lines: TangledChat's return drops the rest; LineChat doesn't."""
    assert play(TangledChatFactory(), SESSION, chunk_size) == tangled_received
    assert play(ChatFactory(ChatRoom(), LineChat), SESSION, chunk_size) == SESSION_RECEIVED


def test_tangled_chunk_sizes_that_lose_lines() -> None:
    """Of chunk sizes 1..9 only 6 puts both line ends in one chunk; a byte-at-a-time test misses the bug."""
    losing = [size for size in range(1, 10) if play(TangledChatFactory(), SESSION, size) != SESSION_RECEIVED]
    assert losing == [6]


def test_tangled_buffers_without_limit() -> None:
    """TangledChat keeps any amount of bytes without a newline; LineChat closes past MAX_LENGTH."""
    tangled = TangledChat({})
    tangled.makeConnection(StringTransport())
    tangled.dataReceived(b"x" * 100_000)
    assert len(tangled.buffer) == 100_000
    layered, transport = connected(ChatFactory(ChatRoom(), LineChat))
    layered.dataReceived(b"x" * 100_000)
    assert transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_tangled_leaving_and_bad_bytes_match_the_layered_chat(chunking: int | str) -> None:
    """Departures, blank messages and non-UTF-8 lines are handled alike by both, one line per chunk."""
    outputs = []
    for factory in (TangledChatFactory(), ChatFactory(ChatRoom(), LineChat)):
        alice, alice_transport = connected(factory)
        bob, _ = connected(factory)
        for protocol, data in [(alice, b"alice\n"), (bob, b"bob\n"), (bob, b"  \n"), (bob, b"caf\xe9\n")]:
            for piece in chunks(data, chunking):
                protocol.dataReceived(piece)
        bob.connectionLost()
        outputs.append(alice_transport.value())
    assert outputs[0] == outputs[1] == ASK + b"Welcome, alice!\r\n* bob has joined\r\n* bob has left\r\n"


# -- over loopback --------------------------------------------------------------------------------


def test_line_and_json_front_ends_share_a_room_over_loopback() -> None:
    """A telnet-style client and a JSON client on two servers talk through one room."""
    room = ChatRoom()
    lines = lab.listen(ChatFactory(room, LineChat), name="test-line-chat")
    jsons = lab.listen(ChatFactory(room, JsonChat), name="test-json-chat")
    with connect(lines, timeout=5) as alice, connect(jsons, timeout=5) as bot:
        assert alice.read_line() == "What's your name?"
        alice.send_line("alice")
        assert alice.read_line() == "Welcome, alice!"
        bot.send_line('{"join": "bot"}', ending=b"\n")
        assert json.loads(bot.read_line()) == {"text": "Welcome, bot!"}
        assert alice.read_line() == "* bot has joined"
        bot.send_line('{"say": "hello"}', ending=b"\n")
        assert alice.read_line() == "<bot> hello"
        alice.send_line("hi bot")
        assert json.loads(bot.read_line()) == {"text": "<alice> hi bot"}
    lines.wait_until_idle()
    jsons.wait_until_idle()
    assert lab.call(room.who) == []


def test_tangled_chat_over_loopback_one_line_per_send() -> None:
    """Typed one line at a time, as a person would, the tangled chat seems to work."""
    server = lab.listen(TangledChatFactory(), name="test-tangled")
    with connect(server, timeout=5) as alice, connect(server, timeout=5) as bob:
        assert alice.read_line() == bob.read_line() == "What's your name?"
        alice.send_line("alice")
        assert alice.read_line() == "Welcome, alice!"
        bob.send_line("alice")
        assert bob.read_line() == "Name taken, please choose another."
        bob.send_line("bob")
        assert bob.read_line() == "Welcome, bob!"
        assert alice.read_line() == "* bob has joined"


def test_name_problem_is_a_plain_function() -> None:
    """name_problem judges a name against the names taken, in any letter case, and accepts a good one."""
    assert name_problem("bob", ["alice"]) is None
    assert name_problem("Alice", ["alice"]) == "Name taken, please choose another."


def test_notebook_shows_tangled_data_received_as_the_module_has_it() -> None:
    """The notebook's listing of TangledChat.dataReceived is the module's text, so it cannot drift."""
    import textwrap
    from pathlib import Path

    import nbformat

    path = Path(__file__).resolve().parent.parent / "notebooks" / "05-State-Machines.ipynb"
    markdown = "\n".join(
        c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
    )
    method = textwrap.dedent(inspect.getsource(TangledChat.dataReceived)).rstrip("\n")
    assert f"```python\n{method}\n```" in markdown
