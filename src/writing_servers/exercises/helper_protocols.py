"""Checks for notebook 4's exercises."""

from __future__ import annotations

from twisted.internet.protocol import Factory

from ..clients import Client, ClientError
from . import Report, checked_server, client_of, reply_to
from ._solutions import solution_for


def check_more_answers(protocol: type) -> Report:
    """Exercise 1: a new answer, the old ones, and a goodbye that hangs up."""
    report = Report("MoreAnswers knows 'What is Twisted?' and hangs up after 'Bye'")
    with checked_server(report, Factory.forProtocol(protocol)) as server, client_of(server) as client:
        for question, expected in [
            ("What is Twisted?", "An event-driven networking engine"),
            ("How are you?", "Fine"),
            ("Is it Tuesday?", "I don't know what you mean"),
        ]:
            reply = reply_to(client, question)
            report.expect(
                reply == expected,
                f"{question!r} is answered {expected!r}",
                f"{question!r} should be answered {expected!r}, got {reply!r}",
            )
        reply = reply_to(client, "Bye")
        report.expect(
            reply == "Goodbye!", "'Bye' is answered 'Goodbye!'", f"'Bye' got {reply!r}, not 'Goodbye!'"
        )
        rest = client.read_all()
        report.expect(
            client.ended == "eof" and not rest,
            "then the server closed the connection",
            f"after 'Goodbye!' the server should close; received {rest!r}, the connection ended: {client.ended}",
        )
    return report


def _reply_line(client: Client, text: str, ending: bytes) -> bytes | None:
    """Send *text* with *ending*; return the raw reply line, or None if none came."""
    client.send_line(text, ending=ending)
    try:
        return client.read_until(b"\n")
    except ClientError:
        return None


def _content(raw: bytes) -> bytes:
    return raw.removesuffix(b"\n").removesuffix(b"\r")


def check_line_reverser(protocol: type) -> Report:
    """Exercise 2: each line comes back reversed, from CRLF and LF-only clients alike."""
    report = Report("LineReverser reverses lines from telnet (CRLF) and netcat (LF) clients")
    with checked_server(report, Factory.forProtocol(protocol)) as server:
        with client_of(server) as telnet:
            raw = _reply_line(telnet, "hello", b"\r\n")
            if raw is None:
                report.wrong("a CRLF line 'hello' got no reply (the other checks need one)")
                return report
            report.expect(
                _content(raw) == b"olleh",
                "a CRLF line 'hello' comes back 'olleh'",
                f"a CRLF line 'hello' should come back 'olleh'; got {raw!r}"
                + (": the CR of the line ending was reversed too" if raw.startswith(b"\r") else ""),
            )
            report.expect(
                raw.endswith(b"\r\n"),
                "the reply ends with CRLF",
                f"replies should end with b'\\r\\n', as telnet expects; got {raw!r}",
            )
        with client_of(server) as netcat:
            raw = _reply_line(netcat, "hello", b"\n")
            if raw is None:
                report.wrong(
                    "a line ending in a bare LF (as netcat sends) was never answered: "
                    "LineReceiver is still waiting for b'\\r\\n'"
                )
                return report
            report.expect(
                _content(raw) == b"olleh",
                "an LF-only line 'hello' comes back 'olleh'",
                f"an LF-only line 'hello' should come back 'olleh'; got {raw!r}",
            )
            raw = _reply_line(netcat, "grüße", b"\n")
            wanted = "eßürg".encode()
            report.expect(
                raw is not None and _content(raw) == wanted,
                "'grüße' comes back 'eßürg': the text is reversed, not its bytes",
                f"'grüße' should come back 'eßürg' ({wanted!r}); got {raw!r}",
            )
    return report


def check_netstring_echo(protocol: type) -> Report:
    """Exercise 3: netstrings come back as netstrings; a malformed one ends the connection."""
    report = Report("NetstringEcho sends each netstring back")
    with checked_server(report, Factory.forProtocol(protocol)) as server:
        for sent in [b"5:hello,", b"3:abc,3:def,", b"11:hello,world,", b"0:,"]:
            with client_of(server) as client:
                client.send(sent)
                try:
                    client.read_until(sent)
                except ClientError as error:
                    report.wrong(f"sent {sent!r}, expected the same bytes back; {error}")
                    return report
                report.ok(f"sent {sent!r}, got {sent!r} back")
        with client_of(server) as client:
            client.send(b"hello,")
            try:
                rest = client.read_all()
            except ClientError:
                rest = None
            report.expect(
                client.ended in ("eof", "reset") and not rest,
                "a malformed netstring (b'hello,') makes the server close the connection",
                f"after b'hello,' the server should close without replying; got {rest!r}",
            )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("helper_protocols")
