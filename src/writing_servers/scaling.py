"""Tools for notebook 9 ("How far does it scale"): a crowd of chat clients, and a chat with a thread per client.

* :class:`ChatCrowd` holds hundreds of chat connections from one thread (a
  selector, so the crowd itself costs no threads), joins each under a name,
  and measures how long one message takes to reach everyone else.
* :class:`ThreadPerClientChat` is the same chat written the other classic
  way: :mod:`socketserver` with one thread per connection, blocking reads,
  and a lock around the shared table of users.  It is what the reactor is
  compared with.
* :func:`raise_open_file_limit` lifts this process's soft limit on open
  files (``ulimit -n``) as far as the hard limit allows, because every
  connection is a file descriptor, twice over when both ends live here.

Everything listens and connects on 127.0.0.1 only, and every wait is bounded.

:func:`main` serves notebook 8's chat for many clients, after raising the
open-file limit: ``python -m writing_servers.scaling --port 8000``.
"""

from __future__ import annotations

import contextlib
import itertools
import resource
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from writing_servers.chat import ChatFactory
from writing_servers.programs import run_server, server_arguments

__all__ = ["ChatCrowd", "ThreadPerClientChat", "main", "raise_open_file_limit"]

DEFAULT_TIMEOUT = 30.0


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft limit on open files to *wanted* if the hard limit allows; return the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


class _Member:
    """One connection of the crowd: its socket and the bytes read but not yet used."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.buffer = b""


class ChatCrowd:
    """Many chat clients on one selector; use as a context manager so every socket is closed."""

    def __init__(self, address: tuple[str, int], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self.members: list[_Member] = []
        self._selector = selectors.DefaultSelector()
        self._names = (f"user{number}" for number in itertools.count(1))
        self._message_ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.members)

    def grow_to(self, size: int, progress: bool = False) -> None:
        """Connect and name new members until there are *size*, with a progress bar if asked."""
        steps: Iterable[int] = range(len(self.members), size)
        if progress and size > len(self.members):
            from tqdm import tqdm  # type: ignore[import-untyped]  # the lab extra; only progress bars need it

            tqdm.monitor_interval = 0  # no monitor thread: it would outlive the crowd
            # On stdout: a notebook shows stderr as if something went wrong.
            steps = tqdm(steps, desc=f"connecting {size} clients", unit="client", file=sys.stdout)
        for _ in steps:
            self._join(next(self._names))

    def _join(self, name: str) -> None:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        member = _Member(sock, name)
        try:
            self._expect(member, b"What's your name?\r\n")
            sock.sendall(name.encode() + b"\r\n")
            self._expect(member, f"Welcome, {name}!\r\n".encode())
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, member)
        self.members.append(member)

    def _expect(self, member: _Member, line: bytes) -> None:
        """Read one line, blocking (the socket's timeout bounds it), and check it is *line*."""
        while b"\n" not in member.buffer:
            data = member.sock.recv(4096)
            if not data:
                raise ConnectionError(f"{member.name}: the server hung up; it had sent {member.buffer!r}")
            member.buffer += data
        got, _, member.buffer = member.buffer.partition(b"\n")
        got += b"\n"
        if got != line:
            raise ConnectionError(f"{member.name}: expected {line!r}, got {got!r}")

    def broadcast_latency(self) -> float:
        """Seconds from the first member sending one line until every other member has read it."""
        if len(self.members) < 2:
            raise ValueError("a broadcast needs at least two members")
        sender, *others = self.members
        marker = f"m{next(self._message_ids)}"
        expected = f"<{sender.name}> {marker}\r\n".encode()
        waiting = {id(member) for member in others}
        started = time.perf_counter()
        sender.sock.sendall(marker.encode() + b"\r\n")
        deadline = time.monotonic() + self.timeout
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} of {len(others)} members did not get {marker} in time")
            for key, _ in self._selector.select(timeout=1.0):
                member: _Member = key.data
                member.buffer += member.sock.recv(65536)
                while b"\n" in member.buffer:
                    line, _, member.buffer = member.buffer.partition(b"\n")
                    if line + b"\n" == expected:
                        waiting.discard(id(member))
        return time.perf_counter() - started

    def close(self) -> None:
        """Close every connection of the crowd."""
        for member in self.members:
            self._selector.unregister(member.sock)
            member.sock.close()
        self.members.clear()
        self._selector.close()

    def __enter__(self) -> ChatCrowd:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _ChatHandler(socketserver.StreamRequestHandler):
    """One thread per connection: ask for a name, then pass each line to everyone else."""

    server: _ThreadedChatServer

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections.add(self)
        try:
            self.converse()
        finally:
            with self.server.lock:
                self.server.connections.discard(self)

    def converse(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_line("What's your name?")
        name = None
        while name is None:
            line = self.rfile.readline(1025)
            if not line:
                return
            candidate = line.decode("utf-8", "replace").strip()
            with self.server.lock:
                if candidate and candidate not in self.server.users:
                    name = candidate
                    self.server.users[name] = self
            if name is None:
                self.send_line("Name taken, please choose another.")
        self.send_line(f"Welcome, {name}!")
        try:
            while line := self.rfile.readline(1025):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.strip():
                    self.server.broadcast(f"<{name}> {text}", sender=self)
        finally:
            with self.server.lock:
                del self.server.users[name]

    def send_line(self, text: str) -> None:
        with contextlib.suppress(OSError):  # a peer that left; its own thread notices and ends
            self.request.sendall(text.encode() + b"\r\n")


class _ThreadedChatServer(socketserver.ThreadingTCPServer):
    # Not daemon threads: server_close() then joins every connection's thread.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _ChatHandler)
        self.lock = threading.Lock()
        self.users: dict[str, _ChatHandler] = {}
        self.connections: set[_ChatHandler] = set()

    def broadcast(self, text: str, sender: _ChatHandler) -> None:
        with self.lock:
            recipients = [handler for handler in self.users.values() if handler is not sender]
        for handler in recipients:
            handler.send_line(text)


class ThreadPerClientChat:
    """The chat as :mod:`socketserver` serves it: a thread per connection.  Listens on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._server = _ThreadedChatServer(("127.0.0.1", port))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="socketserver-chat", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def users(self) -> list[str]:
        with self._server.lock:
            return sorted(self._server.users)

    def threads(self) -> int:
        """Threads this process runs right now: one per connection while the crowd is here."""
        return threading.active_count()

    def stop(self) -> None:
        """Stop accepting, hang up every connection and wait (bounded) for their threads to end."""
        self._server.shutdown()  # serve_forever returns: no new connections
        self._thread.join(DEFAULT_TIMEOUT)
        with self._server.lock:
            handlers = list(self._server.connections)
        for handler in handlers:  # each blocked readline returns b"", so each thread ends
            with contextlib.suppress(OSError):
                handler.request.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # closes the listening socket and joins the connections' threads

    def __enter__(self) -> ThreadPerClientChat:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the chat with room for ``--clients`` connections; return the exit status.

    ``--port 0`` asks the system for any free port; the line printed once
    listening says which one it got.
    """
    parser = server_arguments("Notebook 8's chat, with the open-file limit raised for many clients.")
    parser.add_argument("--clients", type=int, default=10_000, help="connections to make room for")
    args = parser.parse_args(argv)
    limit = raise_open_file_limit(args.clients + 100)  # and a few for the program itself
    if limit < args.clients + 100:
        print(
            f"Room for only {limit - 100} clients: the hard limit (ulimit -Hn) is {limit}.", file=sys.stderr
        )
    return run_server(ChatFactory(), "Chat", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
