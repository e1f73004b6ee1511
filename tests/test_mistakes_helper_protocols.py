"""Notebook 4's checks reject the mistakes beginners make, and say what is wrong first.

Each wrong attempt is written as a student would write it in the notebook;
the checks serve it over real sockets, as in class.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from support import first_wrong
from twisted.protocols.basic import LineReceiver, NetstringReceiver

from writing_servers import lab
from writing_servers.exercises.helper_protocols import (
    check_line_reverser,
    check_more_answers,
    check_netstring_echo,
)
from writing_servers.solutions import helper_protocols as solutions


@pytest.fixture(autouse=True)
def _nothing_left_listening() -> Iterator[None]:
    lab.start()
    yield
    assert lab.servers() == [], "the check left a server running"


# -- Exercise 1: MoreAnswers --------------------------------------------------------


class BytesAnswer(LineReceiver):
    """The notebook's own BytesAnswer, as its cell defines it: attempts that change it change only this one."""

    answers: ClassVar[dict[bytes | None, bytes]] = {
        b"How are you?": b"Fine",
        None: b"I don't know what you mean",
    }

    def lineReceived(self, line: bytes) -> None:
        if line in self.answers:
            self.sendLine(self.answers[line])
        else:
            self.sendLine(self.answers[None])


class TextKeys(BytesAnswer):
    answers: ClassVar[dict[bytes | str | None, bytes | str]] = {  # type: ignore[assignment]
        **BytesAnswer.answers,
        "What is Twisted?": "An event-driven networking engine",
    }

    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.sendLine(b"Goodbye!")
            self.transport.loseConnection()
        else:
            super().lineReceived(line)


class TextAnswer(TextKeys):
    answers: ClassVar[dict[bytes | None, bytes | str]] = {  # type: ignore[assignment]
        **BytesAnswer.answers,
        b"What is Twisted?": "An event-driven networking engine",
    }


class LosesOldAnswers(TextKeys):
    answers: ClassVar[dict[bytes | None, bytes]] = {b"What is Twisted?": b"An event-driven networking engine"}


class ChangesBytesAnswer(BytesAnswer):
    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.sendLine(b"Goodbye!")
            self.transport.loseConnection()
        else:
            super().lineReceived(line)


class NeverHangsUp(ChangesBytesAnswer):
    answers: ClassVar[dict[bytes | None, bytes]] = {
        **BytesAnswer.answers,
        b"What is Twisted?": b"An event-driven networking engine",
        b"Bye": b"Goodbye!",
    }

    def lineReceived(self, line: bytes) -> None:
        BytesAnswer.lineReceived(self, line)


class HangsUpFirst(NeverHangsUp):
    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.transport.loseConnection()
            self.sendLine(b"Goodbye!")
        else:
            super().lineReceived(line)


class Aborts(NeverHangsUp):
    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.sendLine(b"Goodbye!")
            self.transport.abortConnection()
        else:
            super().lineReceived(line)


class ComparesText(NeverHangsUp):
    answers: ClassVar[dict[bytes | None, bytes]] = {
        **BytesAnswer.answers,
        b"What is Twisted?": b"An event-driven networking engine",
    }

    def lineReceived(self, line: bytes) -> None:
        if line == "Bye":  # type: ignore[comparison-overlap]
            self.sendLine(b"Goodbye!")
            self.transport.loseConnection()
        else:
            super().lineReceived(line)


class HangsUpAlways(ComparesText):
    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.sendLine(b"Goodbye!")
        else:
            BytesAnswer.lineReceived(self, line)
        self.transport.loseConnection()


class NoLineEnding(ComparesText):
    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.transport.write(b"Goodbye!")
            self.transport.loseConnection()
        else:
            BytesAnswer.lineReceived(self, line)


def test_more_answers_solution_passes() -> None:
    """The reference solution passes."""
    report = check_more_answers(solutions.MoreAnswers)
    assert report.passed, repr(report)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            TextKeys,
            "answers has the key 'What is Twisted?' as text (str): a line arrives as bytes, so write "
            "b'What is Twisted?'",
        ),
        (
            TextAnswer,
            "the answer to b'What is Twisted?' is text (str): sendLine sends bytes, so write "
            "b'An event-driven networking engine'",
        ),
        (
            LosesOldAnswers,
            "answers lost BytesAnswer's entries b'How are you?', None: start from {**BytesAnswer.answers, ...}",
        ),
        (
            NeverHangsUp,
            "after 'Goodbye!' the connection stayed open: call self.transport.loseConnection()",
        ),
        (
            HangsUpFirst,
            "it called write(b'Goodbye!\\r\\n') after loseConnection(): write first, then hang up (a write "
            "after loseConnection is not always sent: over TLS it is dropped)",
        ),
        (
            Aborts,
            "it hung up with abortConnection(), which throws away what is not sent yet: "
            "use self.transport.loseConnection()",
        ),
        (
            ComparesText,
            "'Bye' got \"I don't know what you mean\", not 'Goodbye!': the line arrives as bytes, so compare "
            "it with b'Bye'",
        ),
        (HangsUpAlways, "the server hung up after answering 'What is Twisted?': hang up only after 'Bye'"),
        (NoLineEnding, "'Bye' got b'Goodbye!' with no line ending: sendLine adds b'\\r\\n' for you"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_more_answers_mistake_fails(attempt: type, expected: str) -> None:
    """Each mistake fails, and the first ✗ line names it."""
    report = check_more_answers(attempt)
    assert not report.passed
    assert first_wrong(report) == expected


def test_more_answers_that_change_bytes_answer_fail() -> None:
    """Adding the answer to BytesAnswer.answers itself changes every BytesAnswer; the check says so."""
    saved = dict(BytesAnswer.answers)
    ChangesBytesAnswer.answers[b"What is Twisted?"] = b"An event-driven networking engine"
    try:
        report = check_more_answers(ChangesBytesAnswer)
    finally:
        BytesAnswer.answers.clear()
        BytesAnswer.answers.update(saved)
    assert first_wrong(report) == (
        "BytesAnswer.answers itself now has b'What is Twisted?': give MoreAnswers a dict of its own, "
        "{**BytesAnswer.answers, ...}, and BytesAnswer stays as it was"
    )


# -- Exercise 2: LineReverser -------------------------------------------------------


class CRLFOnly(LineReceiver):
    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line.decode()[::-1].encode())


