"""Notebook 9 (How Far Does It Scale? One thread, a thousand connections) as a program: serve the chat with room for ``--clients`` connections.

A program of the writing-servers course that needs only Twisted (pip install twisted).
Run it with `python crowded_chat.py`; `--help` lists its options.

Written from writing_servers.scaling by tools/sync_notebooks.py: change the module, not this file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHalfCloseableProtocol,
    IListeningPort,
    IPushProducer,
    ITCPTransport,
    ITransport,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer


@implementer(IHalfCloseableProtocol)
class HalfCloseLineReceiver(LineReceiver):
    """A LineReceiver for which a peer's EOF ends its input, not the conversation.

    ``nc -N`` and ``shutdown(SHUT_WR)`` send EOF after the last line while
    still listening.  Declaring IHalfCloseableProtocol makes Twisted call
    :meth:`readConnectionLost` then, instead of dropping the connection and
    any reply not yet sent: a last line without its ending still counts,
    and the connection closes once everything queued is sent.
    """

    def readConnectionLost(self) -> None:
        last = self.clearLineBuffer()
        if last and not self.transport.disconnecting:
            self.lineReceived(last)  # a last line without its line ending
        self.transport.loseConnection()  # once every reply is sent

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()


@implementer(IPushProducer)
class TextLineReceiver(HalfCloseLineReceiver):
    """Lines of UTF-8 text, ended by CRLF (telnet) or a bare LF (netcat); replies end in CRLF.

    Subclasses override :meth:`text_received` and reply with :meth:`send_text`.
    Every line server of the course inherits these answers to bad peers:

    * a line longer than ``MAX_LENGTH``: an error line, then the connection closes;
    * a line that is not UTF-8: an error line; the connection stays open;
    * a peer that half-closes (EOF after its last line, as ``nc -N`` sends):
      its last line is answered even without a line ending, every reply is
      sent, and then the connection closes;
    * a peer that stops reading: Twisted's send buffer for it has no limit
      of its own, but once it holds more than ``bufferSize`` (64 KiB) Twisted
      calls :meth:`pauseProducing`, and we stop reading the peer's requests
      until Twisted has sent it everything (:meth:`resumeProducing`).  Text
      that others send it (chat messages) is still written; past
      ``MAX_UNSENT`` more bytes the connection is aborted, so one stalled
      peer can hold only a bounded amount of the server's memory.
    """

    delimiter = b"\n"  # split on LF alone; a CR before it is stripped below
    MAX_LENGTH = 1024  # bytes per line, not counting the LF; bounds what a client can make us buffer
    # Bytes we may still write to a peer after pauseProducing: Twisted's buffer is unbounded and
    # only signals at 64 KiB, so this is the bound.  Large enough that a burst (200 people each
    # saying 1,000 bytes at once) never cuts off a peer that is keeping up; small enough that a
    # thousand stalled peers cost about a gigabyte at worst.
    MAX_UNSENT = 1024 * 1024
    log = Logger()

    def makeConnection(self, transport: ITransport) -> None:
        self._unsent: int | None = None  # bytes queued since the peer fell behind; None: it keeps up
        self._dropped = False
        # As a registered producer we hear from Twisted when this peer stops reading.
        IConsumer(transport).registerProducer(self, True)
        super().makeConnection(transport)

    def lineReceived(self, line: bytes) -> None:
        line = line.removesuffix(b"\r")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            # Policy: refuse the line, say why, keep the connection.
            self.send_error("that line is not UTF-8 text")
            return
        self.text_received(text)

    def text_received(self, text: str) -> None:
        """Called with each line, decoded, without its line ending."""
        raise NotImplementedError

    def send_text(self, text: str) -> None:
        """Send *text* as one UTF-8 line ending in CRLF, as the Internet's line protocols do."""
        self.send_bytes(text.encode("utf-8") + b"\r\n")

    def send_error(self, reason: str) -> None:
        """Tell the peer what was wrong with its input; a protocol with its own format overrides this."""
        self.send_text(f"Error: {reason}")

    def send_bytes(self, data: bytes) -> None:
        """Send *data*, whole lines already encoded, unless this peer has fallen too far behind."""
        if self._unsent is not None:
            self._unsent += len(data)
            if self._unsent > self.MAX_UNSENT:
                self.drop_slow_reader()
                return
        self.transport.write(data)

    def drop_slow_reader(self) -> None:
        """Abort a connection whose peer stopped reading: waiting for it would cost unbounded memory."""
        if not self._dropped:
            self._dropped = True
            self.log.warn(
                "{who} stopped reading: more than {limit} bytes waiting for it; connection aborted",
                who=self.peer_description(),
                limit=self.MAX_UNSENT,
            )
            self.transport.abortConnection()  # loseConnection would wait for it to read everything

    def peer_description(self) -> str:
        """Who is at the other end, for the server log."""
        return "a client"

    def lineLengthExceeded(self, line: bytes) -> None:
        self.send_error(f"line longer than {self.MAX_LENGTH} bytes; closing the connection")
        self.transport.loseConnection()

    # IPushProducer: Twisted calls these as the peer falls behind reading and catches up.

    def pauseProducing(self) -> None:
        if self._unsent is None:
            self._unsent = 0
            super().pauseProducing()  # LineReceiver stops reading the peer's requests

    def resumeProducing(self) -> None:
        if self.transport.disconnecting:
            # Twisted holds a closing connection open while a producer is registered.
            self.transport.unregisterProducer()
            return
        self._unsent = None
        super().resumeProducing()

    def stopProducing(self) -> None:
        self.paused = True  # the connection is gone; nothing more to read


