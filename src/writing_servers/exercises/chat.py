"""Checks for notebook 8's exercises: /who, join and leave announcements, private messages.

Each check stops at the first line that is not what a person would see, and
says why when the line tells: names in join order, an answer that went to the
wrong person, a private message relayed to everyone, a control character
passed on.  People join out of alphabetical order (zoe before adam), so that
join order and sorted order differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from .. import lab
from ..chat import HowtoChat, HowtoChatFactory
from ..clients import Client, ClientError, ReadTimeout, connect
from . import CHECK_TIMEOUT, Report, checked_server
from ._solutions import solution_for

__all__ = ["check_announcing_chat", "check_private_chat", "check_who_chat", "solution"]

#: Says why an unexpected line (``None``: no line at all) is wrong, or ``None`` when it cannot tell.
Diagnosis = Callable[[str | None], str | None]

#: How long to look at another client's stream once the one asked already waited in vain.
PEEK_TIMEOUT = 0.3


class _Stop(Exception):
    """The check cannot go on; the reason is already in the report."""


def _factory(chat_class: type[HowtoChat]) -> HowtoChatFactory:
    factory = HowtoChatFactory()
    factory.protocol = chat_class
    return factory


def _next_line(client: Client, timeout: float | None = None) -> str | None:
    """*client*'s next line, or ``None`` if none came in time."""
    try:
        return client.read_line(timeout)
    except ReadTimeout:
        return None


def _expect_line(
    report: Report,
    client: Client,
    wanted: str,
    what: str,
    *,
    why: Diagnosis | None = None,
    quiet: bool = False,
) -> None:
    """Read *client*'s next line and record whether it is *wanted* (if *quiet*, only if not); stop if not.

    A wrong line is explained by *why* when it can tell the cause, else shown beside what was expected.
    """
    try:
        line = client.read_line()
    except ReadTimeout as error:
        line, missing = None, str(error)
    except ClientError as error:  # the server hung up: checked_server names the cause, if it raised
        report.wrong(f"{what}: expected {wanted!r}, but the connection ended ({error})")
        raise _Stop from None
    if line == wanted:
        if not quiet:
            report.ok(f"{what}: {wanted!r}")
        return
    cause = why(line) if why is not None else None
    if cause is not None:
        report.wrong(f"{what}: {cause}")
    elif line is None:
        report.wrong(f"{what}: expected {wanted!r}, but no line came ({missing})")
    else:
        report.wrong(f"{what}: expected {wanted!r}, got {line!r}")
    raise _Stop


@contextmanager
def _chat(report: Report, chat_class: type[HowtoChat]) -> Iterator[tuple[lab.Server, ExitStack]]:
    """Serve *chat_class* for a check; clients entered on the stack are closed at the end."""
    with checked_server(report, _factory(chat_class)) as server, ExitStack() as clients:
        try:
            yield server, clients
        except _Stop:
            pass


def _connect(server: lab.Server, clients: ExitStack, title: str) -> Client:
    return clients.enter_context(connect(server, timeout=CHECK_TIMEOUT, title=title))


def _join(report: Report, server: lab.Server, clients: ExitStack, name: str) -> Client:
    """Connect, answer the name prompt with *name*, and expect the welcome (a ✗ line only if it fails)."""
    client = _connect(server, clients, name)
    _expect_line(report, client, "What's your name?", f"{name} connects", quiet=True)
    client.send_line(name)
    _expect_line(report, client, f"Welcome, {name}!", f"{name} chooses the name {name!r}", quiet=True)
    return client


def _stray_line(others: dict[str, Client]) -> tuple[str, str] | None:
    """The first line one of *others* got, with their name: looked for when the one asked got nothing."""
    for name, other in others.items():
        line = _next_line(other, PEEK_TIMEOUT)
        if line is not None:
            return name, line
    return None


def _diagnosis(
    reader: str,
    explain: Callable[[str, str], str | None],
    *,
    others: dict[str, Client] | None = None,
    missing: str | None = None,
) -> Diagnosis:
    """A Diagnosis built on *explain(name, line)*: why *name* should not have got *line*.

    When *reader* got nothing, a line that went to one of *others* instead
    usually says why; failing that, *missing* does.
    """

    def why(line: str | None) -> str | None:
        if line is not None:
            cause = explain(reader, line)
            return None if cause is None else f"got {line!r}: {cause}"
        stray = _stray_line(others or {})
        if stray is None:
            return missing
        name, other_line = stray
        cause = explain(name, other_line)
        return f"nothing came to {reader}, but {name} got {other_line!r}" + (f": {cause}" if cause else "")

    return why


# -- exercise 1: /who ------------------------------------------------------------------------------


def _users_line(names: list[str]) -> str:
    return "Users: " + ", ".join(names)


