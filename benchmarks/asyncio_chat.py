"""The alternative: the course's chat written with asyncio streams, behaving the same way.

Same conversation as :mod:`writing_servers.chat` (and its ``TextLineReceiver``):

* "What's your name?" on connecting; a name follows the course's rule
  (``name_problem``), otherwise the reply says why and the next line is
  another try; then "Welcome, NAME!";
* each non-blank line goes to everyone else as ``<NAME> text``, control
  characters spelled out (``visible``), the line encoded once for all;
* lines end in LF, a CR before it is dropped; replies end in CRLF; a line
  that is not UTF-8 is refused with an error line; a line longer than
  ``MAX_LENGTH`` bytes gets an error line, then the connection closes;
* a peer that half-closes has its last line answered, then the connection
  closes once every reply is out;
* a peer that stops reading is not read from until it catches up
  (``drain``), and once more than the transport's high-water mark plus
  ``MAX_UNSENT`` bytes wait for it, its connection is reset, as Twisted's
  ``abortConnection`` does.

asyncio turns TCP_NODELAY on for every TCP connection by itself.  Run as a
script, it serves on a free loopback port, prints ``PORT <n>``, and stops
at the end of stdin.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys

import common

from writing_servers.chat import name_problem, visible
from writing_servers.helper_protocols import TextLineReceiver

MAX_LENGTH = TextLineReceiver.MAX_LENGTH
#: What may wait for one peer: asyncio's default high-water mark (Twisted's bufferSize is the same
#: 64 KiB) plus what the course's chat allows beyond it.
HIGH_WATER = 64 * 1024
MAX_UNSENT = getattr(TextLineReceiver, "MAX_UNSENT", 64 * 1024)
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, zero seconds


class Member:
    """One connection: its writer, and its name once it has one."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.transport = writer.transport
        self.name: str | None = None

    def send(self, data: bytes) -> None:
        """Queue *data* for this peer, unless it has fallen too far behind: then cut it off."""
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() + len(data) > HIGH_WATER + MAX_UNSENT:
            # As Twisted's abortConnection does: SO_LINGER 0, so that closing resets the connection
            # and the kernel drops what it still holds for this peer instead of trying to deliver it.
            self.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            self.transport.abort()
            return
        self.transport.write(data)

    def send_text(self, text: str) -> None:
        self.send(text.encode("utf-8") + b"\r\n")


class ChatServer:
    """The shared state: who is here, by name."""

    def __init__(self) -> None:
        self.users: dict[str, Member] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        member = Member(writer)
        member.send_text("What's your name?")
        try:
            while not member.transport.is_closing():
                await writer.drain()  # a peer that is not reading our replies waits here, unread
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as end:  # the peer half-closed (or left)
                    if end.partial:
                        self.line_received(member, end.partial)
                    break
                except asyncio.LimitOverrunError:
                    member.send_text(f"Error: line longer than {MAX_LENGTH} bytes; closing the connection")
                    break
                self.line_received(member, line[:-1])
            if not member.transport.is_closing():
                writer.close()  # after every queued reply
                await writer.wait_closed()
        except (ConnectionError, OSError):
            member.transport.abort()
        finally:
            if member.name is not None and self.users.get(member.name) is member:
                del self.users[member.name]

    def line_received(self, member: Member, line: bytes) -> None:
        try:
            text = line.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            member.send_text("Error: that line is not UTF-8 text")
            return
        if member.name is None:
            self.choose_name(member, text.strip())
        elif text.strip():
            self.broadcast(member, f"<{member.name}> {visible(text)}")

    def choose_name(self, member: Member, name: str) -> None:
        problem = name_problem(name, self.users)
        if problem is not None:
            member.send_text(problem)
            return
        member.send_text(f"Welcome, {name}!")
        member.name = name
        self.users[name] = member

    def broadcast(self, sender: Member, text: str) -> None:
        data = text.encode("utf-8") + b"\r\n"
        for member in list(self.users.values()):
            if member is not sender:
                member.send(data)


async def main() -> None:
    common.raise_fd_limit(4096)
    chat = ChatServer()
    server = await asyncio.start_server(chat.serve, common.LOOPBACK, 0, limit=MAX_LENGTH)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    asyncio.run(main())
