"""Checks for notebook 9's exercises: the cost per recipient, and a chat that says when it is full.

Both take more than one case, so that a number written into the code
cannot pass: two samples of broadcast times, and the full chat with room
for three people and then for two.  The chat's check keeps one connection
that never chooses a name, refuses two visitors in a row, and lets one
person leave, so that counting connections, counting refused visitors, and
not freeing a place each show.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from .. import lab
from ..chat import ChatFactory
from ..clients import Client, ClientError
from . import CHECK_TIMEOUT, Report, checked_server, client_of, trouble
from ._solutions import solution_for

__all__ = ["check_chat_full", "check_per_recipient", "solution"]

#: Milliseconds for one broadcast at each crowd size.  The second sample's answers are not whole
#: numbers, and 200 / 3 rounds up while it rounds down, so that // and round() each show.
SAMPLES = [{2: 0.05, 101: 2.0, 1001: 25.0}, {4: 0.2, 41: 1.0, 401: 9.0}]


def _per_recipient(size: int, milliseconds: float) -> float:
    return milliseconds * 1000 / (size - 1)


#: What a wrong answer was computed as, and what to do instead.
_MISTAKES: list[tuple[Callable[[int, float], float], str]] = [
    (
        lambda size, ms: ms * 1000 / size,
        "divided by the crowd size, but the sender does not receive its own message: divide by size - 1",
    ),
    (lambda size, ms: ms / (size - 1), "still in milliseconds: multiply by 1000 for microseconds"),
    (lambda size, ms: ms * 1e6 / (size - 1), "1000 times too big: a millisecond is 1000 µs, not 1,000,000"),
    (lambda size, ms: ms * 1000, "the whole broadcast's time: divide it by the recipients, size - 1"),
    (lambda size, ms: ms * 1000 // (size - 1), "rounded down: // drops the fraction; divide with /"),
    (lambda size, ms: round(_per_recipient(size, ms)), "rounded: keep the fraction"),
]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mistake(sample: dict[int, float], result: dict[int, float]) -> str:
    """The cause of the wrong answers: the first mistake that gives every one of *result*'s numbers."""
    if any(isinstance(value, str) for value in result.values()):
        return "Return numbers, not text. "
    if not all(_is_number(value) for value in result.values()):
        return ""
    for wrong, cause in _MISTAKES:
        if all(math.isclose(result[size], wrong(size, ms), rel_tol=1e-6) for size, ms in sample.items()):
            return f"{cause[0].upper()}{cause[1:]}. "
    return ""


def check_per_recipient(function: Callable[[dict[int, float]], dict[int, float]]) -> Report:
    """Exercise 1: a broadcast's time divided by its recipients (everyone but the sender), in µs."""
    report = Report("per_recipient_microseconds shares a broadcast's time out over its recipients")
    for sample in SAMPLES:
        try:
            result = function(dict(sample))
        except Exception as error:
            report.wrong(
                trouble(error, "per_recipient_microseconds", f"per_recipient_microseconds({sample})")
            )
            return report
        if not isinstance(result, dict) or set(result) != set(sample):
            shown = sorted(result) if isinstance(result, dict) else repr(result)
            report.wrong(
                f"given the sizes {sorted(sample)}, it should return a dict with the same sizes; got {shown}: "
                "compute each from the dict it is given"
            )
            return report
        cause = _mistake(sample, result)
        for size, milliseconds in sample.items():
            expected, got = _per_recipient(size, milliseconds), result[size]
            if _is_number(got) and math.isclose(got, expected, rel_tol=1e-6):
                report.ok(f"{milliseconds} ms to {size - 1} recipient(s) is {expected:.4g} µs each")
                continue
            report.wrong(
                f"{cause}{milliseconds} ms to {size - 1} recipient(s) should be {expected:.4g} µs each, "
                f"got {got!r}"
            )
            cause = ""  # said once, on the first wrong line
        if not report.passed:
            return report
    return report


#: (max_people, the names that join, in this order).
ROOMS = [(3, ["zoe", "alice", "mia"]), (2, ["bob", "ann"])]

PROMPT = "What's your name?"


def _full(max_people: int) -> str:
    return f"Sorry, the chat is full ({max_people} people); try again later."


def check_chat_full(factory_class: Callable[[int], ChatFactory]) -> Report:
    """Exercise 2: past max_people named people, a newcomer is told the chat is full and disconnected."""
    sizes = " and ".join(f"FullChatFactory({size})" for size, _ in ROOMS)
    report = Report(f"{sizes} admit that many people, then say they are full, then admit again")
    for max_people, names in ROOMS:
        try:
            factory = factory_class(max_people)
        except Exception as error:
            report.wrong(trouble(error, "FullChatFactory", f"FullChatFactory({max_people})"))
            return report
        with checked_server(report, factory) as server:
            _fill_and_refuse(report, server, max_people, names)
        if not report.passed:
            return report
    return report


class _Stop(Exception):
    """The conversation cannot go on; the ✗ line is already in the report."""


