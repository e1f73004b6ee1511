"""Checks for notebook 4's exercises."""

from __future__ import annotations

from twisted.internet.protocol import Factory
from twisted.protocols.basic import NetstringReceiver

from .. import lab
from ..clients import Client, ClientError, ConnectionEnded
from . import Report, checked_server, client_of
from ._solutions import solution_for

# -- Exercise 1 ---------------------------------------------------------------------

NEW_QUESTION, NEW_ANSWER = b"What is Twisted?", b"An event-driven networking engine"
DEFAULT_ANSWER = "I don't know what you mean"


def _parent_answers(protocol: type) -> dict[object, object] | None:
    """The ``answers`` of the BytesAnswer that *protocol* extends (the notebook's or the module's)."""
    parent = next((base for base in protocol.__mro__[1:] if base.__name__ == "BytesAnswer"), None)
    answers = getattr(parent, "answers", None)
    return answers if isinstance(answers, dict) else None


def _answers_line(protocol: type) -> str | None:
    """The ✗ line for a table of answers built wrong, or None: these mistakes are clearer here than on the wire."""
    answers = getattr(protocol, "answers", None)
    if not isinstance(answers, dict):
        return None
    text_key = next((key for key in answers if isinstance(key, str)), None)
    if text_key is not None:
        return (
            f"answers has the key {text_key!r} as text (str): a line arrives as bytes, so write b{text_key!r}"
        )
    text_answer = next((key for key, value in answers.items() if isinstance(value, str)), None)
    if text_answer is not None:
        return f"the answer to {text_answer!r} is text (str): sendLine sends bytes, so write b{answers[text_answer]!r}"
    parent = _parent_answers(protocol)
    if parent is None:
        return None
    if NEW_QUESTION in parent:
        return (
            f"BytesAnswer.answers itself now has {NEW_QUESTION!r}: give MoreAnswers a dict of its own, "
            "{**BytesAnswer.answers, ...}, and BytesAnswer stays as it was"
        )
    lost = [key for key in parent if key not in answers]
    if lost:
        return (
            f"answers lost BytesAnswer's entries {', '.join(repr(key) for key in lost)}: "
            "start from {**BytesAnswer.answers, ...}"
        )
    return None


def _ask(report: Report, client: Client, question: str, previous: str | None) -> str | None:
    """Send *question* and return the reply; None once a ✗ line says why there was none."""
    try:
        client.send_line(question)
        return client.read_line()
    except (ConnectionEnded, ConnectionError):
        after = f"after answering {previous!r}" if previous else "before answering anything"
        report.wrong(f"the server hung up {after}: hang up only after 'Bye'")
    except ClientError as error:
        report.wrong(str(error))
    return None


def _connection_events(server: lab.Server) -> list[str]:
    """The first connection's events, without their ``#1`` prefix."""
    return [event.removeprefix("#1 ") for event in server.trace.events() if event.startswith("#1 ")]


def check_more_answers(protocol: type) -> Report:
    """Exercise 1: a new answer, the old ones, and a goodbye that hangs up."""
    report = Report("MoreAnswers knows 'What is Twisted?' and hangs up after 'Bye'")
    wrong_table = _answers_line(protocol)
    if wrong_table is not None:
        report.wrong(wrong_table)
    with checked_server(report, Factory.forProtocol(protocol)) as server, client_of(server) as client:
        previous = None
        for question, expected in [
            (NEW_QUESTION.decode(), NEW_ANSWER.decode()),
            ("How are you?", "Fine"),
            ("Is it Tuesday?", DEFAULT_ANSWER),
        ]:
            reply = _ask(report, client, question, previous)
            if reply is None:
                return report
            report.expect(
                reply == expected,
                f"{question!r} is answered {expected!r}",
                f"{question!r} should be answered {expected!r}, got {reply!r}",
            )
            previous = question
        _check_goodbye(report, server, client)
    return report