def _who_explainer(asker: str, joined: list[str]) -> Callable[[str, str], str | None]:
    """Why a line is wrong after *asker* sent /who, everyone here having joined in the order *joined*."""
    wanted = _users_line(sorted(joined))

    def explain(name: str, line: str) -> str | None:
        if name != asker and line.startswith("Users:"):
            return f"the answer to {asker}'s /who goes to {asker} alone: self.send_text(...), not broadcast"
        if line == f"<{asker}> /who":
            return f"{asker}'s /who was relayed as chat; answer it and return instead"
        if line == _users_line(joined) and joined != sorted(joined):
            return f"the names in the order they joined; the exercise asks for them sorted: {wanted!r}"
        if line == _users_line(sorted(set(joined) - {asker})):
            return f"it leaves out {asker}, who asked; list everyone in the chat: {wanted!r}"
        return None

    return explain


def _ask_who(report: Report, asker: str, here: dict[str, Client], what: str) -> None:
    """*asker* sends /who; everyone in *here* (in join order) must be listed, sorted, to *asker* alone."""
    joined = list(here)
    here[asker].send_line("/who")
    others = {name: client for name, client in here.items() if name != asker}
    why = _diagnosis(asker, _who_explainer(asker, joined), others=others)
    _expect_line(report, here[asker], _users_line(sorted(joined)), what, why=why)


def check_who_chat(protocol: type[HowtoChat]) -> Report:
    """Exercise 1: /who lists the names, sorted, to the asker only; other lines are chat as before."""
    report = Report("WhoChat answers /who with the sorted names of everyone here")
    with _chat(report, protocol) as (server, clients):
        here = {name: _join(report, server, clients, name) for name in ["zoe", "adam"]}
        report.ok("zoe, then adam joined")
        _ask_who(report, "zoe", here, "zoe asks /who")
        here["zoe"].send_line("hello")
        relayed = _diagnosis(
            "adam",
            _who_explainer("zoe", list(here)),
            missing="zoe's 'hello' never arrived: relay every other message with super().handle_CHAT(message)",
        )
        _expect_line(
            report, here["adam"], "<zoe> hello", "adam's next line is zoe's chat (not her /who)", why=relayed
        )
        here["mike"] = _join(report, server, clients, "mike")
        _ask_who(report, "adam", here, "after mike joins, adam asks /who")
        here.pop("zoe").close()
        server.wait_for_open_connections(len(here))
        _ask_who(report, "mike", here, "after zoe leaves, mike asks /who")
        visitor = _connect(server, clients, "visitor")
        _expect_line(report, visitor, "What's your name?", "a visitor connects", quiet=True)
        visitor.send_line("/who")
        reply = _next_line(visitor)
        report.expect(
            reply is None or not reply.startswith("Users:"),
            "a visitor still choosing a name is not shown who is here",
            f"a visitor at the name prompt typed /who and got {reply!r}: there a line is a name; "
            "answer /who in handle_CHAT, once a name is chosen",
        )
    return report


# -- exercise 2: announcements ---------------------------------------------------------------------


def _announcement_explainer(refused: str | None = None) -> Callable[[str, str], str | None]:
    """Why an announcement is wrong; *refused* is a name a visitor just tried and was refused."""

    def explain(name: str, line: str) -> str | None:
        if refused is not None and line == f"* {refused} has joined":
            return (
                f"a visitor was refused the name {refused!r}, and that was announced; announce only once "
                "the name is accepted (self.state is 'CHAT' after super().handle_GETNAME(name))"
            )
        if refused is not None and line.endswith(" has left"):
            return (
                "a visitor who never got a name was announced; announce a departure only if there was a name"
            )
        if line == f"* {name} has joined":
            return f"{name} was told of their own arrival; self.broadcast(...) tells everyone else"
        if line.startswith("* None "):
            return "an announcement for a connection without a name; announce only names that were accepted"
        return None

    return explain


JOIN_MISSING = (
    "nothing came; once super().handle_GETNAME(name) has accepted the name (self.state is 'CHAT'), "
    "tell the others with self.broadcast(...)"
)
LEAVE_MISSING = (
    "nothing came; in connectionLost, tell the others before super().connectionLost(reason) "
    "removes the name from self.users"
)


def _hear(
    report: Report, listeners: dict[str, Client], line: str, what: str, missing: str | None = None
) -> None:
    """Every one of *listeners* hears *line* next."""
    for name, client in listeners.items():
        why = _diagnosis(name, _announcement_explainer(), missing=missing)
        _expect_line(report, client, line, f"{name} {what}", why=why)


def _freed_name_problem(line: str | None) -> str | None:
    if line == "Name taken, please choose another.":
        return (
            f"got {line!r}: mike's name was not freed when he left; end connectionLost with "
            "super().connectionLost(reason)"
        )
    return None


