"""Properties every protocol of the course must have, whatever the bytes and however they are cut.

TCP delivers a stream, and the sender does not choose where the receiver's
reads end.  So, for every protocol in the section modules and the solutions:

* **split invariance**: a valid byte stream fed whole, cut where Hypothesis
  chooses, or one byte at a time gives the same replies, the same
  disconnect and the same application state (users, uploads, log file);
* **robustness**: hostile bytes (random bytes, invalid UTF-8, control
  characters, lines at and past the length limit) in arbitrary chunks never
  raise out of ``dataReceived`` or ``connectionLost``, only bytes are
  written, and the protocol answers as it should or hangs up;
* **shared state** (the chats): several clients' chunks interleaved never
  break the users table, which only ever holds connected, named users and is
  empty once everyone has gone; what one client types reaches the others'
  terminals only as printable text; a client that stops reading costs at
  most ``MAX_UNSENT`` bytes before it is cut off; the counting factories'
  count is always the number of open connections.

The deliberately buggy teaching classes (``ForgetfulUpload``,
``TangledChat``) are shown to *fail* split invariance: Hypothesis must find
the counterexample the notebooks talk about.

Everything runs on ``StringTransport``, with no reactor and no socket: a
connection is ``factory.buildProtocol`` plus ``makeConnection``, and feeding
stops once the protocol has asked to close, as a TCP transport stops reading
after ``loseConnection``.  Timers run on a :class:`~twisted.internet.task.Clock`.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import twisted.internet
from hypothesis import Phase, event, find, given, settings
from hypothesis import strategies as st
from strategies import (
    CONTROLS,
    ENDINGS,
    budget,
    cut,
    junk,
    line_of,
    lines_of,
    stream_and_pieces,
    text_without_newline,
)
from support import ADDR
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from writing_servers import (
    chat,
    closing,
    helper_protocols,
    protocols,
    serving,
    simpler_protocol_creation,
    startup_shutdown,
    state_machines,
)
from writing_servers.solutions import chat as chat_solutions
from writing_servers.solutions import closing as closing_solutions
from writing_servers.solutions import helper_protocols as helper_solutions
from writing_servers.solutions import protocols as protocols_solutions
from writing_servers.solutions import serving as serving_solutions
from writing_servers.solutions import simpler_protocol_creation as simpler_solutions
from writing_servers.solutions import startup_shutdown as startup_solutions
from writing_servers.solutions import state_machines as state_solutions

#: Seconds the fake clock jumps at the end of a run: past every grace period used here.
LATER = 3600.0
GRACE = 30.0
REPLY = closing.BigReplyFactory(size=1024).reply  # the big reply, made small: 1 KiB
QUOTE = b"An apple a day keeps the doctor away\r\n"


# -- running one connection ------------------------------------------------------------------------


class Env:
    """What a run needs besides its protocol: a fake clock, and a folder for log files."""

    _numbers = itertools.count()

    def __init__(self, folder: Path) -> None:
        self.clock = Clock()
        self.folder = folder

    def new_log(self) -> Path:
        """A fresh log file name, never used by any earlier run."""
        return self.folder / f"log-{next(self._numbers)}.txt"


@dataclass(frozen=True)
class Run:
    """What one connection did: the parts a split must not change, and what was fed."""

    greeting: bytes  # written by connectionMade
    fed: bytes  # delivered up to the moment the protocol asked to close (or all of it)
    out: bytes  # written after the greeting, up to that moment
    disconnecting: bool
    state: object  # the application's state at that moment (users, uploads, log file...)
    final_out: bytes  # everything written, once producers ran dry, timers fired and the connection closed
    final_state: object  # the application's state after connectionLost
    aborted: bool  # abortConnection() was called, at once or by a timer
    clock_ran: bool  # the clock ran out before the connection closed (a peer that never reads)

    def events(self) -> tuple[object, ...]:
        """Everything but ``fed``: feeding stops at a different byte when a stream is cut differently."""
        return (
            self.greeting,
            self.out,
            self.disconnecting,
            self.state,
            self.final_out,
            self.final_state,
            self.aborted,
        )


def no_state(env: Env, factory: Any, protocol: Any) -> object:
    return None


def nothing(env: Env, thing: Any) -> None:
    return None


@dataclass(frozen=True)
class Case:
    """One protocol under test: how to serve it, what it is meant to get, and how it must answer."""

    name: str
    make: Callable[[Env], Factory]  # a fresh, started factory
    valid: st.SearchStrategy[bytes]  # streams the protocol is meant to get
    answered: Callable[[Run], bool]  # did it answer *fed* as it should, or hang up?
    junk_answered: Callable[[Run], bool] | None = None  # the same for junk, if it differs
    state: Callable[[Env, Any, Any], object] = no_state
    prepare: Callable[[Env, Any], None] = nothing  # after buildProtocol, before makeConnection
    finish: Callable[[Env, Any], None] = nothing  # release what make() opened
    patch_reactor: bool = False  # the protocol imports the global reactor: give it the Clock instead
    context: Callable[[], AbstractContextManager[object]] = nullcontext  # held while the run lasts
    max_length: int = 1024
    delimiter: bytes = b"\n"
    examples: int = 30  # the protocols each lesson is about get more (CORE)


@contextmanager
def clock_as_reactor(env: Env, patch: bool) -> Iterator[None]:
    """While running, ``from twisted.internet import reactor`` gives the run's Clock (if *patch*)."""
    if not patch:
        yield
        return
    with mock.patch.object(twisted.internet, "reactor", env.clock, create=True):
        yield


def drain(transport: StringTransport) -> None:
    """Let a registered pull producer write until it unregisters or has nothing more to give."""
    for _ in range(10_000):
        producer = transport.producer
        if producer is None or transport.streaming:
            return
        before = transport.value()
        producer.resumeProducing()
        if transport.producer is producer and transport.value() == before:
            return  # it wrote nothing and stayed registered: it will never finish by itself


def run(
    case: Case,
    env: Env,
    pieces: list[bytes],
    *,
    keep_feeding: bool = False,
    half_close: bool = False,
    lose_first: bool = False,
    reason: type[Exception] = ConnectionDone,
) -> Run:
    """Connect *case*'s protocol to a StringTransport, feed it *pieces*, close, and say what happened.

    With *keep_feeding*, pieces still arrive after the protocol asked to
    close (a harsher world than TCP's); the snapshot is still taken at that
    moment.  *half_close* ends the peer's input with ``readConnectionLost``
    first if the protocol supports it; *lose_first* closes the connection
    before the clock runs out, instead of after.
    """
    with clock_as_reactor(env, case.patch_reactor), case.context():
        factory = case.make(env)
        try:
            protocol = factory.buildProtocol(ADDR)
            assert protocol is not None
            case.prepare(env, protocol)
            transport = StringTransport()
            protocol.makeConnection(transport)
            greeting = transport.value()
            fed = b""
            stop: tuple[bytes, bool, object] | None = None
            for piece in pieces:
                if transport.disconnecting:
                    if stop is None:
                        stop = (
                            transport.value(),
                            transport.disconnecting,
                            case.state(env, factory, protocol),
                        )
                    if not keep_feeding:
                        break
                else:
                    fed += piece
                protocol.dataReceived(piece)
            if stop is None:
                stop = (transport.value(), transport.disconnecting, case.state(env, factory, protocol))
            drain(transport)
            if half_close and IHalfCloseableProtocol.providedBy(protocol):
                protocol.readConnectionLost()
            if not lose_first:
                env.clock.advance(LATER)
            aborted = transport.disconnected  # StringTransport.abortConnection sets it
            protocol.connectionLost(Failure(reason()))
            if lose_first:
                # A connection that closed in time must leave no timer behind to fire on it later.
                assert env.clock.getDelayedCalls() == [], env.clock.getDelayedCalls()
            final_out = transport.value()
            final_state = case.state(env, factory, protocol)
        finally:
            case.finish(env, factory)
    out, disconnecting, state = stop
    return Run(
        greeting,
        fed,
        out[len(greeting) :],
        disconnecting,
        state,
        final_out,
        final_state,
        aborted,
        not lose_first,
    )


