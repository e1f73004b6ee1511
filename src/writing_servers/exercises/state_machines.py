"""Checks for notebook 5's exercises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..clients import Client, ClientError
from ..state_machines import ChatFactory, ChatRoom, LineChat, TangledChatFactory
from . import Report, checked_server, client_of, described, reply_to
from ._solutions import solution_for


def _joined(client: Client, name: str, report: Report) -> bool:
    """Answer the name prompt with *name*; report and return False unless welcomed."""
    prompt = client.read_line()
    welcome = reply_to(client, name)
    return report.expect(
        prompt == "What's your name?" and welcome == f"Welcome, {name}!",
        f"{name} is asked for a name and welcomed",
        f"{name} expected \"What's your name?\" then 'Welcome, {name}!'; got {prompt!r}, then {welcome!r}",
    )


def check_who_chat(protocol: type) -> Report:
    """Exercise 1: '/who' lists the names to the asker only; everything else is chat as before."""
    report = Report("WhoChat answers '/who' with the names of everyone here")
    with checked_server(report, ChatFactory(ChatRoom(), protocol)) as server:
        with client_of(server) as alice, client_of(server) as bob:
            if not (_joined(alice, "alice", report) and _joined(bob, "bob", report)):
                return report
            alice.read_line()  # "* bob has joined"
            try:
                reply = reply_to(bob, "/who")
            except ClientError as error:
                report.wrong(f"bob's '/who' got no reply: {error}")
                return report
            report.expect(
                reply == "Here: alice, bob",
                "bob's '/who' is answered 'Here: alice, bob'",
                f"bob's '/who' should be answered 'Here: alice, bob'; got {reply!r}",
            )
            bob.send_line("hi alice")
            heard = alice.read_line()
            report.expect(
                heard == "<bob> hi alice",
                "alice hears bob's next message, and not his '/who'",
                f"alice should hear '<bob> hi alice' next; she heard {heard!r}"
                + (" (a command is not a message: don't pass it to the room)" if "/who" in heard else ""),
            )
            alice.send_line("/who", ending=b"\n")  # netcat's bare LF: still the framing's job
            reply = alice.read_line()
            report.expect(
                reply == "Here: alice, bob",
                "alice's '/who', sent with a bare LF as netcat would, works too",
                f"alice's '/who' should be answered 'Here: alice, bob'; got {reply!r}",
            )
            alice.send_line("/whoever", ending=b"\n")
            heard = bob.read_line()
            report.expect(
                heard == "<alice> /whoever",
                "'/whoever' is an ordinary message (only the exact line '/who' is a command)",
                f"'/whoever' should reach bob as '<alice> /whoever'; he heard {heard!r}",
            )
    return report


def check_password_chat(protocol: type) -> Report:
    """Exercise 2: a PASSWORD state before GETNAME."""
    report = Report("PasswordChat asks for the password before the name")
    password = getattr(protocol, "password", None)
    if not isinstance(password, str):
        report.wrong(f"PasswordChat.password should be a string; it is {password!r}")
        return report
    with checked_server(report, ChatFactory(ChatRoom(), protocol)) as server:
        with client_of(server) as alice:
            try:
                prompt = alice.read_line()
            except ClientError as error:
                report.wrong(f"a new connection should be greeted 'Password?'; {error}")
                return report
            if not report.expect(
                prompt == "Password?",
                "a new connection is greeted 'Password?'",
                f"a new connection should be greeted 'Password?'; got {prompt!r}",
            ):
                return report
            reply = reply_to(alice, "alice")
            report.expect(
                reply == "Wrong password.",
                "a wrong password is answered 'Wrong password.'",
                f"a wrong password should be answered 'Wrong password.'; got {reply!r}",
            )
            reply = reply_to(alice, password)
            report.expect(
                reply == "What's your name?",
                'the right password moves on to "What\'s your name?"',
                f'after the right password expected "What\'s your name?"; got {reply!r}',
            )
            reply = reply_to(alice, "alice")
            report.expect(
                reply == "Welcome, alice!",
                "then the name is taken as in LineChat: 'Welcome, alice!'",
                f"after the password, 'alice' should be welcomed; got {reply!r}",
            )
            with client_of(server) as bob:
                bob.read_line()
                reply = reply_to(bob, "bob")
                report.expect(
                    reply == "Wrong password.",
                    "a second client cannot skip the password by typing a name",
                    f"a second client typed 'bob' at the password prompt and got {reply!r}",
                )
            with client_of(server) as carol:
                carol.read_line()
                prompt = reply_to(carol, password)
                welcome = reply_to(carol, "carol")
                joined = alice.read_line()
                carol.send_line("hi alice")
                heard = alice.read_line()
                report.expect(
                    (prompt, welcome, joined, heard)
                    == ("What's your name?", "Welcome, carol!", "* carol has joined", "<carol> hi alice"),
                    "carol gives the password and her name; alice hears her join and speak",
                    f"carol got {prompt!r} and {welcome!r}; alice then heard {joined!r} and {heard!r}",
                )
    return report


def _outcome(test: Callable[[Any], None], factory: Any) -> BaseException | None:
    try:
        test(factory)
    except Exception as error:  # the student's test: any failure is something to report
        return error
    return None


def check_second_name_test(test: Callable[[Any], None]) -> Report:
    """Exercise 3: the student's StringTransport test passes LineChat and catches TangledChat's bug."""
    report = Report("your test passes against LineChat and catches TangledChat's lost lines")
    error = _outcome(test, ChatFactory(ChatRoom(), LineChat))
    if error is not None:
        if isinstance(error, AssertionError):
            report.wrong(
                f"your test fails against LineChat, which handles this case correctly: {described(error)}"
            )
        else:
            report.wrong(f"against LineChat your test raised {described(error)}")
        return report
    report.ok("your test passes against LineChat")
    error = _outcome(test, TangledChatFactory())
    if error is None:
        report.wrong(
            "your test passes against TangledChat too, so it would not catch the bug: send the taken "
            "name and the new one in one dataReceived call, and assert on what the client received"
        )
    elif isinstance(error, AssertionError):
        report.ok("your test fails against TangledChat with an AssertionError: it catches the bug")
    else:
        report.wrong(
            f"against TangledChat your test raised {described(error)}, not an AssertionError: "
            "test through transport.value(), not through attributes only one class has"
        )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("state_machines")
