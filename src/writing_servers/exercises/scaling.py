"""Checks for notebook 9's exercises: the cost per recipient, and a chat that says when it is full."""

from __future__ import annotations

import math
from collections.abc import Callable

from ..chat import ChatFactory
from . import Report, checked_server, client_of, trouble
from ._solutions import solution_for

__all__ = ["check_chat_full", "check_per_recipient", "solution"]

SAMPLE = {2: 0.05, 101: 2.0, 1001: 25.0}  # milliseconds for one broadcast at each crowd size
EXPECTED = {2: 50.0, 101: 20.0, 1001: 25.0}  # microseconds per recipient


def check_per_recipient(function: Callable[[dict[int, float]], dict[int, float]]) -> Report:
    """Exercise 1: a broadcast's time divided by its recipients (everyone but the sender), in µs."""
    report = Report("per_recipient_microseconds shares a broadcast's time out over its recipients")
    try:
        result = function(dict(SAMPLE))
    except Exception as error:
        report.wrong(trouble(error, "per_recipient_microseconds", f"per_recipient_microseconds({SAMPLE})"))
        return report
    if not isinstance(result, dict) or set(result) != set(SAMPLE):
        report.wrong(f"expected a dict with the same sizes {sorted(SAMPLE)}, got {result!r}")
        return report
    for size, expected in EXPECTED.items():
        got = result[size]
        report.expect(
            isinstance(got, (int, float)) and math.isclose(got, expected, rel_tol=1e-6),
            f"{SAMPLE[size]} ms to {size - 1} recipient(s) is {expected:g} µs each",
            f"{SAMPLE[size]} ms to {size - 1} recipient(s) should be {expected:g} µs each, got {got!r}",
        )
    return report


def check_chat_full(factory_class: Callable[[int], ChatFactory]) -> Report:
    """Exercise 2: past max_people named people, a newcomer is told the chat is full and disconnected."""
    report = Report("FullChatFactory(2) admits two people, then says it is full, then admits again")
    try:
        factory = factory_class(2)
    except Exception as error:
        report.wrong(trouble(error, "FullChatFactory", "FullChatFactory(2)"))
        return report
    with checked_server(report, factory) as server:
        with client_of(server) as alice, client_of(server) as bob:
            for client, name in [(alice, "alice"), (bob, "bob")]:
                client.read_line()
                client.send_line(name)
                welcome = client.read_line()
                report.expect(
                    welcome == f"Welcome, {name}!", f"{name} joined", f"{name} was not welcomed: {welcome!r}"
                )
            with client_of(server) as carol:
                refusal = carol.read_all().decode("utf-8", "replace")
                report.expect(
                    refusal == "Sorry, the chat is full (2 people); try again later.\r\n"
                    and carol.ended == "eof",
                    "a third person is told 'Sorry, the chat is full (2 people); try again later.' and disconnected",
                    f"a third person should be told the chat is full and disconnected; got {refusal!r}, "
                    f"then {carol.ended}",
                )
        server.wait_until_idle()
        with client_of(server) as dave:
            prompt = dave.read_line()
            report.expect(
                prompt == "What's your name?",
                "once they have left, a newcomer is asked for a name again",
                f"once they have left, a newcomer should be asked for a name; got {prompt!r}",
            )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("scaling")