def _check_goodbye(report: Report, server: lab.Server, client: Client) -> None:
    """'Bye' gets 'Goodbye!', written before loseConnection(), and then the connection ends."""
    before = len(client.transcript.received())
    client.send_line("Bye")
    try:
        reply: str | None = client.read_line()
    except ClientError:
        reply = None
    events = _connection_events(server)  # the reply's write and any hang-up came before the reply arrived
    if "abortConnection()" in events:
        report.wrong(
            "it hung up with abortConnection(), which throws away what is not sent yet: "
            "use self.transport.loseConnection()"
        )
        return
    if reply is None:
        arrived = client.transcript.received()[before:]
        report.wrong(
            f"'Bye' got {arrived!r} with no line ending: sendLine adds b'\\r\\n' for you"
            if arrived
            else "'Bye' got no reply: send b'Goodbye!' with self.sendLine"
        )
        return
    if not report.expect(
        reply == "Goodbye!",
        "'Bye' is answered 'Goodbye!'",
        f"'Bye' got {reply!r}, not 'Goodbye!'"
        + (": the line arrives as bytes, so compare it with b'Bye'" if reply == DEFAULT_ANSWER else ""),
    ):
        return
    try:
        rest: bytes | None = client.read_all()
    except ClientError:
        rest = None
    if not report.expect(
        client.ended == "eof" and not rest,
        "then the server closed the connection",
        "after 'Goodbye!' the connection stayed open: call self.transport.loseConnection()"
        if rest is None
        else f"after 'Goodbye!' the server should close; received {rest!r} ({client.ended})",
    ):
        return
    closed = events.index("loseConnection()") if "loseConnection()" in events else len(events)
    late = [event for event in events[closed:] if event.startswith("write(")]
    report.expect(
        not late,
        "it wrote 'Goodbye!' before loseConnection()",
        f"it called {late[0]} after loseConnection(): write first, then hang up (a write after "
        "loseConnection is not always sent: over TLS it is dropped)"
        if late
        else "",
    )


# -- Exercise 2 ---------------------------------------------------------------------


def _reply_line(client: Client, text: str, ending: bytes) -> bytes | None:
    """Send *text* with *ending*; return the raw reply line, or None if none came."""
    client.send_line(text, ending=ending)
    try:
        return client.read_until(b"\n")
    except ClientError:
        return None


def _content(raw: bytes) -> bytes:
    return raw.removesuffix(b"\n").removesuffix(b"\r")


def _no_reply(client: Client, sent: str, how: str) -> str:
    """The ✗ line for a line that got no whole reply line, saying what did arrive."""
    arrived = client.transcript.received()
    if arrived:
        return f"{how} {sent!r} got {arrived!r}, with no line ending: end each reply with b'\\r\\n'"
    return f"{how} {sent!r} got no reply"


def check_line_reverser(protocol: type) -> Report:
    """Exercise 2: each line comes back reversed, from CRLF and LF-only clients alike."""
    report = Report("LineReverser reverses lines from telnet (CRLF) and netcat (LF) clients")
    delimiter = getattr(protocol, "delimiter", b"\r\n")
    if not isinstance(delimiter, bytes):
        report.wrong(f"delimiter is {delimiter!r}, text: LineReceiver splits bytes, so write b{delimiter!r}")
        return report
    with checked_server(report, Factory.forProtocol(protocol)) as server:
        with client_of(server) as telnet:
            raw = _reply_line(telnet, "hello", b"\r\n")
            if raw is None:
                report.wrong(_no_reply(telnet, "hello", "a CRLF line"))
                return report
            report.expect(
                _content(raw) == b"olleh",
                "a CRLF line 'hello' comes back 'olleh'",
                f"a CRLF line 'hello' came back {raw!r}: the CR of its line ending was reversed to the front "
                "— remove it first, line.removesuffix(b'\\r')"
                if raw.startswith(b"\r")
                else f"a CRLF line 'hello' should come back 'olleh'; got {raw!r}",
            )
            report.expect(
                raw.endswith(b"\r\n"),
                "the reply ends with CRLF",
                f"the reply {raw!r} ends with a bare LF: sendLine ends it with your delimiter; "
                "write it with self.transport.write(... + b'\\r\\n')"
                if raw.endswith(b"\n") and delimiter == b"\n"
                else f"replies should end with b'\\r\\n', as telnet expects; got {raw!r}",
            )
        with client_of(server) as netcat:
            raw = _reply_line(netcat, "stressed", b"\n")
            if raw is None:
                report.wrong(
                    "a line ending in a bare LF (as netcat sends) was never answered: LineReceiver is "
                    "still waiting for b'\\r\\n' — set delimiter = b'\\n'"
                    if delimiter == b"\r\n"
                    else _no_reply(netcat, "stressed", "an LF-only line")
                )
                return report
            report.expect(
                _content(raw) == b"desserts",
                "an LF-only line 'stressed' comes back 'desserts'",
                f"an LF-only line 'stressed' should come back 'desserts'; got {raw!r}",
            )
            raw = _reply_line(netcat, "grüße", b"\n")
            wanted = "eßürg".encode()
            report.expect(
                raw is not None and _content(raw) == wanted,
                "'grüße' comes back 'eßürg': the text is reversed, not its bytes",
                f"'grüße' came back {raw!r}: its bytes were reversed, which puts the two bytes of 'ü' and "
                "'ß' in the wrong order — decode, reverse the text, encode"
                if raw is not None and _content(raw) == "grüße".encode()[::-1]
                else f"'grüße' should come back 'eßürg' ({wanted!r}); got {raw!r}",
            )
    return report