def visible(text: str) -> str:
    """*text* with every non-printable character spelled out, so that it cannot steer a terminal.

    C0 controls and DEL become caret notation, as ``cat -v`` shows them
    (ESC is ``^[``, CR is ``^M``, tab is ``^I``, DEL is ``^?``).  Other
    invisible characters (C1 controls, bidirectional overrides, zero-width
    spaces, line separators) become their code point, such as ``<U+202E>``.
    """
    shown = []
    for char in text:
        if char.isprintable():
            shown.append(char)
        elif char < " " or char == "\x7f":
            shown.append("^" + chr(ord(char) ^ 0x40))  # 0x1b -> "[", 0x0d -> "M", 0x7f -> "?"
        else:
            shown.append(f"<U+{ord(char):04X}>")
    return "".join(shown)


class ChatConnection(TextLineReceiver):
    """One person's connection: the shared users, a name once chosen, and a state."""

    def __init__(self, users: dict[str, ChatConnection]) -> None:
        self.users = users  # the factory's dict, shared by every connection
        self.name: str | None = None
        self.state = "GETNAME"

    def connectionMade(self) -> None:
        self.send_text("What's your name?")

    def connectionLost(self, reason: Failure) -> None:
        if self.name in self.users:
            del self.users[self.name]


class HowtoChat(ChatConnection):
    """The howto's state machine: a name first (GETNAME), then every line goes to the others (CHAT)."""

    def text_received(self, line: str) -> None:
        if self.state == "GETNAME":
            self.handle_GETNAME(line)
        else:
            self.handle_CHAT(line)

    def handle_GETNAME(self, name: str) -> None:
        if name in self.users:
            self.send_text("Name taken, please choose another.")
            return
        self.send_text(f"Welcome, {name}!")
        self.name = name
        self.users[name] = self
        self.state = "CHAT"

    def handle_CHAT(self, message: str) -> None:
        self.broadcast(f"<{self.name}> {message}")

    def broadcast(self, line: str) -> None:
        """Send *line* to everyone in the chat but this connection's user."""
        for protocol in self.users.values():
            if protocol is not self:
                protocol.send_text(line)


class HowtoChatFactory(Factory):
    """Builds one chat protocol per connection, every one sharing this factory's ``users``."""

    protocol = HowtoChat  # a subclass works too: factory.protocol = WhoChat

    def __init__(self) -> None:
        self.users: dict[str, ChatConnection] = {}  # maps each name to that person's connection

    def buildProtocol(self, addr: IAddress) -> ChatConnection:
        return self.protocol(self.users)


NAME = re.compile(r"[A-Za-z0-9_-]{1,20}")


NAME_RULE = "1 to 20 ASCII letters, digits, hyphens or underscores"


def name_problem(name: str, taken: Iterable[str]) -> str | None:
    """Why *name* cannot be used, as a reply to the person who chose it; ``None`` if it can.

    Names that differ only in case count as the same name: ``ALICE`` is
    taken while ``alice`` is here.
    """
    if not name:
        return f"Please type a name: {NAME_RULE}."
    if not NAME.fullmatch(name):
        return f"Sorry, a name is {NAME_RULE}. Please choose another."
    if name.casefold() in {other.casefold() for other in taken}:
        return "Name taken, please choose another."
    return None


class Chat(HowtoChat):
    """The course's chat: HowtoChat with a name rule, terminal-safe messages and a faster broadcast."""

    def connectionMade(self) -> None:
        if ITCPTransport.providedBy(self.transport):  # a real TCP connection, not a test's transport
            # Chat lines are small and someone waits for each: send them at once, no Nagle delay.
            self.transport.setTcpNoDelay(True)
        super().connectionMade()

    def connectionLost(self, reason: Failure) -> None:
        # Free the name only if this connection owns it; one that never chose a name owns nothing.
        if self.name is not None and self.users.get(self.name) is self:
            del self.users[self.name]

    def handle_GETNAME(self, name: str) -> None:
        name = name.strip()
        problem = name_problem(name, self.users)
        if problem is not None:
            self.send_text(problem)
            return  # still in GETNAME: the next line is another try
        super().handle_GETNAME(name)

    def handle_CHAT(self, message: str) -> None:
        if message.strip():  # an empty line is not worth sending to anyone
            super().handle_CHAT(visible(message))

    def broadcast(self, line: str) -> None:
        data = line.encode("utf-8") + b"\r\n"  # encoded once, however many people receive it
        for protocol in list(self.users.values()):  # a copy: the loop must not see the dict change
            if protocol is not self:
                protocol.send_bytes(data)

    def peer_description(self) -> str:
        return self.name if self.name is not None else "a client choosing a name"