def check_announcing_chat(protocol: type[HowtoChat]) -> Report:
    """Exercise 2: others hear '* name has joined' and '* name has left'; nameless visitors are not announced."""
    report = Report("AnnouncingChat tells everyone else who joins and who leaves")
    with _chat(report, protocol) as (server, clients):
        zoe = _join(report, server, clients, "zoe")
        adam = _join(report, server, clients, "adam")
        _hear(report, {"zoe": zoe}, "* adam has joined", "hears that adam joined", JOIN_MISSING)
        mike = _join(report, server, clients, "mike")
        _hear(report, {"zoe": zoe, "adam": adam}, "* mike has joined", "hears that mike joined", JOIN_MISSING)
        zoe.send_line("hi")
        _hear(report, {"adam": adam, "mike": mike}, "<zoe> hi", "hears zoe's chat next")
        with connect(server, timeout=CHECK_TIMEOUT, title="visitor") as visitor:
            _expect_line(report, visitor, "What's your name?", "a visitor connects", quiet=True)
            visitor.send_line("zoe")
            _expect_line(report, visitor, "Name taken, please choose another.", "the visitor tries 'zoe'")
        server.wait_for_open_connections(3)
        adam.send_line("still here")
        what = "zoe's next line is adam's chat: the refused visitor came and went unannounced"
        _expect_line(
            report, zoe, "<adam> still here", what, why=_diagnosis("zoe", _announcement_explainer("zoe"))
        )
        mike.close()
        _hear(report, {"zoe": zoe, "adam": adam}, "* mike has left", "hears that mike left", LEAVE_MISSING)
        server.wait_for_open_connections(2)
        newcomer = _connect(server, clients, "mike again")
        _expect_line(report, newcomer, "What's your name?", "someone new connects", quiet=True)
        newcomer.send_line("mike")
        what = "someone new takes the name mike left free"
        _expect_line(report, newcomer, "Welcome, mike!", what, why=_freed_name_problem)
        _hear(report, {"zoe": zoe, "adam": adam}, "* mike has joined", "hears that mike joined again")
    return report


# -- exercise 3: private messages ------------------------------------------------------------------


def _private_explainer(
    sender: str, shown: str, meant_for: dict[str, str]
) -> Callable[[str, str], str | None]:
    """Why a line is wrong after *sender*'s /msg (its text *shown* as it should arrive, or "").

    *meant_for* maps each private line sent so far to the person it was for.
    """
    signed = f"*{sender}* "

    def explain(name: str, line: str) -> str | None:
        if meant_for.get(line, name) != name:
            return f"a private message for {meant_for[line]}; send it to that user's protocol alone"
        if line == signed:
            return "an empty private message; a /msg with no text gets the usage line instead"
        if line.startswith("<") and "> /msg " in line:
            return "a /msg relayed to everyone as chat; handle /msg before relaying"
        if line == f"No such user: {name}":
            return f"{name} is here; look the name up in self.users, which holds everyone, the sender too"
        if "\\x1b" in line:
            return f"the ESC reached {name}'s terminal as it is; pass the text through visible(text)"
        if shown and line == shown:
            return f"it does not say who sent it; put the sender's name first: {signed + shown!r}"
        if shown and line.endswith(" " + shown) and line.startswith("*"):
            return f"the name in front must be the sender's, self.name: {signed + shown!r}"
        if shown and line.startswith(signed) and shown.startswith(line.removeprefix(signed)):
            return "only part of the text; split the name off once and keep the rest whole (str.partition)"
        return None

    return explain


def check_private_chat(protocol: type[HowtoChat]) -> Report:
    """Exercise 3: /msg name text reaches that user only, spelled out; a bad /msg gets an answer."""
    report = Report("PrivateChat delivers /msg to one user only")
    with _chat(report, protocol) as (server, clients):
        people = {name: _join(report, server, clients, name) for name in ["zoe", "adam", "mike"]}
        report.ok("zoe, adam and mike joined")
        meant_for: dict[str, str] = {}

        def expect(reader: str, wanted: str, what: str, sender: str, shown: str = "") -> None:
            others = {name: client for name, client in people.items() if name != reader}
            why = _diagnosis(reader, _private_explainer(sender, shown, meant_for), others=others)
            _expect_line(report, people[reader], wanted, what, why=why)

        def private(sender: str, reader: str, text: str, shown: str, what: str) -> None:
            people[sender].send_line(f"/msg {reader} {text}")
            meant_for[f"*{sender}* {shown}"] = reader
            expect(reader, f"*{sender}* {shown}", what, sender, shown)

        private("zoe", "mike", "see you at five", "see you at five", "zoe sends mike a private message")
        private(
            "zoe",
            "adam",
            "\x1b[2Jred alert",
            "^[[2Jred alert",
            "zoe's private message to adam with ESC [2J (clear the screen) in it arrives spelled out",
        )
        people["zoe"].send_line("/msg dave hello?")
        expect("zoe", "No such user: dave", "zoe writes to dave, who is not here", "zoe")
        people["zoe"].send_line("/msg adam")
        expect("zoe", "Usage: /msg <name> <text>", "zoe sends '/msg adam' with no text", "zoe")
        private("mike", "mike", "note to self", "note to self", "mike sends himself a private message")
        people["zoe"].send_line("hello all")
        for name in ["adam", "mike"]:
            expect(name, "<zoe> hello all", f"{name}'s next line is zoe's chat (no one else's /msg)", "zoe")
        people["mike"].send_line("bye")
        expect("zoe", "<mike> bye", "zoe's next line is mike's chat (no one else's /msg)", "mike")
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("chat")