class KeepsTheCR(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(line.decode()[::-1].encode() + b"\r\n")


class RepliesWithLF(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line.removesuffix(b"\r").decode()[::-1].encode())


class ReversesBytes(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(line.removesuffix(b"\r")[::-1] + b"\r\n")


class TextDelimiter(LineReceiver):
    delimiter = "\n"  # type: ignore[assignment]

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(line.removesuffix(b"\r").decode()[::-1].encode() + b"\r\n")


class NoEnding(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(line.removesuffix(b"\r").decode()[::-1].encode())


class HardCoded(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(b"olleh\r\n")


def test_line_reverser_solution_passes() -> None:
    """The reference solution passes."""
    report = check_line_reverser(solutions.LineReverser)
    assert report.passed, repr(report)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            CRLFOnly,
            "a line ending in a bare LF (as netcat sends) was never answered: LineReceiver is still waiting "
            "for b'\\r\\n' — set delimiter = b'\\n'",
        ),
        (
            KeepsTheCR,
            "a CRLF line 'hello' came back b'\\rolleh\\r\\n': the CR of its line ending was reversed to the "
            "front — remove it first, line.removesuffix(b'\\r')",
        ),
        (
            RepliesWithLF,
            "the reply b'olleh\\n' ends with a bare LF: sendLine ends it with your delimiter; write it with "
            "self.transport.write(... + b'\\r\\n')",
        ),
        (
            ReversesBytes,
            "'grüße' came back b'e\\x9f\\xc3\\xbc\\xc3rg\\r\\n': its bytes were reversed, which puts the two "
            "bytes of 'ü' and 'ß' in the wrong order — decode, reverse the text, encode",
        ),
        (TextDelimiter, "delimiter is '\\n', text: LineReceiver splits bytes, so write b'\\n'"),
        (NoEnding, "a CRLF line 'hello' got b'olleh', with no line ending: end each reply with b'\\r\\n'"),
        (HardCoded, "an LF-only line 'stressed' should come back 'desserts'; got b'olleh\\r\\n'"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_line_reverser_mistake_fails(attempt: type, expected: str) -> None:
    """Each mistake fails, and the first ✗ line names it."""
    report = check_line_reverser(attempt)
    assert not report.passed
    assert first_wrong(report) == expected


# -- Exercise 3: NetstringEcho ------------------------------------------------------


class WritesRaw(NetstringReceiver):
    def stringReceived(self, string: bytes) -> None:
        self.transport.write(string)


class FramesTwice(NetstringReceiver):
    def stringReceived(self, string: bytes) -> None:
        self.sendString(b"%d:%b," % (len(string), string))


class CountsCharacters(NetstringReceiver):
    def stringReceived(self, string: bytes) -> None:
        text = string.decode()
        self.transport.write(f"{len(text)}:{text},".encode())


class EchoesEverything(NetstringReceiver):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class SendsText(NetstringReceiver):
    def stringReceived(self, string: bytes) -> None:
        self.sendString(string.decode())  # type: ignore[arg-type]


def test_netstring_echo_solution_passes() -> None:
    """The reference solution passes."""
    report = check_netstring_echo(solutions.NetstringEcho)
    assert report.passed, repr(report)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            WritesRaw,
            "sent b'5:hello,', got b'hello' back without its framing: stringReceived gets the message alone, "
            "so send it back with self.sendString",
        ),
        (
            FramesTwice,
            "sent b'5:hello,', got b'8:5:hello,,': framed twice — sendString adds the length and comma itself",
        ),
        (
            CountsCharacters,
            "sent b'7:Gr\\xc3\\xbc\\xc3\\x9fe,', got b'5:Gr\\xc3\\xbc\\xc3\\x9fe,': its length counts 5 "
            "characters, but a netstring counts bytes (7) — sendString counts them for you",
        ),
        (
            EchoesEverything,
            "after b'hello,', which is not a netstring, the connection stayed open (received b'hello,'): "
            "your dataReceived replaces NetstringReceiver's, which would close it",
        ),
        (
            SendsText,
            'TypeError: sequence item 2: expected a bytes-like object, str found — pass bytes here: b"..." or text.encode()',
        ),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_netstring_echo_mistake_fails(attempt: type, expected: str) -> None:
    """Each mistake fails, and the first ✗ line names it."""
    report = check_netstring_echo(attempt)
    assert not report.passed
    assert expected in first_wrong(report)