# -- what a correct answer looks like --------------------------------------------------------------


def lines_handled(
    fed: bytes, delimiter: bytes, max_length: int, last: frozenset[bytes] = frozenset()
) -> tuple[list[bytes], bool]:
    """The lines a LineReceiver hands on from *fed*, and whether it then stops at an overlong line.

    A line in *last* (without its CR) is the last one handled: the protocol hangs up after it.
    """
    *complete, rest = fed.split(delimiter)
    handled: list[bytes] = []
    for line in complete:
        if len(line) > max_length:
            return handled, True
        handled.append(line)
        if line.removesuffix(b"\r") in last:
            return handled, False
    return handled, len(rest) >= max_length + len(delimiter)


def one_reply_per_line(
    *,
    delimiter: bytes = b"\n",
    max_length: int = 1024,
    says_why: bool = True,
    last: frozenset[bytes] = frozenset(),
) -> Callable[[Run], bool]:
    """Each line handled gets exactly one reply line; an overlong one closes (after a reason if *says_why*)."""

    def answered(r: Run) -> bool:
        handled, overlong = lines_handled(r.fed, delimiter, max_length, last)
        expected = len(handled) + (1 if overlong and says_why else 0)
        hangs_up = overlong or bool(handled and handled[-1].removesuffix(b"\r") in last)
        return r.out.count(b"\n") == expected and r.disconnecting == hangs_up

    return answered


def echoes(transform: Callable[[bytes], bytes] = lambda data: data) -> Callable[[Run], bool]:
    """Every byte comes back (transformed), and the connection stays open."""
    return lambda r: r.out == transform(r.fed) and not r.disconnecting


def greets(greeting: bytes, then: Callable[[Run], bool]) -> Callable[[Run], bool]:
    return lambda r: r.greeting == greeting and then(r)


def quotes(quote: bytes) -> Callable[[Run], bool]:
    """Says *quote* on connecting and hangs up; nothing sent changes that."""
    return lambda r: r.greeting == quote and r.disconnecting and r.out == b"" and r.final_out == quote


def big_reply(deadline: bool) -> Callable[[Run], bool]:
    """The first line decides: ``lose``/``abort`` get the big reply, anything else a complaint; then close.

    ``abort`` aborts at once; with a *deadline*, a polite close that is
    still waiting when the clock runs out is aborted too.
    """

    def answered(r: Run) -> bool:
        if b"\n" not in r.fed:
            return r.out == b"" and not r.disconnecting and not r.aborted
        command = r.fed.split(b"\n", 1)[0].strip()
        expected = REPLY if command in (b"lose", b"abort") else b"say lose or abort\r\n"
        aborts = command == b"abort" or (deadline and r.clock_ran)
        return r.out == expected and r.disconnecting and r.aborted == aborts

    return answered


def writes_then_closes(abort: bool) -> Callable[[Run], bool]:
    """The first bytes, whatever they are, get the whole reply, then a polite close or an abort."""

    def answered(r: Run) -> bool:
        if not r.fed:
            return r.out == b"" and not r.disconnecting and not r.aborted
        return r.out == REPLY and r.disconnecting and r.aborted == abort

    return answered


def small_big_reply() -> AbstractContextManager[object]:
    """While held, notebook 2's howto-sized servers send the 1 KiB REPLY instead of 8 MiB."""

    def small(size: int = 0) -> bytes:
        return REPLY

    return mock.patch.object(closing, "big_reply", small)


def logs_crlf_lines(r: Run) -> bool:
    """SimpleLoggingProtocol replies nothing; the log holds each CR LF line; an overlong one closes."""
    handled, overlong = lines_handled(r.fed, b"\r\n", 16384)
    logged = b"".join(line + b"\n" for line in handled)
    return r.out == b"" and r.state == logged and r.disconnecting == overlong


def first_data_gets_reply(r: Run) -> bool:
    """Any first bytes get the whole reply and a polite close, which becomes an abort if the clock runs out."""
    if not r.fed:
        return r.out == b"" and not r.disconnecting and not r.aborted
    return r.out == REPLY and r.disconnecting and r.aborted == r.clock_ran


def sends_after_connecting(expected: bytes) -> Callable[[Run], bool]:
    """Writes *expected* through a producer, whatever the client sends, and closes once it is out."""
    return lambda r: r.final_out == expected and r.disconnecting


def upload_replies(fed: bytes) -> tuple[int, bool]:
    """How many reply lines Upload owes for *fed*, and whether it hangs up (on an overlong line)."""
    replies, rest = 0, fed
    while True:
        line, found, after = rest.partition(b"\n")
        if not found:
            return (replies + 1, True) if len(rest) >= 1025 else (replies, False)
        if len(line) > 1024:
            return replies + 1, True
        rest = after
        match = re.fullmatch(rb"SEND ([0-9]{1,9})", line.removesuffix(b"\r"))
        size = int(match.group(1)) if match else 0
        if match and 0 < size <= helper_protocols.Upload.MAX_UPLOAD:
            if len(rest) < size:
                return replies, False  # still uploading
            rest = rest[size:]
        replies += 1


def bytes_upload_replies(fed: bytes) -> tuple[bytes, bool]:
    """What BytesUpload owes for *fed*, and whether it hangs up (LineReceiver's silent MAX_LENGTH close).

    Lines end in CRLF; ``SEND n`` (n from 1 to 999,999) takes the next n bytes raw.
    """
    replies, rest = b"", fed
    while True:
        line, found, after = rest.partition(b"\r\n")
        if not found:
            return replies, len(rest) >= 16384 + 2
        if len(line) > 16384:
            return replies, True
        rest = after
        command, _, size = line.partition(b" ")
        if command == b"SEND" and size.isdigit() and len(size) <= 6 and int(size) > 0:
            if len(rest) < int(size):
                return replies, False  # still uploading
            upload, rest = rest[: int(size)], rest[int(size) :]
            replies += b"OK %d bytes: %r\r\n" % (len(upload), upload)
        else:
            replies += b"Error: expected SEND <1 to 999999>\r\n"


def upload_answered(r: Run) -> bool:
    replies, hangs_up = upload_replies(r.fed)
    return r.out.count(b"\n") == replies and r.disconnecting == hangs_up


NETSTRING_LENGTH = re.compile(rb"(0|[1-9][0-9]{0,5}):")


def netstrings_in(data: bytes) -> tuple[list[bytes], bytes]:
    """The netstrings at the start of *data* (the spec's: no leading zeros), and what follows them."""
    found = []
    while (match := NETSTRING_LENGTH.match(data)) and int(match.group(1)) <= 99999:
        end = match.end() + int(match.group(1))
        if len(data) <= end or data[end : end + 1] != b",":
            break
        found.append(data[match.end() : end])
        data = data[end + 1 :]
    return found, data


