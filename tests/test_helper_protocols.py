"""The helper-protocol servers: framing tested with StringTransport, then over loopback."""

from __future__ import annotations

import struct

import pytest
from support import CHUNKINGS, chunks, connected
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport

from writing_servers import lab
from writing_servers.clients import ReadTimeout, connect
from writing_servers.helper_protocols import (
    Answer,
    BytesAnswer,
    BytesUpload,
    ForgetfulUpload,
    Int32Answer,
    NetstringAnswer,
    TextLineReceiver,
    Upload,
    answer_bytes,
)

#: How a test feeds its input: in chunks of 1..9 bytes, in two halves, or whole.
FINE = b"Fine\r\n"
UNKNOWN = b"I don't know what you mean\r\n"
NOT_UTF8 = b"Error: that line is not UTF-8 text\r\n"
TOO_LONG = b"Error: line longer than 1024 bytes; closing the connection\r\n"


def fed(protocol_class: type[Protocol], data: bytes, chunking: int | str = "whole") -> StringTransport:
    """Feed *data* to a new protocol in chunks; return its transport.

    Feeding stops once the protocol has asked to close, as a real TCP
    transport stops reading after ``loseConnection``.
    """
    protocol, transport = connected(Factory.forProtocol(protocol_class))
    for piece in chunks(data, chunking):
        if transport.disconnecting:
            break
        protocol.dataReceived(piece)
    return transport


# -- BytesAnswer: plain LineReceiver, CRLF only ------------------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_bytes_answer_answers_crlf_lines(chunking: int | str) -> None:
    """Each CRLF line gets its answer, however the bytes were chunked."""
    transport = fed(BytesAnswer, b"How are you?\r\nWhat?\r\nHow are you?\r\n", chunking)
    assert transport.value() == FINE + UNKNOWN + FINE
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_bytes_answer_never_sees_an_lf_only_line(chunking: int | str) -> None:
    """A line ending in a bare LF is not a line to LineReceiver: nothing is answered, all is buffered."""
    protocol, transport = connected(Factory.forProtocol(BytesAnswer))
    for piece in chunks(b"How are you?\nHow are you?\n", chunking):
        protocol.dataReceived(piece)
    assert transport.value() == b""
    assert protocol.clearLineBuffer() == b"How are you?\nHow are you?\n"  # type: ignore[attr-defined]


def test_bytes_answer_drops_an_overlong_line() -> None:
    """By default a line over MAX_LENGTH (16384) closes the connection without a word."""
    transport = fed(BytesAnswer, b"x" * 16385 + b"\r\n")
    assert transport.value() == b""
    assert transport.disconnecting


def test_bytes_answer_accepts_a_line_of_max_length() -> None:
    """A line of exactly MAX_LENGTH bytes is still a line."""
    transport = fed(BytesAnswer, b"x" * 16384 + b"\r\n")
    assert transport.value() == UNKNOWN
    assert not transport.disconnecting


# -- TextLineReceiver and Answer --------------------------------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["CRLF", "LF"])
def test_answer_answers_lines_with_either_ending(chunking: int | str, ending: bytes) -> None:
    """Answer answers CRLF lines (telnet) and bare-LF lines (netcat) alike, replying with CRLF."""
    data = b"How are you?" + ending + b"What?" + ending
    transport = fed(Answer, data, chunking)
    assert transport.value() == FINE + UNKNOWN
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_answer_handles_mixed_endings_in_one_stream(chunking: int | str) -> None:
    """CRLF and LF lines may alternate on one connection."""
    transport = fed(Answer, b"How are you?\nHow are you?\r\nnope\n", chunking)
    assert transport.value() == FINE + FINE + UNKNOWN


def test_answer_delimiter_split_between_chunks() -> None:
    """A CRLF split between two dataReceived calls still ends exactly one line, without its CR."""
    protocol, transport = connected(Factory.forProtocol(Answer))
    protocol.dataReceived(b"How are you?\r")
    assert transport.value() == b""
    protocol.dataReceived(b"\nHow are")
    assert transport.value() == FINE
    protocol.dataReceived(b" you?\n")
    assert transport.value() == FINE + FINE


