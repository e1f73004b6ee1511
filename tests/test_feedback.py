"""What a check says when the student's code goes wrong: the cause first, named by the student's own line.

Each test serves a small wrong protocol through ``checked_server`` over a
real loopback connection, as an exercise check does, and reads the ✗ lines.
"""

from __future__ import annotations

import time

from twisted.internet.protocol import Factory, Protocol

from writing_servers import lab
from writing_servers.exercises import Report, checked_server, client_of, reply_to, trouble


def _line_of(method: object, text: str) -> int:
    """The line number of the line containing *text* in *method*'s source file."""
    code = method.__code__  # type: ignore[attr-defined]
    with open(code.co_filename, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if number >= code.co_firstlineno and text in line:
                return number
    raise AssertionError(f"{text!r} not found")


def _echo_check(protocol: type[Protocol]) -> Report:
    """A check like exercise 1's: 'hello' must come back as 'HELLO', then 'bye' as 'BYE'."""
    report = Report("echo, upper-cased")
    with checked_server(report, Factory.forProtocol(protocol)) as server, client_of(server) as client:
        for word in ("hello", "bye"):
            reply = reply_to(client, word)
            report.expect(reply == word.upper(), f"{word} came back", f"sent {word!r}, got {reply!r}")
    return report


def _wrong_lines(report: Report) -> list[str]:
    return [line.text.removeprefix("✗ ") for line in report.lines() if line.kind == "bad"]


class TextEcho(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.decode().upper())  # type: ignore[arg-type]  # the mistake under test


class SleepyEcho(Protocol):
    def dataReceived(self, data: bytes) -> None:
        time.sleep(1.5)  # the mistake under test
        self.transport.write(data.upper())


class SilentEcho(Protocol):
    def dataReceived(self, data: bytes) -> None:
        pass


class SecondLineBreaks(Protocol):
    def dataReceived(self, data: bytes) -> None:
        if data.startswith(b"bye"):
            raise KeyError("bye")
        self.transport.write(data.upper())


def test_an_exception_names_the_students_class_method_and_line_with_advice() -> None:
    """Not Twisted's _dataMustBeBytes: the student's line, and what to do about it, as the only ✗ line."""
    report = _echo_check(TextEcho)
    line = _line_of(TextEcho.dataReceived, "data.decode().upper()")
    assert _wrong_lines(report) == [
        f'TextEcho.dataReceived, line {line}: TypeError: Data must be bytes — write b"..." or text.encode()'
    ]
    assert lab.servers() == []


def test_lines_that_passed_before_the_cause_stay_and_its_consequences_go() -> None:
    """'hello' passed; 'bye' raised: one ✓, then the cause, and no 'received nothing' or reset line after it."""
    report = _echo_check(SecondLineBreaks)
    line = _line_of(SecondLineBreaks.dataReceived, 'raise KeyError("bye")')
    assert [(row.kind, row.text) for row in report.lines()[1:-1]] == [
        ("good", "✓ hello came back"),
        ("bad", f"✗ SecondLineBreaks.dataReceived, line {line}: KeyError: 'bye'"),
    ]


def test_a_callback_that_blocks_the_reactor_is_named_as_such() -> None:
    started = time.monotonic()
    report = _echo_check(SleepyEcho)
    line = _line_of(SleepyEcho.dataReceived, "time.sleep(1.5)")
    [wrong] = _wrong_lines(report)
    assert wrong.startswith(
        f"SleepyEcho.dataReceived, line {line} blocked the reactor (time.sleep(1.5)): "
    ), wrong
    assert "reactor.callLater" in wrong
    assert time.monotonic() - started < 10  # it waits for the reactor, not for every timeout in turn
    lab.call(lambda: None, timeout=5.0)  # the reactor is free again for the next cell


def test_a_silent_server_is_told_which_message_went_unanswered() -> None:
    report = _echo_check(SilentEcho)
    assert _wrong_lines(report) == [
        "the conversation stopped: no reply to 'hello' within 1 s (waiting for b'\\n'); received so far: b''"
    ]


def test_trouble_names_the_students_line_for_a_direct_call() -> None:
    """For a function a check calls itself (not through the reactor): the student's line, else the call."""

    def listen_twice(reactor: object, factory: object) -> None:
        return [1, 2][5]  # type: ignore[return-value]  # the mistake under test

    try:
        listen_twice(None, None)
    except IndexError as error:
        text = trouble(error, "listen_twice", "listen_twice(reactor, factory)")
    line = _line_of(listen_twice, "[1, 2][5]")
    assert (
        text
        == f"test_trouble_names_the_students_line_for_a_direct_call.listen_twice, line {line}: IndexError: list index out of range"
    )
    try:
        int("x")
    except ValueError as error:  # raised inside Python itself, called from here: still this test's line
        assert trouble(error, "f", "f()").startswith(
            "test_trouble_names_the_students_line_for_a_direct_call, line "
        )


class UpperEcho(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.upper())


class Raiser(Protocol):
    def dataReceived(self, data: bytes) -> None:
        raise RuntimeError("another server's trouble")


def test_an_error_in_another_server_during_a_check_is_not_the_checks() -> None:
    """A server from an earlier cell that raises while a check runs neither fails nor hangs up the check."""
    other = lab.listen(Factory.forProtocol(Raiser), name="an earlier cell's server")
    try:
        report = Report("echo, upper-cased")
        with checked_server(report, Factory.forProtocol(UpperEcho)) as server, client_of(server) as client:
            report.expect(reply_to(client, "hello") == "HELLO", "hello came back", "hello did not")
            with client_of(other) as bystander:
                bystander.send_line("x")
                bystander.read_all()  # Twisted drops the connection whose protocol raised
            report.expect(reply_to(client, "bye") == "BYE", "bye came back", "bye did not")
        assert report.passed, repr(report)
    finally:
        other.stop()
    assert any("another server's trouble" in entry for entry in lab.errors().entries())