def may_begin_netstring(data: bytes) -> bool:
    """Whether *data* could still become a valid netstring (≤ 99999 bytes) with more bytes."""
    if match := NETSTRING_LENGTH.match(data):
        size = int(match.group(1))
        return size <= 99999 and len(data) <= match.end() + size
    digits = re.fullmatch(rb"(0|[1-9][0-9]*)", data)
    return data == b"" or (digits is not None and int(data) <= 99999)


def netstring_answered(reply: Callable[[bytes], bytes]) -> Callable[[Run], bool]:
    """One netstring back per netstring; once the input cannot be a netstring any more, hang up."""

    def answered(r: Run) -> bool:
        questions, rest = netstrings_in(r.fed)
        answers, trailing = netstrings_in(r.out)
        if trailing or answers != [reply(question) for question in questions]:
            return False
        # Twisted's partial-length pattern ends in `$`, which also matches before a final "\n",
        # so "12\n" waits for more: a quirk of NetstringReceiver, harmless here.
        waits = may_begin_netstring(rest) or re.fullmatch(rb"(0|[1-9][0-9]*)\n", rest) is not None
        return r.disconnecting != waits

    return answered


def int32_messages(data: bytes) -> tuple[list[int | bytes], bytes]:
    """Messages at the start of *data*; a length over the limit appears as that int, and ends the list."""
    found: list[int | bytes] = []
    while len(data) >= 4:
        (size,) = struct.unpack("!I", data[:4])
        if size > 99999:
            found.append(size)
            break
        if len(data) < 4 + size:
            break
        found.append(data[4 : 4 + size])
        data = data[4 + size :]
    return found, data


def int32_answered(r: Run) -> bool:
    """One reply per message; a length over the limit gets one error, then the connection closes."""
    questions, _ = int32_messages(r.fed)
    answers, trailing = int32_messages(r.out)
    expected = [
        helper_protocols.answer_bytes(q)
        if isinstance(q, bytes)
        else b"Error: %d bytes is over the limit of 99999; closing" % q
        for q in questions
    ]
    too_long = bool(questions) and isinstance(questions[-1], int)
    return trailing == b"" and answers == expected and r.disconnecting == too_long


def logs_lines(header: bytes = b"", label: Callable[[int, bytes], bytes] = lambda n, line: line):
    """Replies nothing; the log holds each line handled (labelled), and an overlong line closes."""

    def answered(r: Run) -> bool:
        handled, overlong = lines_handled(r.fed, b"\n", 1024)
        logged = b"".join(label(n, line.removesuffix(b"\r")) + b"\n" for n, line in enumerate(handled, 1))
        return r.out == b"" and r.state == header + logged and r.disconnecting == overlong

    return answered


def closes_on_first_line(r: Run) -> bool:
    """With the log closed (no port listening), the first complete line closes the connection."""
    handled, overlong = lines_handled(r.fed, b"\n", 1024)
    return r.out == b"" and r.disconnecting == bool(handled or overlong) and r.state == b""


def answers_first_line(r: Run) -> bool:
    """The first complete line gets an answer (welcome, refusal or error), or the connection closes."""
    return b"\n" not in r.fed or r.out != b"" or r.disconnecting


def json_lines(then: Callable[[Run], bool]) -> Callable[[Run], bool]:
    """Every line written is one JSON object."""

    def answered(r: Run) -> bool:
        written = (r.greeting + r.out).split(b"\r\n")
        return (
            written[-1] == b""
            and all(isinstance(json.loads(line), dict) for line in written[:-1])
            and then(r)
        )

    return answered


# -- valid streams ---------------------------------------------------------------------------------

ANY_BYTES = st.binary(max_size=200)
QUESTIONS = st.one_of(
    st.sampled_from(["How are you?", "What is Twisted?", "", "how are you?", "Bye!", "héllo wörld"]),
    text_without_newline(),
)
QUESTION_BYTES = st.one_of(QUESTIONS.map(str.encode), st.binary(max_size=30))
NAMES = st.one_of(
    st.sampled_from(
        ["alice", "bob", "ALICE", "carol_2", "<alice>", "", "  ", "x" * 21, "ali ce", "bøb", "*"]
    ),
    st.from_regex(r"[A-Za-z0-9_-]{1,5}", fullmatch=True),
)
MESSAGES = st.one_of(
    text_without_newline(), st.sampled_from(["/who", "/msg alice hi", "/msg nobody x", "/msg"])
)


def name_or_message(*extra: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(NAMES, MESSAGES, *extra)


CHAT_STREAM = lines_of(name_or_message())
JSON_LINE = st.one_of(
    NAMES.map(lambda name: json.dumps({"join": name})),
    MESSAGES.map(lambda text: json.dumps({"say": text}, ensure_ascii=False)),
    st.sampled_from(
        ['{"who": ""}', '{"say": 5}', "[1, 2]", "not json", '{"join": "a", "say": "b"}', '{"x": ""}']
    ),
)
BIG_REPLY_STREAM = st.tuples(
    st.sampled_from([b"lose", b"abort", b" lose ", b"hello", b""]), ENDINGS, st.binary(max_size=20)
).map(b"".join)
UPLOAD_COMMAND = st.one_of(
    st.tuples(st.binary(max_size=40), ENDINGS).map(lambda p: b"SEND %d" % len(p[0]) + p[1] + p[0]),
    st.sampled_from([b"TOTAL", b"SEND 0", b"SEND 99999999", b"SEND -1", b"send 3", b"SEND 1 2"]).flatmap(
        lambda command: ENDINGS.map(lambda ending: command + ending)
    ),
    line_of(text_without_newline(10)),
)
UPLOAD_STREAM = st.lists(UPLOAD_COMMAND, max_size=6).map(b"".join)
BYTES_UPLOAD_STREAM = st.lists(
    st.one_of(
        st.binary(max_size=40).map(lambda payload: b"SEND %d\r\n" % len(payload) + payload),
        st.sampled_from([b"SEND 0", b"SEND 9999999", b"send 3", b"SEND 1 2", b"hello"]).map(
            lambda c: c + b"\r\n"
        ),
    ),
    max_size=6,
).map(b"".join)
NETSTRING_STREAM = st.lists(QUESTION_BYTES.map(lambda q: b"%d:%s," % (len(q), q)), max_size=6).map(b"".join)
INT32_STREAM = st.lists(QUESTION_BYTES.map(lambda q: struct.pack("!I", len(q)) + q), max_size=6).map(b"".join)
LOG_STREAM = st.lists(
    st.tuples(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), ENDINGS).map(b"".join), max_size=8
).map(b"".join)


# -- the factories ---------------------------------------------------------------------------------


def served(protocol: type[Protocol], **attributes: Any) -> Callable[[Env], Factory]:
    def make(env: Env) -> Factory:
        factory = Factory.forProtocol(protocol)
        for name, value in attributes.items():
            setattr(factory, name, value)
        return factory

    return make


def started(make_factory: Callable[[Path], Factory]) -> Callable[[Env], Factory]:
    def make(env: Env) -> Factory:
        factory = make_factory(env.new_log())
        factory.doStart()  # what a listening port does: startFactory opens the log
        return factory

    return make


