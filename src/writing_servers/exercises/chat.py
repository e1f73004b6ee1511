"""Checks for notebook 8's exercises: /who, join and leave announcements, private messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from .. import lab
from ..chat import HowtoChat, HowtoChatFactory
from ..clients import Client, ClientError, connect
from . import CHECK_TIMEOUT, Report, checked_server
from ._solutions import solution_for

__all__ = ["check_announcing_chat", "check_private_chat", "check_who_chat", "solution"]


class _Stop(Exception):
    """The check cannot go on; the reason is already in the report."""


def _factory(chat_class: type[HowtoChat]) -> HowtoChatFactory:
    factory = HowtoChatFactory()
    factory.protocol = chat_class
    return factory


def _expect_line(report: Report, client: Client, wanted: str, what: str, *, quiet: bool = False) -> None:
    """Read *client*'s next line and record whether it is *wanted* (if *quiet*, only if not); stop if not."""
    try:
        line = client.read_line()
    except ClientError as error:
        report.wrong(f"{what}: expected {wanted!r}, but no line came ({error})")
        raise _Stop from None
    if line != wanted:
        report.wrong(f"{what}: expected {wanted!r}, got {line!r}")
        raise _Stop
    if not quiet:
        report.ok(f"{what}: {wanted!r}")


@contextmanager
def _chat(report: Report, chat_class: type[HowtoChat]) -> Iterator[tuple[lab.Server, ExitStack]]:
    """Serve *chat_class* for a check; clients entered on the stack are closed at the end."""
    with checked_server(report, _factory(chat_class)) as server, ExitStack() as clients:
        try:
            yield server, clients
        except _Stop:
            pass


def _join(report: Report, server: lab.Server, clients: ExitStack, name: str) -> Client:
    """Connect, answer the name prompt with *name*, and expect the welcome (a ✗ line only if it fails)."""
    client = clients.enter_context(connect(server, timeout=CHECK_TIMEOUT, title=name))
    _expect_line(report, client, "What's your name?", f"{name} connects", quiet=True)
    client.send_line(name)
    _expect_line(report, client, f"Welcome, {name}!", f"{name} chooses the name {name!r}", quiet=True)
    return client


def check_who_chat(protocol: type[HowtoChat]) -> Report:
    """Exercise 1: /who lists the names, to the asker only; other lines are chat as before."""
    report = Report("WhoChat answers /who with the names of everyone here")
    with _chat(report, protocol) as (server, clients):
        alice = _join(report, server, clients, "alice")
        bob = _join(report, server, clients, "bob")
        report.ok("alice and bob joined")
        alice.send_line("/who")
        _expect_line(report, alice, "Users: alice, bob", "alice asks /who")
        alice.send_line("hello")
        _expect_line(report, bob, "<alice> hello", "bob's next line is alice's chat (not her /who)")
        _join(report, server, clients, "carrol")
        bob.send_line("/who")
        _expect_line(report, bob, "Users: alice, bob, carrol", "after carrol joins, bob asks /who")
    return report


def check_announcing_chat(protocol: type[HowtoChat]) -> Report:
    """Exercise 2: others hear '* name has joined' and '* name has left'; nameless visitors are not announced."""
    report = Report("AnnouncingChat tells everyone else who joins and who leaves")
    with _chat(report, protocol) as (server, clients):
        alice = _join(report, server, clients, "alice")
        bob = _join(report, server, clients, "bob")
        report.ok("alice, then bob joined")
        _expect_line(report, alice, "* bob has joined", "alice hears that bob joined")
        alice.send_line("hi")
        _expect_line(report, bob, "<alice> hi", "bob's next line is alice's chat (not his own join)")
        with connect(server, timeout=CHECK_TIMEOUT, title="visitor") as visitor:
            _expect_line(report, visitor, "What's your name?", "a visitor connects")
            visitor.send_line("alice")
            _expect_line(report, visitor, "Name taken, please choose another.", "the visitor tries 'alice'")
        server.wait_for_open_connections(2)
        bob.send_line("still here")
        _expect_line(
            report, alice, "<bob> still here", "a visitor who never got a name came and went unannounced"
        )
        bob.close()
        _expect_line(report, alice, "* bob has left", "alice hears that bob left")
    return report


def check_private_chat(protocol: type[HowtoChat]) -> Report:
    """Exercise 3: /msg name text reaches that user only; an unknown name gets an answer."""
    report = Report("PrivateChat delivers /msg to one user only")
    with _chat(report, protocol) as (server, clients):
        alice = _join(report, server, clients, "alice")
        bob = _join(report, server, clients, "bob")
        carrol = _join(report, server, clients, "carrol")
        report.ok("alice, bob and carrol joined")
        alice.send_line("/msg bob see you at five")
        _expect_line(report, bob, "*alice* see you at five", "alice sends bob a private message")
        alice.send_line("/msg dave hello?")
        _expect_line(report, alice, "No such user: dave", "alice writes to dave, who is not here")
        alice.send_line("hello all")
        _expect_line(
            report, carrol, "<alice> hello all", "carrol's next line is alice's chat (no private message)"
        )
        _expect_line(report, bob, "<alice> hello all", "bob's next line is alice's chat too")
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("chat")
