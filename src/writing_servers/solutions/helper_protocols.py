"""Solutions to notebook 4's exercises."""

from typing import ClassVar

from twisted.protocols.basic import LineReceiver, NetstringReceiver

from writing_servers.helper_protocols import BytesAnswer


class MoreAnswers(BytesAnswer):
    """BytesAnswer, plus one more question, and 'Bye' hangs up."""

    answers: ClassVar[dict[bytes | None, bytes]] = {
        **BytesAnswer.answers,
        b"What is Twisted?": b"An event-driven networking engine",
    }

    def lineReceived(self, line: bytes) -> None:
        if line == b"Bye":
            self.sendLine(b"Goodbye!")
            self.transport.loseConnection()  # the goodbye is still sent first
        else:
            super().lineReceived(line)


class LineReverser(LineReceiver):
    """Reverse each line, for CRLF and LF-only clients; reply with CRLF."""

    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        text = line.removesuffix(b"\r").decode("utf-8", errors="replace")
        # sendLine would end the reply with our delimiter, a bare LF; telnet expects CRLF.
        self.transport.write(text[::-1].encode("utf-8") + b"\r\n")


class NetstringEcho(NetstringReceiver):
    """Send every netstring back; NetstringReceiver closes on a malformed one by itself."""

    def stringReceived(self, string: bytes) -> None:
        self.sendString(string)


EXERCISES = {1: (MoreAnswers,), 2: (LineReverser,), 3: (NetstringEcho,)}

WHY = {
    1: "{**BytesAnswer.answers, ...} copies the parent's table and adds one bytes key, so BytesAnswer stays "
    "as it was; 'Bye' is behaviour, so lineReceived writes the goodbye first, then calls loseConnection(), "
    "which closes only once everything written is sent.",
    2: "delimiter = b'\\n' cuts lines at the LF that both clients send, removesuffix(b'\\r') drops telnet's "
    "CR, and reversing the decoded text keeps each character's UTF-8 bytes in order; transport.write adds "
    "the CR LF that sendLine, with a bare LF delimiter, would not.",
    3: "NetstringReceiver's own dataReceived does the framing: stringReceived gets the message alone, and "
    "sendString adds its length in bytes and the comma; on a malformed netstring NetstringReceiver closes "
    "the connection by itself.",
}