def never_started(env: Env) -> Factory:
    return startup_shutdown.LogfileFactory(env.new_log())  # its log is closed: no port listens


def stop_logging(env: Env, factory: Any) -> None:
    if factory.numPorts:
        factory.doStop()
    if factory.log is not None:  # EagerLogfileFactory keeps its file open until __del__
        factory.log.close()
        factory.log = None


def log_contents(env: Env, factory: Any, protocol: Any) -> object:
    path = Path(factory.path)
    return path.read_bytes() if path.exists() else b""


def users(env: Env, factory: Any, protocol: Any) -> object:
    return sorted(factory.users)


def room_members(env: Env, factory: Any, protocol: Any) -> object:
    return factory.room.who()


def timers(env: Env, factory: Any, protocol: Any) -> object:
    return sorted(call.getTime() for call in env.clock.getDelayedCalls())


def use_clock(env: Env, protocol: Any) -> None:
    protocol.callLater = env.clock.callLater  # TimeoutMixin schedules through this


def room(front_end: Callable[[state_machines.ChatRoom], Protocol]) -> Callable[[Env], Factory]:
    return lambda env: state_machines.ChatFactory(state_machines.ChatRoom(), front_end)


def counting_greeting(count: int) -> bytes:
    return b"Welcome! There are currently %d open connections.\r\n" % count


#: Examples for the protocols a lesson is about; the others get Case.examples.
CORE = 100
ANSWER_LINES = lines_of(QUESTIONS)
ANSWER = one_reply_per_line()