def test_answer_strips_only_one_cr() -> None:
    """Only the CR just before the LF belongs to the line ending; another CR is part of the text."""
    transport = fed(Answer, b"How are you?\r\r\n")
    assert transport.value() == UNKNOWN


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_answer_decodes_utf8_split_between_chunks(chunking: int | str) -> None:
    """A multi-byte character split between chunks is decoded whole: lines are decoded, not chunks."""
    received: list[str] = []

    class Recorder(TextLineReceiver):
        def text_received(self, text: str) -> None:
            received.append(text)

    fed(Recorder, "Grüße 🌍\r\nΚαλημέρα\n".encode(), chunking)
    assert received == ["Grüße 🌍", "Καλημέρα"]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_answer_refuses_invalid_utf8_and_keeps_going(chunking: int | str) -> None:
    """A line that is not UTF-8 gets an error reply; the connection stays open for the next line."""
    transport = fed(Answer, b"\xff\xfe\r\ncaf\xe9\nHow are you?\r\n", chunking)
    assert transport.value() == NOT_UTF8 + NOT_UTF8 + FINE
    assert not transport.disconnecting


def test_send_text_encodes_utf8_with_crlf() -> None:
    """send_text writes UTF-8 bytes and a CRLF."""
    protocol, transport = connected(Factory.forProtocol(Answer))
    protocol.send_text("Grüße")  # type: ignore[attr-defined]
    assert transport.value() == "Grüße\r\n".encode()


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_answer_accepts_a_line_of_max_length(chunking: int | str) -> None:
    """A line of exactly MAX_LENGTH (1024) bytes before its LF is answered."""
    transport = fed(Answer, b"x" * 1024 + b"\nHow are you?\n", chunking)
    assert transport.value() == UNKNOWN + FINE
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_answer_overlong_line_with_delimiter(chunking: int | str) -> None:
    """A complete line one byte over MAX_LENGTH gets an error line, then the server closes."""
    transport = fed(Answer, b"x" * 1025 + b"\nHow are you?\n", chunking)
    assert transport.value() == TOO_LONG
    assert transport.disconnecting


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_answer_overlong_line_without_delimiter(chunking: int | str) -> None:
    """A line that is still growing past MAX_LENGTH is refused before its end arrives."""
    transport = fed(Answer, b"x" * 1025, chunking)
    assert transport.value() == TOO_LONG
    assert transport.disconnecting


def test_answer_waits_below_the_limit() -> None:
    """An unfinished line of MAX_LENGTH bytes is kept waiting, not refused."""
    transport = fed(Answer, b"x" * 1024)
    assert transport.value() == b""
    assert not transport.disconnecting


# -- BytesUpload: the howto-sized raw mode ------------------------------------------------------

BYTES_UPLOADS = b"SEND 12\r\nhello\r\nworldSEND 2\r\nhi"
BYTES_UPLOAD_REPLIES = b"OK 12 bytes: b'hello\\r\\nworld'\r\nOK 2 bytes: b'hi'\r\n"


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_bytes_upload_switches_to_raw_and_back(chunking: int | str) -> None:
    """The 12 bytes after SEND 12 are one upload, CRLF included; the next line is a command again."""
    transport = fed(BytesUpload, BYTES_UPLOADS, chunking)
    assert transport.value() == BYTES_UPLOAD_REPLIES


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_bytes_upload_is_not_limited_by_max_length(chunking: int | str) -> None:
    """Raw mode ignores MAX_LENGTH: 999,999 bytes without a line ending are one upload."""
    transport = fed(
        BytesUpload, b"SEND 999999\r\n" + b"y" * 999_999 + b"SEND 1\r\nz", chunking if chunking != 1 else 4099
    )
    assert transport.value().endswith(b"OK 1 bytes: b'z'\r\n")
    assert transport.value().startswith(b"OK 999999 bytes: b'yyy")
    assert not transport.disconnecting


@pytest.mark.parametrize(
    "header",
    [
        b"SEND",
        b"SEND 0",
        b"SEND x",
        b"SEND -1",
        b"SEND +3",
        b"SEND 1000000",
        b"SEND " + b"9" * 5000,
        b"send 3",
    ],
)
def test_bytes_upload_refuses_bad_headers(header: bytes) -> None:
    """A header that is not SEND and 1 to 999,999 in decimal is refused, and the next line is read as a line."""
    transport = fed(BytesUpload, header + b"\r\nSEND 1\r\nz")
    assert transport.value() == b"Error: expected SEND <1 to 999999>\r\nOK 1 bytes: b'z'\r\n"


# -- Upload: lines and raw bytes ---------------------------------------------------------------

UPLOAD_AND_LINE = b"SEND 12\r\nhello\r\nworldTOTAL\r\n"
UPLOAD_REPLIES = b"OK 12 bytes: b'hello\\r\\nworld'\r\nTOTAL 12 bytes in 1 upload(s)\r\n"


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_upload_switches_to_raw_and_back(chunking: int | str) -> None:
    """The 12 bytes after SEND 12 are one upload, CRLF included; the next line is a command again."""
    transport = fed(Upload, UPLOAD_AND_LINE, chunking)
    assert transport.value() == UPLOAD_REPLIES