def _fill_and_refuse(report: Report, server: lab.Server, max_people: int, names: list[str]) -> None:
    room = f"FullChatFactory({max_people})"
    clients: list[Client] = []

    def connect() -> Client:
        client = client_of(server)
        clients.append(client)
        return client

    try:
        people = [_join(report, connect(), name, room, len(clients) - 1) for name in names[:-1]]
        chooser = connect()  # connected, never chooses a name: not one of the people
        first = chooser.read_line()
        if first != PROMPT:
            report.wrong(
                f"{room} refused a newcomer with only {max_people - 1} people in: "
                f"refuse once len(self.users) reaches self.max_people; it sent {first!r}"
            )
            raise _Stop
        last = names[-1]
        people.append(_join(report, connect(), last, room, max_people - 1, chooser=True))
        report.ok(f"{room}: {', '.join(names)} joined, while one more connection was still choosing a name")
        _refuse(report, connect(), room, max_people, "a newcomer")
        _refuse(report, connect(), room, max_people, "the next one")
        report.ok(
            f"with {max_people} people in, two newcomers in a row are told {_full(max_people)!r} and disconnected"
        )
        people[0].close()
        # The person has left once the server has run their connectionLost.
        server.wait_for_open_connections(max_people, timeout=CHECK_TIMEOUT)
        _join(report, connect(), "newcomer", room, max_people - 1, after=names[0])
        _refuse(report, connect(), room, max_people, "the one after")
        report.ok(f"once {names[0]} left, a newcomer got in, and the one after was refused again")
        _no_write_after_hanging_up(report, server)
    except _Stop:
        pass
    finally:
        for client in clients:
            client.close()


def _join(
    report: Report,
    client: Client,
    name: str,
    room: str,
    named: int,
    chooser: bool = False,
    after: str | None = None,
) -> Client:
    """*name* is asked for a name, chooses it, and is welcomed; *named* people were in already."""
    prompt = client.read_line()
    if prompt != PROMPT:
        if after is not None:
            cause = (
                f"once {after} left, {room} had a free place ({named} people in) but refused a newcomer: "
                "count len(self.users), which holds only the people in the chat now, not the ones who "
                "left or were refused"
            )
        elif chooser:
            cause = (
                f"{name} was refused with {named} people in and one more connection still choosing a name: "
                "count only the people who have chosen one, len(self.users), not connections"
            )
        else:
            cause = f"{room} refused {name} with only {named} people in: refuse once len(self.users) reaches self.max_people"
        report.wrong(f"{cause}; it sent {prompt!r}")
        raise _Stop
    client.send_line(name)
    welcome = client.read_line()
    if welcome != f"Welcome, {name}!":
        report.wrong(f"{name} should be welcomed with 'Welcome, {name}!'; got {welcome!r}")
        raise _Stop
    return client


def _refuse(report: Report, client: Client, room: str, max_people: int, who: str) -> None:
    """*who* gets the refusal line, then the end of the connection."""
    expected = _full(max_people)
    try:
        first = client.read_line()
    except ClientError:
        report.wrong(
            f"with {max_people} people in {room}, {who} was disconnected without being told: "
            "send the line, then call loseConnection()"
        )
        raise _Stop from None
    if first == PROMPT:
        if _refused_later(client, expected):
            report.wrong(
                f"{who} was asked for a name before being refused: the refusing protocol's connectionMade "
                "should send only the refusal (not call super().connectionMade(), which asks for a name)"
            )
            raise _Stop
        report.wrong(
            f"with {max_people} people in {room}, {who} was asked for a name instead of being refused: "
            "refuse once len(self.users) reaches self.max_people"
        )
        raise _Stop
    said = re.fullmatch(r"Sorry, the chat is full \((\d+) people\); try again later\.", first)
    if said is not None and int(said.group(1)) != max_people:
        report.wrong(
            f"the refusal says {said.group(1)} people, but {max_people} have chosen a name: "
            "say how many are in, len(self.users)"
        )
        raise _Stop
    if first != expected:
        report.wrong(f"{who} should be told {expected!r}; got {first!r}")
        raise _Stop
    try:
        rest = client.read_all()
    except ClientError:
        report.wrong(
            f"{who} was told the chat is full but not disconnected: call self.transport.loseConnection() "
            "after sending the line"
        )
        raise _Stop from None
    if rest:
        report.wrong(f"after the refusal, {who} should be disconnected; more arrived first: {rest!r}")
        raise _Stop


def _refused_later(client: Client, expected: str) -> bool:
    """After a prompt, does the refusal still come, and the end of the connection?"""
    try:
        rest = client.read_all()
    except ClientError:  # still open: let in
        return False
    return rest.decode("utf-8", "replace").startswith(expected)


def _no_write_after_hanging_up(report: Report, server: lab.Server) -> None:
    """No connection wrote after its own loseConnection() (the trace keeps the order)."""
    hung_up: set[str] = set()
    for event in server.trace.events():
        connection, _, what = event.partition(" ")
        if what == "loseConnection()":
            hung_up.add(connection)
        elif what.startswith("write(") and connection in hung_up:
            report.wrong(
                f"the server wrote {what[len('write(') : -1]} after loseConnection(): send the line first, "
                "then hang up (Twisted may drop a write made after loseConnection; over TLS it does)"
            )
            raise _Stop


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("scaling")