CASES = [
    # notebook 1: protocols
    Case("Echo", served(protocols.Echo), ANY_BYTES, echoes()),
    Case("QOTD", served(protocols.QOTD), ANY_BYTES, quotes(QUOTE), examples=20),
    Case(
        "CountingEcho",
        lambda env: protocols.CountingEchoFactory(),
        ANY_BYTES,
        greets(counting_greeting(1), echoes()),
        state=lambda env, factory, protocol: factory.numProtocols,
    ),
    Case("ShoutingEcho", served(protocols_solutions.ShoutingEcho), ANY_BYTES, echoes(bytes.upper)),
    Case(
        "GoodbyeQOTD",
        served(protocols_solutions.GoodbyeQOTD),
        ANY_BYTES,
        quotes(QUOTE + b"Goodbye!\r\n"),
        examples=20,
    ),
    Case(
        "TotalCountingEcho",
        lambda env: protocols_solutions.TotalCountingEchoFactory(),
        ANY_BYTES,
        greets(b"Welcome! There are currently 1 open connections; 1 since the server started.\r\n", echoes()),
        state=lambda env, factory, protocol: (factory.numProtocols, factory.totalConnections),
    ),
    Case(
        "IdleTimeoutEcho",
        lambda env: protocols.IdleTimeoutEchoFactory(idle_timeout=GRACE),
        ANY_BYTES,
        echoes(),
        state=timers,
        prepare=use_clock,
    ),
    # notebook 2: loseConnection and abortConnection
    Case(
        "BigReply",
        lambda env: closing.BigReplyFactory(size=1024),
        BIG_REPLY_STREAM,
        big_reply(deadline=False),
    ),
    Case(
        "DeadlineBigReply",
        lambda env: closing.DeadlineBigReplyFactory(size=1024, grace_period=GRACE),
        BIG_REPLY_STREAM,
        big_reply(deadline=True),
        state=timers,
        prepare=use_clock,
    ),
    Case(
        "WriteThenLose",
        served(closing.WriteThenLose),
        ANY_BYTES,
        writes_then_closes(abort=False),
        context=small_big_reply,
        examples=20,
    ),
    Case(
        "WriteThenAbort",
        served(closing.WriteThenAbort),
        ANY_BYTES,
        writes_then_closes(abort=True),
        context=small_big_reply,
        examples=20,
    ),
    Case(
        "Countdown",
        lambda env: closing.CountdownFactory(),
        ANY_BYTES,
        sends_after_connecting(b"3\r\n2\r\n1\r\nliftoff!\r\n"),
        examples=20,
    ),
    Case(
        "Countdown-forgetful",
        lambda env: closing.CountdownFactory(unregister_when_done=False),
        ANY_BYTES,
        sends_after_connecting(b"3\r\n2\r\n1\r\nliftoff!\r\n"),
        examples=20,
    ),
    Case(
        "PoliteButFirm",
        served(closing_solutions.PoliteButFirm, reply=REPLY, grace_period=GRACE),
        ANY_BYTES,
        first_data_gets_reply,
        state=timers,
        patch_reactor=True,
    ),
    Case(
        "FileServer",
        served(closing_solutions.FileServer, data=REPLY * 70),  # 70 KiB: several FileSender chunks
        ANY_BYTES,
        sends_after_connecting(REPLY * 70),
        examples=20,
    ),
    # notebook 3: using the protocol
    Case("QOTDFactory", lambda env: serving.QOTDFactory(), ANY_BYTES, quotes(QUOTE), examples=20),
    Case(
        "LimitedQOTDFactory",
        lambda env: serving_solutions.LimitedQOTDFactory(limit=1),
        ANY_BYTES,
        quotes(QUOTE),
        examples=20,
    ),
    # notebook 4: helper protocols
    Case(
        "BytesAnswer",
        served(helper_protocols.BytesAnswer),
        lines_of(QUESTIONS).map(lambda data: data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")),
        one_reply_per_line(delimiter=b"\r\n", max_length=16384, says_why=False),
        max_length=16384,
        delimiter=b"\r\n",
    ),
    Case("Answer", served(helper_protocols.Answer), ANSWER_LINES, ANSWER, examples=CORE),
    Case(
        "Upload",
        served(helper_protocols.Upload),
        UPLOAD_STREAM,
        upload_answered,
        state=lambda env, factory, protocol: list(protocol.uploads),
        examples=CORE,
    ),
    Case(
        "BytesUpload",
        served(helper_protocols.BytesUpload),
        BYTES_UPLOAD_STREAM,
        lambda r: (r.out, r.disconnecting) == bytes_upload_replies(r.fed),
        max_length=16384,
        delimiter=b"\r\n",
    ),
    Case(
        "NetstringAnswer",
        served(helper_protocols.NetstringAnswer),
        NETSTRING_STREAM,
        netstring_answered(helper_protocols.answer_bytes),
        examples=CORE,
    ),
    Case("Int32Answer", served(helper_protocols.Int32Answer), INT32_STREAM, int32_answered, examples=CORE),
    Case(
        "MoreAnswers",
        served(helper_solutions.MoreAnswers),
        lines_of(st.one_of(QUESTIONS, st.just("Bye"))).map(
            lambda data: data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        ),
        one_reply_per_line(delimiter=b"\r\n", max_length=16384, says_why=False, last=frozenset([b"Bye"])),
        max_length=16384,
        delimiter=b"\r\n",
    ),
    Case(
        "LineReverser",
        served(helper_solutions.LineReverser),
        ANSWER_LINES,
        one_reply_per_line(max_length=16384, says_why=False),
        max_length=16384,
    ),
    Case(
        "NetstringEcho",
        served(helper_solutions.NetstringEcho),
        NETSTRING_STREAM,
        netstring_answered(lambda question: question),
    ),
    # notebook 5: state machines
    Case(
        "LineChat",
        room(state_machines.LineChat),
        CHAT_STREAM,
        answers_first_line,
        state=room_members,
        examples=CORE,
    ),
    Case(
        "JsonChat",
        room(state_machines.JsonChat),
        lines_of(JSON_LINE),
        json_lines(answers_first_line),
        junk_answered=answers_first_line,  # see test_json_chat_answers_junk_in_json
        state=room_members,
        examples=CORE,
    ),
    Case(
        "WhoChat-room",
        room(state_solutions.WhoChat),
        CHAT_STREAM,
        answers_first_line,
        state=room_members,
    ),
    Case(
        "PasswordChat",
        room(state_solutions.PasswordChat),
        lines_of(name_or_message(st.just("twisted"))),
        answers_first_line,
        state=room_members,
    ),
    # notebook 6: simpler protocol creation
    Case(
        "ConfigurableQOTD",
        lambda env: simpler_protocol_creation.ConfigurableQOTDFactory("Ünïcode ✓"),
        ANY_BYTES,
        quotes("Ünïcode ✓\r\n".encode()),
        examples=20,
    ),
    Case(
        "SimpleCountingEcho",
        lambda env: simpler_protocol_creation.SimpleCountingEchoFactory(),
        ANY_BYTES,
        greets(counting_greeting(1), echoes()),
        state=lambda env, factory, protocol: factory.numProtocols,
    ),
    Case(
        "LimitedCountingEchoFactory",
        lambda env: simpler_protocol_creation.LimitedCountingEchoFactory(limit=1),
        ANY_BYTES,
        greets(counting_greeting(1), echoes()),
        state=lambda env, factory, protocol: factory.numProtocols,
        examples=20,
    ),
    Case(
        "RotatingQOTD",
        lambda env: simpler_solutions.RotatingQOTDFactory(["first", "second"]),
        ANY_BYTES,
        quotes(b"first\r\n"),
        state=lambda env, factory, protocol: factory.served,
        examples=20,
    ),
    Case(
        "Greeter",
        lambda env: simpler_solutions.greeting_factory("Bonjour"),
        ANSWER_LINES,
        ANSWER,
    ),
    Case(
        "BlocklistQOTDFactory",
        lambda env: simpler_solutions.BlocklistQOTDFactory(["10.0.0.1"]),
        ANY_BYTES,
        quotes(QUOTE),
        examples=20,
    ),
    # notebook 7: factory startup and shutdown
    Case(
        "SimpleLoggingProtocol",
        started(startup_shutdown.SimpleLogfileFactory),
        LOG_STREAM,
        logs_crlf_lines,
        state=log_contents,
        finish=stop_logging,
        examples=20,
    ),
    Case(
        "LoggingProtocol",
        started(startup_shutdown.LogfileFactory),
        LOG_STREAM,
        logs_lines(),
        state=log_contents,
        finish=stop_logging,
    ),
    Case(
        "LoggingProtocol-log-closed",
        never_started,
        LOG_STREAM,
        closes_on_first_line,
        state=log_contents,
        finish=stop_logging,
        examples=20,
    ),
    Case(
        "EagerLogfileFactory",
        lambda env: startup_shutdown.EagerLogfileFactory(env.new_log()),
        LOG_STREAM,
        logs_lines(),
        state=log_contents,
        finish=stop_logging,
        examples=20,
    ),
    Case(
        "AnnouncingLogfileFactory",
        started(startup_solutions.AnnouncingLogfileFactory),
        LOG_STREAM,
        logs_lines(header=b"# started\n"),
        state=log_contents,
        finish=stop_logging,
        examples=20,
    ),
    Case(
        "LineNumberingProtocol",
        started(
            lambda path: type_factory(
                startup_shutdown.LogfileFactory, path, startup_solutions.LineNumberingProtocol
            )
        ),
        LOG_STREAM,
        logs_lines(label=lambda n, line: b"%d: %s" % (n, line)),
        state=log_contents,
        finish=stop_logging,
        examples=20,
    ),
    Case(
        "ClientNumberingFactory",
        started(startup_solutions.ClientNumberingFactory),
        LOG_STREAM,
        logs_lines(label=lambda n, line: b"client 1: " + line),
        state=log_contents,
        finish=stop_logging,
        examples=20,
    ),
    # notebook 8: the chat
    Case(
        "HowtoChat",
        lambda env: chat.HowtoChatFactory(),
        CHAT_STREAM,
        answers_first_line,
        state=users,
        examples=CORE,
    ),
    Case(
        "ForgetfulChat",
        lambda env: howto_chat_factory(chat.ForgetfulChat),
        CHAT_STREAM,
        answers_first_line,
        state=users,
    ),
    Case("Chat", lambda env: chat.ChatFactory(), CHAT_STREAM, answers_first_line, state=users, examples=CORE),
    Case(
        "WhoChat",
        lambda env: chat_factory(chat_solutions.WhoChat),
        CHAT_STREAM,
        answers_first_line,
        state=users,
    ),
    Case(
        "AnnouncingChat",
        lambda env: chat_factory(chat_solutions.AnnouncingChat),
        CHAT_STREAM,
        answers_first_line,
        state=users,
    ),
    Case(
        "PrivateChat",
        lambda env: chat_factory(chat_solutions.PrivateChat),
        CHAT_STREAM,
        answers_first_line,
        state=users,
    ),
]


def type_factory(factory_class: type, path: Path, protocol: type[Protocol]) -> Any:
    factory = factory_class(path)
    factory.protocol = protocol
    return factory


def howto_chat_factory(protocol: type[chat.HowtoChat]) -> chat.HowtoChatFactory:
    factory = chat.HowtoChatFactory()
    factory.protocol = protocol
    return factory


def chat_factory(protocol: type[chat.HowtoChat]) -> chat.HowtoChatFactory:
    factory = chat.HowtoChatFactory()
    factory.protocol = protocol
    return factory


#: The deliberately buggy teaching classes: split invariance must FAIL for them.
BUGGY = [
    Case(
        "ForgetfulUpload",
        served(helper_protocols.ForgetfulUpload),
        UPLOAD_STREAM,
        upload_answered,
        state=lambda env, factory, protocol: list(protocol.uploads),
    ),
    Case(
        "TangledChat",
        lambda env: state_machines.TangledChatFactory(),
        CHAT_STREAM,
        answers_first_line,
        state=users,
    ),
]

#: Hand-made counterexamples, the ones the notebooks show: (stream, pieces).
BUGGY_EXAMPLES = {
    # The upload ends mid-chunk; ForgetfulUpload throws away the TOTAL that follows it.
    "ForgetfulUpload": (b"SEND 1\nxTOTAL\n", [b"SEND 1\nx", b"TOTAL\n"]),
    # A refused (blank) name returns from dataReceived: the next name in the same chunk is lost.
    "TangledChat": (b"\nbob\n", [b"\n", b"bob\n"]),
}


def ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


# -- single-connection properties ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_split_invariance(case: Case, tmp_path: Path) -> None:
    """A valid stream gives the same replies, disconnect and state whole, cut anywhere, or byte by byte.

    Half the examples end with the peer half-closing, as ``nc -N`` does, so
    the answer to a last line without its ending is compared too.
    """

    @given(example=stream_and_pieces(case.valid), half_close=st.booleans())
    @budget(case.examples)
    def split_invariance(example: tuple[bytes, list[bytes]], half_close: bool) -> None:
        stream, pieces = example
        whole = run(case, Env(tmp_path), [stream] if stream else [], half_close=half_close)
        assert case.answered(whole), whole
        assert run(case, Env(tmp_path), pieces, half_close=half_close).events() == whole.events()
        bytewise = [stream[i : i + 1] for i in range(len(stream))]
        assert run(case, Env(tmp_path), bytewise, half_close=half_close).events() == whole.events()

    split_invariance()


@pytest.mark.parametrize("case", CASES + BUGGY, ids=ids(CASES + BUGGY))
def test_hostile_bytes_never_raise(case: Case, tmp_path: Path) -> None:
    """Junk in any chunks never raises, writes only bytes, and is answered or hung up on; cuts change nothing."""

    @given(
        example=stream_and_pieces(junk(case.valid, case.max_length, case.delimiter)),
        half_close=st.booleans(),
        lose_first=st.booleans(),
        reason=st.sampled_from([ConnectionDone, ConnectionLost]),
    )
    @budget(case.examples)
    def hostile_bytes(
        example: tuple[bytes, list[bytes]], half_close: bool, lose_first: bool, reason: type[Exception]
    ) -> None:
        stream, pieces = example
        # StringTransport.write raises TypeError on anything but bytes: "only bytes" is checked as it runs.
        chunked = run(
            case,
            Env(tmp_path),
            pieces,
            keep_feeding=True,
            half_close=half_close,
            lose_first=lose_first,
            reason=reason,
        )
        if case.name in BUGGY_EXAMPLES:
            return  # not expected to answer well; only not to crash
        assert (case.junk_answered or case.answered)(chunked), chunked
        whole = run(case, Env(tmp_path), [stream] if stream else [])
        assert (whole.greeting, whole.out, whole.disconnecting, whole.state) == (
            chunked.greeting,
            chunked.out,
            chunked.disconnecting,
            chunked.state,
        )

    hostile_bytes()


#: For find(): generate only.  Any counterexample will do, and shrinking to the smallest takes seconds.
SEARCH = settings(budget(500), phases=[Phase.generate])

JSON_CHAT = next(case for case in CASES if case.name == "JsonChat")


@given(example=stream_and_pieces(junk(JSON_CHAT.valid)))
@settings(budget(100))
def test_json_chat_answers_junk_in_json(tmp_path_factory: pytest.TempPathFactory, example: Any) -> None:
    """JsonChat keeps its promise of one JSON object per line even when the input is junk."""
    _, pieces = example
    chunked = run(JSON_CHAT, Env(tmp_path_factory.getbasetemp()), pieces)
    assert json_lines(answers_first_line)(chunked), chunked


@pytest.mark.parametrize("case", BUGGY, ids=ids(BUGGY))
def test_deliberately_buggy_protocols_break_split_invariance(case: Case, tmp_path: Path) -> None:
    """Hypothesis finds a stream that the buggy teaching class handles differently once cut: the bug is real."""

    def differs(example: tuple[bytes, list[bytes]]) -> bool:
        stream, pieces = example
        return run(case, Env(tmp_path), [stream]).events() != run(case, Env(tmp_path), pieces).events()

    stream, pieces = BUGGY_EXAMPLES[case.name]
    assert b"".join(pieces) == stream
    assert differs((stream, pieces)), "the notebook's own counterexample no longer shows the bug"
    found = find(stream_and_pieces(case.valid), differs, settings=SEARCH)
    assert differs(found)


# -- the chats: several connections, one users table -----------------------------------------------


NAME_LINE = line_of(NAMES)


@dataclass(frozen=True)
class ChatKind:
    """A chat server, and how to read its users table."""

    name: str
    make: Callable[[], Factory]
    table: Callable[[Any], dict[str, Any]]  # the factory's name -> protocol mapping
    line: st.SearchStrategy[bytes]  # one valid line
    named: Callable[[Any], bool]  # has this protocol joined under its .name?
    join: st.SearchStrategy[bytes] = NAME_LINE  # what a client sends first, to join (or try to)
    spells_out_controls: bool = True  # do other users' control characters reach a terminal only spelled out?
    case_blind_names: bool = True  # is "ALICE" refused while "alice" is here?
    examples: int = 30


def joined_chat(protocol: Any) -> bool:
    return protocol.state == "CHAT"


CHAT_LINE = line_of(name_or_message())
CHAT_KINDS = [
    ChatKind("Chat", chat.ChatFactory, lambda f: f.users, CHAT_LINE, joined_chat, examples=CORE),
    # The exercises' solutions build on the howto's HowtoChat, as the starters do: no name rules, and
    # chat lines pass as they are (only PrivateChat's /msg text is spelled out).
    *(
        ChatKind(
            solved.__name__,
            partial(chat_factory, solved),
            lambda f: f.users,
            CHAT_LINE,
            joined_chat,
            spells_out_controls=False,
            case_blind_names=False,
        )
        for solved in (chat_solutions.WhoChat, chat_solutions.AnnouncingChat, chat_solutions.PrivateChat)
    ),
    ChatKind(
        "LineChat",
        lambda: state_machines.ChatFactory(state_machines.ChatRoom(), state_machines.LineChat),
        lambda f: f.room.members,
        CHAT_LINE,
        joined_chat,
        examples=CORE,
    ),
    ChatKind(
        "WhoChat-room",
        lambda: state_machines.ChatFactory(state_machines.ChatRoom(), state_solutions.WhoChat),
        lambda f: f.room.members,
        CHAT_LINE,
        joined_chat,
    ),
    ChatKind(
        "PasswordChat",
        lambda: state_machines.ChatFactory(state_machines.ChatRoom(), state_solutions.PasswordChat),
        lambda f: f.room.members,
        line_of(name_or_message(st.just("twisted"))),
        joined_chat,
        join=st.tuples(line_of(st.sampled_from(["twisted", "twisted", "guess"])), NAME_LINE).map(b"".join),
    ),
    ChatKind(
        "JsonChat",
        lambda: state_machines.ChatFactory(state_machines.ChatRoom(), state_machines.JsonChat),
        lambda f: f.room.members,
        st.tuples(JSON_LINE, ENDINGS).map(lambda pair: pair[0].encode() + pair[1]),
        joined_chat,
        join=line_of(NAMES.map(lambda name: json.dumps({"join": name}))),
        spells_out_controls=False,  # for programs: JSON escapes C0 controls, other text goes as it is
    ),
    ChatKind(
        "TangledChat",
        state_machines.TangledChatFactory,
        lambda f: f.users,
        CHAT_LINE,
        lambda protocol: protocol.name != "",
        spells_out_controls=False,  # the anti-example relays raw text (see the test below)
        case_blind_names=False,
    ),
]
SOUND_CHATS = [kind for kind in CHAT_KINDS if kind.name != "TangledChat"]
CLIENTS = 3
CLOSE = None  # in a script: this client hangs up (and a new connection takes its place)


class Room:
    """Several clients of one chat server, each on its own StringTransport."""

    def __init__(self, kind: ChatKind) -> None:
        self.kind = kind
        self.factory = kind.make()
        self.transports: list[StringTransport] = []  # every connection ever, in order
        self.open: dict[int, tuple[Any, StringTransport]] = {}  # client number -> its current connection
        for client in range(CLIENTS):
            self.connect(client)

    def connect(self, client: int) -> None:
        protocol = self.factory.buildProtocol(ADDR)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.transports.append(transport)
        self.open[client] = (protocol, transport)

    def send(self, client: int, data: bytes) -> None:
        protocol, transport = self.open[client]
        if not transport.disconnecting:
            protocol.dataReceived(data)

    def hang_up(self, client: int, reconnect: bool = True) -> None:
        protocol, _ = self.open.pop(client)
        protocol.connectionLost(Failure(ConnectionDone()))
        if reconnect:
            self.connect(client)

    def table(self) -> dict[str, Any]:
        return self.kind.table(self.factory)

    def check_table(self) -> None:
        """The users table holds exactly the connected protocols that have joined, each under its name."""
        table = self.table()
        connected = [protocol for protocol, _ in self.open.values()]
        for name, protocol in table.items():
            assert any(protocol is other for other in connected), f"{name!r} is in the table but gone"
            assert protocol.name == name and self.kind.named(protocol), (name, protocol.name)
        for protocol in connected:
            if self.kind.named(protocol):
                assert table.get(protocol.name) is protocol, (
                    f"{protocol.name!r} joined but is not in the table"
                )
        if self.kind.case_blind_names:
            folded = [name.casefold() for name in table]
            assert len(folded) == len(set(folded)), f"names that differ only in case: {sorted(table)}"

    def outcome(self) -> tuple[object, ...]:
        return (
            tuple(transport.value() for transport in self.transports),
            tuple(transport.disconnecting for transport in self.transports),
            sorted(self.table()),
        )


Script = list[tuple[int, bytes | None]]


def chat_script(
    kind: ChatKind, line: st.SearchStrategy[bytes], max_steps: int = 14
) -> st.SearchStrategy[Script]:
    """Every client first tries to join, then steps: one to three lines in one send, or hanging up."""
    joins = st.tuples(*[kind.join] * CLIENTS).map(lambda tries: list(enumerate(tries)))
    sends = st.lists(line, min_size=1, max_size=3).map(b"".join)
    step = st.tuples(st.integers(0, CLIENTS - 1), st.one_of(*[sends] * 9, st.just(CLOSE)))
    return st.tuples(joins, st.lists(step, max_size=max_steps)).map(lambda parts: parts[0] + parts[1])


@st.composite
def delivered(draw: st.DrawFn, script: Script) -> Script:
    """*script* with each line cut, and a first part of it sent early, while other clients talk.

    The early part holds no line ending and goes right after the same
    client's previous step, so only where reads end changes, never the
    order of whole lines.
    """
    slots: list[Script] = [[] for _ in range(len(script) + 1)]  # slot k: after step k-1
    last: dict[int, int] = {}
    for index, (client, data) in enumerate(script):
        if data is CLOSE:
            slots[index + 1].append((client, CLOSE))
        else:
            early = draw(st.integers(0, data.index(b"\n")), label="early")
            if early:
                slots[last.get(client, 0)].append((client, data[:early]))
            rest = data[early:]
            for piece in draw(cut(rest, max_cuts=4), label="pieces"):
                slots[index + 1].append((client, piece))
        last[client] = index + 1
    return [step for slot in slots for step in slot]


def play_script(kind: ChatKind, script: Script, check: bool = False) -> Room:
    room = Room(kind)
    for client, data in script:
        if data is CLOSE:
            room.hang_up(client)
        else:
            room.send(client, data)
        if check:
            room.check_table()
    return room


@pytest.mark.parametrize("kind", SOUND_CHATS, ids=[kind.name for kind in SOUND_CHATS])
def test_chat_split_invariance_with_several_clients(kind: ChatKind) -> None:
    """Several clients' lines give the same output for everyone however each line is cut and interleaved."""

    @given(data=st.data())
    @budget(kind.examples)
    def split_invariance(data: st.DataObject) -> None:
        script = data.draw(chat_script(kind, kind.line), label="script")
        whole = play_script(kind, script)
        cut_up = play_script(kind, data.draw(delivered(script), label="delivered"))
        assert cut_up.outcome() == whole.outcome()

    split_invariance()


@pytest.mark.parametrize("kind", CHAT_KINDS, ids=[kind.name for kind in CHAT_KINDS])
def test_chat_users_table_under_interleaved_junk(kind: ChatKind) -> None:
    """Interleaved junk from several clients never raises; the table holds only connected, named users; then none."""

    @given(script=chat_script(kind, st.one_of(kind.line, junk(kind.line, max_parts=2)), max_steps=20))
    @budget(kind.examples)
    def users_table(script: Script) -> None:
        room = play_script(kind, script, check=True)
        for client in list(room.open):
            room.hang_up(client, reconnect=False)
            room.check_table()
        assert room.table() == {}

    users_table()


def printable_lines(data: bytes) -> bool:
    """Every CRLF-ended line of *data*, decoded, is printable: nothing in it can steer a terminal."""
    *lines, rest = data.split(b"\r\n")
    return rest == b"" and all(line.decode("utf-8").isprintable() for line in lines)


def everyone_sees_printable_text(kind: ChatKind, script: Script) -> bool:
    room = play_script(kind, script)
    return all(printable_lines(transport.value()) for transport in room.transports)


CONTROL_LINE = st.tuples(
    st.lists(st.one_of(CONTROLS, text_without_newline(5)), min_size=1, max_size=4), ENDINGS
).map(lambda pair: "".join(pair[0]).encode() + pair[1])


@pytest.mark.parametrize(
    "kind",
    [kind for kind in CHAT_KINDS if kind.spells_out_controls],
    ids=[kind.name for kind in CHAT_KINDS if kind.spells_out_controls],
)
def test_chat_output_is_printable(kind: ChatKind) -> None:
    """No control character or escape sequence a client sends reaches any terminal unspelled."""

    @given(script=chat_script(kind, st.one_of(kind.line, CONTROL_LINE)))
    @budget(kind.examples)
    def printable(script: Script) -> None:
        assert everyone_sees_printable_text(kind, script)

    printable()


def test_tangled_chat_relays_control_characters() -> None:
    """The anti-example passes escape sequences on as they are: Hypothesis finds one that reaches bob."""
    kind = next(kind for kind in CHAT_KINDS if kind.name == "TangledChat")
    script = [(0, b"alice\n"), (1, b"bob\n"), (0, b"\x1b[2J\n")]
    assert not everyone_sees_printable_text(kind, script)
    found = find(
        chat_script(kind, st.one_of(kind.line, CONTROL_LINE)),
        lambda s: not everyone_sees_printable_text(kind, s),
        settings=SEARCH,
    )
    assert not everyone_sees_printable_text(kind, found)


# -- the chats: clients that stop reading ----------------------------------------------------------

#: Bytes a stalled reader's transport holds before it asks its producer to pause, like Twisted's
#: ``bufferSize``, and the MAX_UNSENT given to the protocols: both small, so a short script reaches them.
SEND_BUFFER = 64
UNSENT_LIMIT = 200
STALL, READ = b"stall", b"read"  # in a script: this client stops reading / reads everything it was sent


class ReaderTransport(StringTransport):
    """A StringTransport whose peer may stop reading: it then pauses its producer as TCP's does.

    While its peer reads, every write is taken at once.  Once the peer
    stalls, writes pile up; past SEND_BUFFER bytes the registered streaming
    producer (the protocol) is asked to pause, again on every write, as
    Twisted's ``FileDescriptor.write`` does.  When the peer reads again,
    the producer is resumed.  ``since_pause`` counts what the protocol
    wrote after it was first asked to pause.
    """

    def __init__(self) -> None:
        super().__init__(lenient=True)  # a real transport lets a closing connection pause and resume
        self.reading = True
        self.unread = 0
        self.since_pause: int | None = None
        self.paused_ever = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.reading:
            return
        self.unread += len(data)
        if self.since_pause is not None:
            self.since_pause += len(data)
        if self.unread > SEND_BUFFER and self.producer is not None and self.streaming:
            if self.since_pause is None:
                self.since_pause = 0
            self.paused_ever = True
            self.producer.pauseProducing()

    def read_all(self) -> None:
        self.reading, self.unread = True, 0
        if self.since_pause is not None:
            self.since_pause = None
            if self.producer is not None and not self.disconnected:
                self.producer.resumeProducing()


class SlowRoom(Room):
    """A Room whose clients may stop reading; input for a client that was paused waits until it resumes."""

    def __init__(self, kind: ChatKind) -> None:
        self.inbox: dict[int, bytes] = {}
        super().__init__(kind)

    def connect(self, client: int) -> None:
        protocol = self.factory.buildProtocol(ADDR)
        protocol.MAX_UNSENT = UNSENT_LIMIT
        transport = ReaderTransport()
        protocol.makeConnection(transport)
        self.transports.append(transport)
        self.open[client] = (protocol, transport)
        self.inbox[client] = b""

    def send(self, client: int, data: bytes) -> None:
        self.inbox[client] += data
        self.deliver(client)

    def deliver(self, client: int) -> None:
        protocol, transport = self.open[client]
        if self.inbox[client] and transport.producerState == "producing" and not transport.disconnecting:
            data, self.inbox[client] = self.inbox[client], b""
            protocol.dataReceived(data)

    def step(self, client: int, data: bytes | None) -> None:
        _, transport = self.open[client]
        if data is CLOSE:
            self.hang_up(client)
        elif data == STALL:
            transport.reading = False
        elif data == READ:
            transport.read_all()
            self.deliver(client)
        else:
            self.send(client, data)
        for other, (protocol, transport) in list(self.open.items()):
            if transport.disconnected:  # aborted: the reactor would now call connectionLost
                self.open.pop(other)
                protocol.connectionLost(Failure(ConnectionLost()))
                self.connect(other)


def slow_script(kind: ChatKind) -> st.SearchStrategy[Script]:
    """Steps of several joined clients: lines (some long), stalls, reads and hang-ups."""
    long_line = st.integers(20, 150).map(lambda size: b"m" * size + b"\n")
    return st.lists(
        st.tuples(
            st.integers(0, CLIENTS - 1),
            st.one_of(
                kind.line, kind.line, long_line, long_line, st.sampled_from([STALL, STALL, READ, CLOSE])
            ),
        ),
        min_size=6,
        max_size=30,
    )


@pytest.mark.parametrize(
    "kind", [kind for kind in CHAT_KINDS if kind.name in ("Chat", "LineChat")], ids=lambda kind: kind.name
)
def test_slow_readers_hold_bounded_memory(kind: ChatKind) -> None:
    """A client that stops reading gets at most MAX_UNSENT more bytes queued, then is cut off; nothing raises."""

    @given(script=slow_script(kind))
    @budget(kind.examples // 2)
    def bounded(script: Script) -> None:
        room = SlowRoom(kind)
        for client in range(CLIENTS):
            room.step(client, b"user%d\n" % client)  # everyone joins, so that everyone is sent messages
        room.step(0, STALL)  # and one of them stops reading
        for client, data in script:
            room.step(client, data)
            room.check_table()
            for transport in room.transports:
                assert isinstance(transport, ReaderTransport)
                assert transport.since_pause is None or transport.since_pause <= UNSENT_LIMIT
                assert not transport.disconnected or not transport.reading, "aborted a client that reads"
        event("a slow reader was paused" if any(t.paused_ever for t in room.transports) else "no pause")
        event("a slow reader was cut off" if any(t.disconnected for t in room.transports) else "no abort")
        for client in list(room.open):
            room.hang_up(client, reconnect=False)
        assert room.table() == {}

    bounded()


# -- shared counters: connections come and go ------------------------------------------------------

COUNTING = {
    "CountingEchoFactory": protocols.CountingEchoFactory,
    "TotalCountingEchoFactory": protocols_solutions.TotalCountingEchoFactory,
    "SimpleCountingEchoFactory": simpler_protocol_creation.SimpleCountingEchoFactory,
    "LimitedCountingEchoFactory": lambda: simpler_protocol_creation.LimitedCountingEchoFactory(limit=2),
}


@pytest.mark.parametrize("name", sorted(COUNTING))
@given(steps=st.lists(st.one_of(st.just("connect"), st.integers(0, 4)), max_size=20))
@budget(50)
def test_counting_factories_count_open_connections(name: str, steps: list[str | int]) -> None:
    """However connections come and go, the count is the open ones and each greeting says it."""
    factory = COUNTING[name]()
    limit = getattr(factory, "limit", None)
    open_protocols: list[Any] = []
    total = 0
    for step in steps:
        if step == "connect":
            protocol = factory.buildProtocol(ADDR)
            if limit is not None and len(open_protocols) >= limit:
                assert protocol is None
                continue
            transport = StringTransport()
            protocol.makeConnection(transport)
            open_protocols.append(protocol)
            total += 1
            assert transport.value().startswith(
                b"Welcome! There are currently %d open connections" % len(open_protocols)
            )
            if hasattr(factory, "totalConnections"):
                assert b"; %d since the server started" % total in transport.value()
        elif open_protocols:
            open_protocols.pop(step % len(open_protocols)).connectionLost(Failure(ConnectionDone()))
        assert factory.numProtocols == len(open_protocols)


# -- nothing left out ------------------------------------------------------------------------------

MODULES = [
    protocols,
    closing,
    serving,
    helper_protocols,
    state_machines,
    simpler_protocol_creation,
    startup_shutdown,
    chat,
    protocols_solutions,
    closing_solutions,
    serving_solutions,
    helper_solutions,
    state_solutions,
    simpler_solutions,
    startup_solutions,
    chat_solutions,
]
#: Protocol classes not run on their own, and why.
NOT_RUN = {
    chat.ChatConnection: "abstract: the first half of HowtoChat (its text_received is TextLineReceiver's, which raises)",
    helper_protocols.TextLineReceiver: "abstract: text_received raises NotImplementedError until a subclass says",
    helper_protocols.HalfCloseLineReceiver: "abstract: lineReceived is LineReceiver's, which raises; "
    "its half-close runs in every line server built on it",
}


def test_every_protocol_class_is_covered(tmp_path: Path) -> None:
    """Every Protocol class in the section and solution modules is built by some case above."""
    defined = {
        value
        for module in MODULES
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, Protocol) and value.__module__ == module.__name__
    }
    built = set()
    for case in CASES + BUGGY:
        env = Env(tmp_path)
        with clock_as_reactor(env, case.patch_reactor):
            factory = case.make(env)
            try:
                built.add(type(factory.buildProtocol(ADDR)))
            finally:
                case.finish(env, factory)
    built |= {type(kind.make().buildProtocol(ADDR)) for kind in CHAT_KINDS}
    missing = defined - built - set(NOT_RUN)
    assert not missing, f"no property test builds {sorted(cls.__qualname__ for cls in missing)}"