def test_upload_mode_switch_in_the_middle_of_one_chunk() -> None:
    """Header, raw bytes and the next line in one dataReceived: each part reaches the right handler."""
    protocol, transport = connected(Factory.forProtocol(Upload))
    protocol.dataReceived(UPLOAD_AND_LINE)
    assert transport.value() == UPLOAD_REPLIES
    assert protocol.uploads == [b"hello\r\nworld"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_upload_back_to_back_uploads(chunking: int | str) -> None:
    """Several uploads and commands in a row, with LF and CRLF headers, are all parsed in order."""
    data = b"SEND 2\nabSEND 3\r\n\n\r\nSEND 0\nTOTAL\n"
    transport = fed(Upload, data, chunking)
    assert transport.value() == (
        b"OK 2 bytes: b'ab'\r\nOK 3 bytes: b'\\n\\r\\n'\r\nOK 0 bytes: b''\r\nTOTAL 5 bytes in 3 upload(s)\r\n"
    )


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_upload_raw_data_is_not_limited_by_max_length(chunking: int | str) -> None:
    """Raw mode ignores MAX_LENGTH: a 5000-byte upload without newlines is accepted."""
    protocol, transport = connected(Factory.forProtocol(Upload))
    for piece in chunks(b"SEND 5000\r\n" + b"y" * 5000 + b"TOTAL\r\n", chunking if chunking != 1 else 97):
        protocol.dataReceived(piece)
    assert transport.value().endswith(b"TOTAL 5000 bytes in 1 upload(s)\r\n")
    assert protocol.uploads == [b"y" * 5000]  # type: ignore[attr-defined]
    assert not transport.disconnecting


@pytest.mark.parametrize(
    "header", [b"SEND", b"SEND x", b"SEND -1", b"SEND 1.5", b"SEND +3", b"SEND \xd9\xa3", b"send 3"]
)
def test_upload_rejects_bad_headers(header: bytes) -> None:
    """A header that is not SEND and a plain decimal count is refused, and the server stays in line mode."""
    transport = fed(Upload, header + b"\r\nTOTAL\r\n")
    assert transport.value() == (
        b"Error: expected SEND <number of bytes> or TOTAL\r\nTOTAL 0 bytes in 0 upload(s)\r\n"
    )


def test_upload_refuses_oversized_uploads() -> None:
    """An announced size over MAX_UPLOAD is refused before any raw byte is accepted."""
    transport = fed(Upload, b"SEND 1000001\r\nTOTAL\r\n")
    assert transport.value() == b"Error: at most 1000000 bytes per upload\r\nTOTAL 0 bytes in 0 upload(s)\r\n"


def test_forgetful_upload_loses_what_follows_in_the_same_chunk() -> None:
    """Without setLineMode(rest), the line sent in the same chunk as the upload's end is lost."""
    transport = fed(ForgetfulUpload, UPLOAD_AND_LINE)
    assert transport.value() == b"OK 12 bytes: b'hello\\r\\nworld'\r\n"


def test_forgetful_upload_works_when_chunks_happen_to_align() -> None:
    """The same bug stays hidden when the upload ends exactly at a chunk boundary."""
    protocol, transport = connected(Factory.forProtocol(ForgetfulUpload))
    protocol.dataReceived(b"SEND 12\r\nhello\r\nworld")
    protocol.dataReceived(b"TOTAL\r\n")
    assert transport.value() == UPLOAD_REPLIES


# -- netstrings and 32-bit length prefixes -----------------------------------------------------


def test_answer_bytes_policy() -> None:
    """answer_bytes gives BytesAnswer's answers: any other bytes, UTF-8 or not, get the shrug."""
    assert answer_bytes(b"How are you?") == b"Fine"
    assert answer_bytes("Grüße".encode()) == b"I don't know what you mean"
    assert answer_bytes(b"\xff") == b"I don't know what you mean"


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_netstring_answer_frames_each_answer(chunking: int | str) -> None:
    """Each netstring question gets a netstring answer, however the bytes were chunked."""
    transport = fed(NetstringAnswer, b"12:How are you?,0:,12:How are you?,", chunking)
    assert transport.value() == b"4:Fine,26:I don't know what you mean,4:Fine,"
    assert not transport.disconnecting


@pytest.mark.parametrize(
    "frame",
    [b"abc:hello,", b"5:hello;", b"-1:,", b"05:hello,", b"100000:", b"12345678901234567890:"],
    ids=["not-a-number", "no-comma", "negative", "leading-zero", "over-max", "huge-length"],
)
@pytest.mark.parametrize("chunking", [1, "whole"])
def test_netstring_answer_drops_a_malformed_frame(frame: bytes, chunking: int | str) -> None:
    """A malformed netstring closes the connection (brokenPeer is set); earlier frames were answered."""
    protocol, transport = connected(Factory.forProtocol(NetstringAnswer))
    for piece in chunks(b"12:How are you?," + frame + b"12:How are you?,", chunking):
        if transport.disconnecting:
            break
        protocol.dataReceived(piece)
    assert transport.value() == b"4:Fine,"
    assert transport.disconnecting
    assert protocol.brokenPeer  # type: ignore[attr-defined]


def frame32(message: bytes) -> bytes:
    return struct.pack(">I", len(message)) + message


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_int32_answer_frames_each_answer(chunking: int | str) -> None:
    """Each length-prefixed question gets a length-prefixed answer, however the bytes were chunked."""
    data = frame32(b"How are you?") + frame32(b"") + frame32(b"How are you?")
    transport = fed(Int32Answer, data, chunking)
    assert transport.value() == frame32(b"Fine") + frame32(b"I don't know what you mean") + frame32(b"Fine")
    assert not transport.disconnecting


@pytest.mark.parametrize("chunking", [1, 3, "whole"])
def test_int32_answer_refuses_a_length_over_max(chunking: int | str) -> None:
    """A declared length over MAX_LENGTH gets a framed error and a close, before any payload arrives."""
    error = b"Error: 100000 bytes is over the limit of 99999; closing"
    transport = fed(Int32Answer, frame32(b"How are you?") + struct.pack(">I", 100_000), chunking)
    assert transport.value() == frame32(b"Fine") + frame32(error)
    assert transport.disconnecting


def test_int32_answer_accepts_max_length() -> None:
    """A message of exactly MAX_LENGTH bytes is a message."""
    transport = fed(Int32Answer, frame32(b"x" * 99_999))
    assert transport.value() == frame32(b"I don't know what you mean")


# -- over loopback -------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["telnet-CRLF", "netcat-LF"])
def test_answer_over_loopback(ending: bytes) -> None:
    """A real client gets Answer's replies, ending in CRLF, whichever line ending it sends."""
    server = lab.listen(Factory.forProtocol(Answer), name="test-answer")
    with connect(server, timeout=5) as client:
        client.send_line("How are you?", ending=ending)
        client.send_line("Grüße", ending=ending)
        assert client.read_until(b"\n") == FINE
        assert client.read_until(b"\n") == UNKNOWN


def test_bytes_answer_over_loopback_ignores_lf_clients() -> None:
    """A netcat-style client waits in vain on BytesAnswer; a telnet-style one is answered."""
    server = lab.listen(Factory.forProtocol(BytesAnswer), name="test-bytes-answer")
    with connect(server, timeout=5) as netcat, connect(server, timeout=5) as telnet:
        netcat.send_line("How are you?", ending=b"\n")
        telnet.send_line("How are you?")
        assert telnet.read_line() == "Fine"
        with pytest.raises(ReadTimeout):
            netcat.read_line(timeout=0.3)


def test_answer_over_loopback_closes_on_an_overlong_line() -> None:
    """Over a real socket, an overlong line gets the error line and then an orderly close."""
    server = lab.listen(Factory.forProtocol(Answer), name="test-answer-long")
    with connect(server, timeout=5) as client:
        client.send(b"x" * 2000 + b"\r\n")
        assert client.read_all() == TOO_LONG
        assert client.ended == "eof"


def test_upload_over_loopback_in_one_send() -> None:
    """Header, raw bytes and the next command in one send are answered like separate ones."""
    server = lab.listen(Factory.forProtocol(Upload), name="test-upload")
    with connect(server, timeout=5) as client:
        client.send(UPLOAD_AND_LINE)
        assert client.read_until(b"upload(s)\r\n") == UPLOAD_REPLIES


def test_netstring_and_int32_over_loopback() -> None:
    """Both framings answer over a real socket, and a malformed netstring ends its connection."""
    netstrings = lab.listen(Factory.forProtocol(NetstringAnswer), name="test-netstring")
    int32 = lab.listen(Factory.forProtocol(Int32Answer), name="test-int32")
    with connect(netstrings, timeout=5) as client:
        client.send(b"12:How are you?,")
        assert client.read_until(b",") == b"4:Fine,"
        client.send(b"hello")
        assert client.read_all() == b""
        assert client.ended == "eof"
    with connect(int32, timeout=5) as client:
        client.send(frame32(b"How are you?"))
        assert client.read_until(b"Fine") == frame32(b"Fine")