# -- Exercise 3 ---------------------------------------------------------------------


def _netstring(payload: bytes) -> bytes:
    return b"%d:%b," % (len(payload), payload)


#: What the check sends, one connection each: a message with a comma in it, two in one chunk, text
#: whose length in bytes (7) is not its length in characters (5), and the empty message.
NETSTRINGS = [b"5:hello,", b"3:abc,3:def,", b"11:hello,world,", _netstring("Grüße".encode()), b"0:,"]


def _echo_line(sent: bytes, received: bytes, ended: str | None) -> str:
    """The ✗ line for a netstring that did not come back as sent, naming the likely cause."""
    payload = sent.partition(b":")[2][:-1]
    text = payload.decode("utf-8", "replace")
    if received and received == payload:
        return (
            f"sent {sent!r}, got {received!r} back without its framing: stringReceived gets the message "
            "alone, so send it back with self.sendString"
        )
    if received == _netstring(sent):
        return f"sent {sent!r}, got {received!r}: framed twice — sendString adds the length and comma itself"
    if len(text) != len(payload) and received == b"%d:%b," % (len(text), payload):
        return (
            f"sent {sent!r}, got {received!r}: its length counts {len(text)} characters, but a netstring "
            f"counts bytes ({len(payload)}) — sendString counts them for you"
        )
    how = f", then the connection ended ({ended})" if ended else ""
    return f"sent {sent!r}, expected the same bytes back; received {received!r}{how}"


def check_netstring_echo(protocol: type) -> Report:
    """Exercise 3: netstrings come back as netstrings; a malformed one ends the connection."""
    report = Report("NetstringEcho sends each netstring back")
    with checked_server(report, Factory.forProtocol(protocol)) as server:
        for sent in NETSTRINGS:
            with client_of(server) as client:
                client.send(sent)
                try:
                    echoed = client.read_until(sent) == sent
                except ClientError:
                    echoed = False
                if not echoed:
                    report.wrong(_echo_line(sent, client.transcript.received(), client.ended))
                    return report
                report.ok(f"sent {sent!r}, got {sent!r} back")
        with client_of(server) as client:
            client.send(b"hello,")
            try:
                rest: bytes | None = client.read_all()
            except ClientError:
                rest = None
            own_framing = getattr(protocol, "dataReceived", None) is not NetstringReceiver.dataReceived
            report.expect(
                client.ended in ("eof", "reset") and not rest,
                "a malformed netstring (b'hello,') makes the server close the connection",
                f"after b'hello,', which is not a netstring, the connection stayed open (received "
                f"{client.transcript.received()!r})"
                + (
                    ": your dataReceived replaces NetstringReceiver's, which would close it"
                    if own_framing
                    else ""
                )
                if rest is None
                else f"after b'hello,' the server should close without replying; got {rest!r}",
            )
    return report


#: ``solution(n)``: exercise *n* of this notebook, solved, and why it works.
solution = solution_for("helper_protocols")