class ChatFactory(HowtoChatFactory):
    """HowtoChatFactory for the course's :class:`Chat`: builds one per connection, all sharing ``users``."""

    protocol = Chat  # a subclass works too: factory.protocol = MyChat


def server_arguments(description: str, default_port: int = 8000) -> argparse.ArgumentParser:
    """A command line with ``--port`` (0 picks a free one) and ``--interface`` (loopback by default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--port", type=int, default=default_port, help="TCP port to listen on; 0 picks a free one"
    )
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on (default: loopback)")
    return parser


def run_server(factory: Factory[Any], name: str, port: int, interface: str) -> int:
    """Serve *factory* over TCP until interrupted; return the exit status.

    Prints one line once listening (with the real port, which matters for
    ``--port 0``), or one line on stderr and status 1 when it cannot listen.
    """
    from twisted.internet import reactor

    failures: list[Failure] = []

    def announce(listening_port: IListeningPort) -> None:
        address = listening_port.getHost()
        assert isinstance(address, IPv4Address)  # what a TCP4 endpoint's port is bound to
        print(f"Serving {name} on {address.host} port {address.port}; Ctrl-C stops it.", flush=True)

    def give_up(failure: Failure) -> None:
        failures.append(failure)
        print(f"Cannot listen: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        reactor.stop()

    def start_listening() -> None:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=interface)
        endpoint.listen(factory).addCallbacks(announce, give_up)

    # Listen once the reactor runs, so its Ctrl-C handler is in place before
    # "Serving ..." invites anyone to connect (or press Ctrl-C).
    reactor.callWhenRunning(start_listening)
    reactor.run()  # blocks until Ctrl-C, SIGTERM or reactor.stop()
    return 1 if failures else 0


SPARE_DESCRIPTORS = 64


SELECT_LIMIT = 512 if sys.platform == "win32" else 1024


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft limit on open files to *wanted* if the hard limit allows; return the limit now.

    Where there is no such limit (Windows), *wanted* fits: it is returned.
    """
    try:
        import resource
    except ImportError:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):  # macOS refuses more than kern.maxfilesperproc
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    return soft


def open_descriptors() -> int:
    """How many file descriptors this process has open now (0 where the system does not say: Windows)."""
    for folder in ("/proc/self/fd", "/dev/fd"):  # Linux; macOS and the BSDs
        with contextlib.suppress(OSError):
            return len(os.listdir(folder)) - 1  # listdir's own descriptor is listed too
    return 0


def select_limit() -> int | None:
    """How many descriptors Twisted's reactor in this process can watch, if it uses select(); else None.

    Twisted's default reactor is epoll on Linux, poll on other POSIX
    systems, and select on macOS and Windows.  The select reactor does not
    refuse a descriptor it cannot watch: select() rejects the whole set, and
    the reactor drops the connections it cannot pass ("bad descriptor", in
    its log only).  Imports the reactor, installing the default if none is.
    """
    from twisted.internet import reactor
    from twisted.internet.selectreactor import SelectReactor

    return SELECT_LIMIT if isinstance(reactor, SelectReactor) else None


@dataclass(frozen=True)
class Room:
    """How many of the *wanted* connections fit in this process, and why not all when they do not."""

    clients: int
    wanted: int
    reason: str = ""  # what limits it, when clients < wanted

    def __str__(self) -> str:
        if self.clients >= self.wanted:
            return f"Room for all {self.wanted} connections."
        return f"Room for {self.clients} of {self.wanted} connections: {self.reason}."


def room_for_clients(wanted: int) -> Room:
    """Make room for *wanted* more connections where the limits allow; say how many fit, and why.

    Each connection held by this process is one descriptor.  The soft limit
    is raised first; then only a low hard limit, or a reactor that watches
    descriptors with select(), makes the room smaller than *wanted*, leaving
    :data:`SPARE_DESCRIPTORS` free for everything else.
    """
    in_use = open_descriptors() + SPARE_DESCRIPTORS
    limit = raise_open_file_limit(in_use + wanted)
    room = Room(
        max(0, min(wanted, limit - in_use)), wanted, f"the hard limit on open files (ulimit -Hn) is {limit}"
    )
    watchable = select_limit()
    if watchable is not None and watchable - in_use < room.clients:
        from twisted.internet import reactor

        if sys.platform == "win32":
            what_fails = f"takes at most {watchable} sockets at once on Windows; past that, nobody is served"
        else:
            what_fails = (
                f"cannot take descriptors numbered {watchable} or more; those connections are dropped"
            )
        room = Room(
            max(0, watchable - in_use),
            wanted,
            f"this reactor, {type(reactor).__name__}, watches sockets with select(), which {what_fails},"
            " without an error",
        )
    return room


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the chat with room for ``--clients`` connections; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Notebook 8's chat, with the open-file limit raised for many clients.")
    parser.add_argument("--clients", type=int, default=10_000, help="connections to make room for")
    args = parser.parse_args(argv)
    room = room_for_clients(args.clients)
    if room.clients < room.wanted:
        print(room, file=sys.stderr)
    return run_server(ChatFactory(), "Chat", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
