"""Helpers the protocol tests share: feed input in every split, connect to StringTransport."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport

#: The peer address a listening port would hand buildProtocol.
ADDR = IPv4Address("TCP", "127.0.0.1", 54321)
#: How a test feeds its input: in chunks of 1..9 bytes, in two halves, or whole.
CHUNKINGS: list[int | str] = [*range(1, 10), "halves", "whole"]


def chunks(data: bytes, chunking: int | str) -> Iterator[bytes]:
    """*data* split as *chunking* says; the pieces always join back to *data*."""
    if chunking == "whole":
        yield data
    elif chunking == "halves":
        middle = len(data) // 2
        yield data[:middle]
        yield data[middle:]
    else:
        assert isinstance(chunking, int)
        for start in range(0, len(data), chunking):
            yield data[start : start + chunking]


def connected(factory: Factory) -> tuple[Any, StringTransport]:
    """Build a protocol as a listening port would, and connect it to a fresh StringTransport."""
    protocol = factory.buildProtocol(ADDR)
    assert protocol is not None
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def feed(protocol: Protocol, data: bytes, chunking: int | str) -> None:
    """Deliver *data* to *protocol* in the pieces *chunking* names."""
    for piece in chunks(data, chunking):
        protocol.dataReceived(piece)


def first_wrong(report: Any) -> str:
    """What a student reads first in a failed check: its first ✗ line, without the mark."""
    assert not report.passed, repr(report)
    problem: str = report.first_problem
    return problem
