"""Checks for notebook 5's exercises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Factory

from ..clients import Client, ReadTimeout
from ..state_machines import ChatFactory, ChatRoom, LineChat, TangledChatFactory
from . import CHECK_TIMEOUT, Report, checked_server, client_of, described, reply_to, trouble
from ._solutions import solution_for

#: The order the check's people join in: not alphabetical, so names listed in join order show.
JOIN_ORDER = ["carol", "alice", "bob"]


def _next_line(client: Client, timeout: float | None = None) -> str | None:
    """The next line *client* receives, or None if none comes within *timeout* (the check's)."""
    try:
        return client.read_line(timeout)
    except ReadTimeout:
        return None


def _answer(client: Client, line: str, ending: bytes = b"\r\n") -> str | None:
    """Send *line*; the line that comes back, or None if none comes in time."""
    client.send_line(line, ending=ending)
    return _next_line(client)


def _shown(line: str | None) -> str:
    return f"nothing within {CHECK_TIMEOUT:g} s" if line is None else repr(line)


def _joined(client: Client, name: str, report: Report) -> bool:
    """Answer the name prompt with *name*; report and return False unless welcomed."""
    prompt = client.read_line()
    welcome = reply_to(client, name)
    return report.expect(
        prompt == "What's your name?" and welcome == f"Welcome, {name}!",
        f"{name} is asked for a name and welcomed",
        f"{name} expected \"What's your name?\" then 'Welcome, {name}!'; got {prompt!r}, then {welcome!r}",
    )


# -- Exercise 1 ---------------------------------------------------------------------


def _who_answered(report: Report, asked: str, reply: str | None, present: list[str], gone: str = "") -> bool:
    """Report whether the '/who' described by *asked* was answered with the *present* names, sorted."""
    expected = "Here: " + ", ".join(sorted(present))
    if reply is None:
        why = "answer the asker with self.send_text(...)"
    elif reply == "Here: " + ", ".join(present) and present != sorted(present):
        why = "those are the names in the order they joined: sort them (the room's who() does)"
    elif gone and gone in reply:
        why = f"{gone} has left: ask the room each time (self.factory.room.who()), not a list of your own"
    else:
        why = f"expected {expected!r}"
    return report.expect(
        reply == expected,
        f"{asked} is answered {expected!r}",
        f"{asked} got {_shown(reply)}: {why}",
    )


def _heard_chat(report: Report, listener: str, heard: str | None, expected: str, right: str) -> bool:
    """Report whether *listener* heard the chat line *expected* next, naming the likely cause if not."""
    if heard is not None and heard.startswith("Here: "):
        why = (
            "only the exact line '/who' is a command, and its answer goes to the asker alone (self.send_text)"
        )
    elif heard is not None and "/who" in heard:
        why = "a command is not a message: don't pass '/who' on to the room too"
    elif heard is None:
        why = "pass every other line on with super().handle_CHAT(text)"
    else:
        why = f"expected {expected!r}"
    return report.expect(
        heard == expected, right, f"{listener} should hear {expected!r} next; heard {_shown(heard)}: {why}"
    )


def check_who_chat(protocol: type) -> Report:
    """Exercise 1: '/who' in state CHAT lists the names, sorted, to the asker alone; elsewhere it is no command."""
    report = Report("WhoChat answers '/who' with the names of everyone here")
    with checked_server(report, ChatFactory(ChatRoom(), protocol)) as server:
        with client_of(server) as carol, client_of(server) as alice, client_of(server) as bob:
            if not all(
                _joined(client, name, report)
                for client, name in zip((carol, alice, bob), JOIN_ORDER, strict=True)
            ):
                return report
            carol.read_lines(2)  # "* alice has joined", "* bob has joined"
            alice.read_line()  # "* bob has joined"
            if not _who_answered(report, "bob's '/who'", _answer(bob, "/who"), JOIN_ORDER):
                return report
            bob.send_line("hi all")
            for name, listener in [("alice", alice), ("carol", carol)]:
                if not _heard_chat(
                    report,
                    name,
                    _next_line(listener),
                    "<bob> hi all",
                    f"{name} hears bob's next line, not his '/who'",
                ):
                    return report
            # netcat ends lines with a bare LF: still the framing's job, not the command's
            if not _who_answered(
                report,
                "alice's '/who', ending in a bare LF as netcat sends it,",
                _answer(alice, "/who", ending=b"\n"),
                JOIN_ORDER,
            ):
                return report
            alice.send_line("/whoever")
            heard = _next_line(bob)
            if heard is None:  # bob waited a whole timeout: any answer alice got has arrived by now
                answered = _next_line(alice, timeout=0.1)
                if answered is not None:
                    report.wrong(
                        f"alice's '/whoever' was answered {answered!r}: only the exact line '/who' is a command"
                    )
                    return report
            if not _heard_chat(
                report,
                "bob",
                heard,
                "<alice> /whoever",
                "'/whoever' is chat: only the exact line '/who' is a command",
            ):
                return report
            carol.read_line()  # "<alice> /whoever"
            bob.close()
            carol.read_line()  # "* bob has left"
            alice.read_line()
            if not _who_answered(
                report, "carol's '/who' after bob left", _answer(carol, "/who"), ["alice", "carol"], "bob"
            ):
                return report
            with client_of(server) as dave:
                dave.read_line()  # "What's your name?"
                reply = _answer(dave, "/who")
                report.expect(
                    reply == "Welcome, /who!",
                    "at the name prompt '/who' is a name to try, as in LineChat: it is a command in state CHAT only",
                    f"at the name prompt (state GETNAME) '/who' got {_shown(reply)}, where LineChat welcomes it as a "
                    "name: a command of state CHAT belongs in handle_CHAT, not in text_received",
                )
    return report


# -- Exercise 2 ---------------------------------------------------------------------


def _greeted(report: Report, client: Client, who: str) -> bool:
    prompt = _next_line(client)
    if prompt == "What's your name?":
        why = "connectionMade should send only 'Password?' (LineChat's, which super() would call, asks the name)"
    else:
        why = "send it in connectionMade"
    return report.expect(
        prompt == "Password?",
        f"{who} is greeted 'Password?'",
        f"{who} should be greeted 'Password?'; got {_shown(prompt)}: {why}",
    )


def _refused(report: Report, client: Client, who: str, line: str, right: str, why_not: str) -> bool:
    reply = _answer(client, line)
    return report.expect(
        reply == "Wrong password.",
        right,
        f"{who} typed {line!r} at the password prompt; expected 'Wrong password.', got {_shown(reply)}: {why_not}",
    )


def _admitted(report: Report, client: Client, who: str, password: str) -> bool:
    """Give the right *password*, then the name *who*: asked for the name, then welcomed."""
    reply = _answer(client, password)
    if reply == f"Welcome, {password}!":
        why = "the password was taken as a name too, and announced to everyone: ask for the name, then wait"
    elif reply == "Wrong password.":
        why = "compare the line with self.password"
    else:
        why = 'send "What\'s your name?" and move to GETNAME'
    if not report.expect(
        reply == "What's your name?",
        f"{who}'s right password is answered \"What's your name?\"",
        f"{who}'s right password, {password!r}, should be answered \"What's your name?\"; got {_shown(reply)}: {why}",
    ):
        return False
    reply = _answer(client, who)
    why = (
        'set self.state = "GETNAME" after the right password'
        if reply == "Wrong password."
        else "as in LineChat"
    )
    return report.expect(
        reply == f"Welcome, {who}!",
        f"then {who}'s name is taken as in LineChat: 'Welcome, {who}!'",
        f"after the password, the name {who!r} should be welcomed; got {_shown(reply)}: {why}",
    )


def check_password_chat(protocol: type) -> Report:
    """Exercise 2: a PASSWORD state before GETNAME; wrong passwords keep it, and none reaches the room."""
    report = Report("PasswordChat asks for the password before the name")
    password = getattr(protocol, "password", None)
    if not isinstance(password, str) or not password:
        report.wrong(f"PasswordChat.password should be a non-empty string; it is {password!r}")
        return report
    almost = password[:-1] or password * 2
    with checked_server(report, ChatFactory(ChatRoom(), protocol)) as server:
        with client_of(server) as alice:
            if not (
                _greeted(report, alice, "a new connection")
                and _refused(
                    report,
                    alice,
                    "alice",
                    "alice",
                    "a wrong password is answered 'Wrong password.'",
                    "start in state PASSWORD, and refuse every line but the password",
                )
                and _refused(
                    report,
                    alice,
                    "alice",
                    almost,
                    "a second wrong password is refused too: the state stays PASSWORD",
                    "after a wrong password the state must stay PASSWORD: send 'Wrong password.' and return",
                )
                and _admitted(report, alice, "alice", password)
            ):
                return report
            with client_of(server) as bob:
                if not (
                    _greeted(report, bob, "a second connection")
                    and _refused(
                        report,
                        bob,
                        "bob, a second connection,",
                        "bob",
                        "a second connection cannot skip the password by typing a name",
                        "each connection has its own state: set self.state, never PasswordChat.state",
                    )
                ):
                    return report
            with client_of(server) as carol:
                if not (
                    _greeted(report, carol, "carol")
                    and _refused(
                        report,
                        carol,
                        "carol",
                        "letmein",
                        "carol's wrong password is refused",
                        "compare with self.password",
                    )
                    and _admitted(report, carol, "carol", password)
                ):
                    return report
                heard = _next_line(alice)
                leaked = heard is not None and ("letmein" in heard or password in heard)
                if not report.expect(
                    heard == "* carol has joined",
                    "alice hears carol join, and nothing of her passwords",
                    f"alice should hear '* carol has joined' next; heard {_shown(heard)}"
                    + (": a password must never reach the room" if leaked else ""),
                ):
                    return report
    if not report.passed:  # the conversation stopped early: the cause is reported already
        return report
    other = "swordfish" if password != "swordfish" else "open sesame"
    subclass = type(protocol.__name__, (protocol,), {"password": other})
    with checked_server(report, ChatFactory(ChatRoom(), subclass)) as server, client_of(server) as dave:
        dave.read_line()  # "Password?"
        answers = (_answer(dave, password), _answer(dave, other))
        report.expect(
            answers == ("Wrong password.", "What's your name?"),
            f"with password = {other!r} on a subclass, {other!r} is the password and {password!r} is not",
            f"with password = {other!r} on a subclass, {password!r} got {_shown(answers[0])} and {other!r} "
            f"got {_shown(answers[1])}: compare with self.password, not a fixed string",
        )
    return report


# -- Exercise 3 ---------------------------------------------------------------------


class _Recording:
    """What a student's test did with the factory it was given: the protocols it built, the chunks it fed."""

    def __init__(self, factory: Factory[Any]) -> None:
        self.factory = factory
        self.built: list[Any] = []
        self.chunks: list[bytes] = []
        build = factory.buildProtocol

        def buildProtocol(addr: object) -> Any:
            protocol: Any = build(addr)  # type: ignore[arg-type]
            receive = protocol.dataReceived

            def dataReceived(data: bytes) -> None:
                self.chunks.append(data)
                receive(data)

            protocol.dataReceived = dataReceived  # on the instance: the class stays the student's to test
            self.built.append(protocol)
            return protocol

        factory.buildProtocol = buildProtocol  # type: ignore[method-assign]

    def outcome(self, test: Callable[[Any], None]) -> Exception | None:
        try:
            test(self.factory)
        except Exception as error:  # the student's test: any failure is something to report
            return error
        return None

    def missing_step(self) -> str | None:
        """The step of the scenario the test left out, in words; None if it did them all."""
        if not self.built:
            return "it never called factory.buildProtocol(None), so it tested a chat of its own"
        if len(self.built) < 2:
            return (
                "it built only one protocol: alice must join first, so that the second one's 'alice' is taken"
            )
        if not any(chunk.count(b"\n") >= 2 for chunk in self.chunks):
            return "it never sent two lines in one dataReceived call, so TangledChat's bug never shows"
        return None

    def second_received(self) -> bytes | None:
        transport = getattr(self.built[1], "transport", None) if len(self.built) > 1 else None
        value = getattr(transport, "value", None)
        return value() if callable(value) else None


def check_second_name_test(test: Callable[[Any], None]) -> Report:
    """Exercise 3: the student's StringTransport test passes LineChat and catches TangledChat's bug."""
    report = Report("your test passes against LineChat and catches TangledChat's lost lines")
    layered = _Recording(ChatFactory(ChatRoom(), LineChat))
    error = layered.outcome(test)
    if isinstance(error, AssertionError):
        received = layered.second_received()
        report.wrong(
            f"your test fails against LineChat, which handles this case correctly: {described(error)}"
            + (f" (LineChat sent the second client {received!r})" if received else "")
        )
        return report
    if error is not None:
        problem = trouble(error, "test_second_name_in_one_chunk", "your test")
        report.wrong(problem if isinstance(error, NotImplementedError) else f"against LineChat: {problem}")
        return report
    report.ok("your test passes against LineChat")
    tangled = _Recording(TangledChatFactory())
    error = tangled.outcome(test)
    if error is None:
        missing = tangled.missing_step() or (
            "it sent both names in one chunk, but asserted nothing that notices bob was never welcomed: "
            "assert on the second transport's value()"
        )
        report.wrong(f"your test passes against TangledChat too, so it would not catch the bug: {missing}")
    elif isinstance(error, AssertionError):
        report.ok("your test fails against TangledChat with an AssertionError: it catches the bug")
    else:
        report.wrong(
            f"against TangledChat your test raised {trouble(error, 'test_second_name_in_one_chunk', 'your test')}, "
            "not an AssertionError: test through transport.value(), not through attributes only one class has"
        )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("state_machines")
