"""Tools for notebook 9 ("How far does it scale"): a crowd of chat clients, and a chat with a thread per client.

* :class:`ChatCrowd` holds hundreds of chat connections from one thread (a
  selector, so the crowd itself costs no threads), joins each under a name,
  and measures how long one message takes to reach everyone else.
* :class:`CrowdProcess` runs a ChatCrowd in a child process, so that the
  crowd's reading never competes with the server for this process's CPU
  and GIL: what this process measures is the server.
* :func:`measure` grows a crowd step by step and records, at each size, one
  line's trip to everyone, the server's CPU time per broadcast and its
  memory per idle connection.
* :class:`ThreadPerClientChat` is the same chat written the other classic
  way: :mod:`socketserver` with one thread per connection, blocking reads,
  and a lock around the shared table of users.  It is what the reactor is
  compared with.
* :func:`raise_open_file_limit` lifts this process's soft limit on open
  files (``ulimit -n``) as far as the hard limit allows, because every
  connection is a file descriptor; :func:`room_for_clients` says how many
  connections fit under it, and under what the reactor can watch: Twisted's
  default reactor on macOS and Windows uses ``select()``, which cannot watch
  descriptors numbered 1,024 or more (on Windows, more than 512 sockets).

Nothing here needs a POSIX system at import: ``resource`` (no such module
on Windows, which has no ``ulimit``) is imported only where it is used.

Everything listens and connects on 127.0.0.1 only, and every wait is bounded.

:func:`main` serves notebook 8's chat for many clients, after raising the
open-file limit: ``python -m writing_servers.scaling --port 8000``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import selectors
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from writing_servers.chat import ChatFactory
from writing_servers.programs import run_server, server_arguments

__all__ = [
    "Broadcast",
    "ChatCrowd",
    "CrowdProcess",
    "Room",
    "Sample",
    "ThreadPerClientChat",
    "count_for",
    "counting_process",
    "main",
    "measure",
    "open_descriptors",
    "open_file_limits",
    "raise_open_file_limit",
    "resident_memory",
    "room_for_clients",
    "select_limit",
]

DEFAULT_TIMEOUT = 30.0
#: Descriptors kept free for everything else this process opens (Jupyter, pipes, fonts, Twisted's spare).
SPARE_DESCRIPTORS = 64
#: How much longer than its timeout a CrowdProcess waits for its child's answer.
ANSWER_MARGIN = 5.0


#: How many descriptors select() can watch: those numbered below FD_SETSIZE on POSIX; 512 sockets on Windows.
SELECT_LIMIT = 512 if sys.platform == "win32" else 1024


def open_file_limits() -> tuple[int, int] | None:
    """This process's soft and hard limits on open files (``ulimit -Sn``, ``-Hn``); None where there are none.

    Windows has neither the limits nor the :mod:`resource` module: there,
    only memory bounds how many sockets a process holds.
    """
    try:
        import resource
    except ImportError:
        return None
    return resource.getrlimit(resource.RLIMIT_NOFILE)


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


def resident_memory() -> int:
    """Bytes of this process's memory in RAM now: its resident set size, thread stacks included."""
    if sys.platform == "win32":  # the working set, as Task Manager shows it
        import ctypes
        from ctypes import wintypes

        class Counters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS, in psapi.h
            _fields_ = [
                ("cb", wintypes.DWORD),
                ("PageFaultCount", wintypes.DWORD),
                ("PeakWorkingSetSize", ctypes.c_size_t),
                ("WorkingSetSize", ctypes.c_size_t),
                ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
                ("QuotaPagedPoolUsage", ctypes.c_size_t),
                ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
                ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
                ("PagefileUsage", ctypes.c_size_t),
                ("PeakPagefileUsage", ctypes.c_size_t),
            ]

        counters = Counters(cb=ctypes.sizeof(Counters))
        process = ctypes.windll.kernel32.GetCurrentProcess()
        if not ctypes.windll.psapi.GetProcessMemoryInfo(process, ctypes.byref(counters), counters.cb):
            raise ctypes.WinError()
        return int(counters.WorkingSetSize)
    with contextlib.suppress(OSError):
        with open("/proc/self/statm") as statm:  # Linux: sizes in pages
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    shown = subprocess.run(  # macOS and the BSDs: ps prints KiB
        ["ps", "-o", "rss=", "-p", str(os.getpid())], capture_output=True, text=True, timeout=10, check=True
    )
    return int(shown.stdout) * 1024


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


@dataclass(frozen=True)
class Broadcast:
    """One line sent by a crowd's first member to all the others."""

    seconds: float  # until every other member had read it, by the crowd's clock
    server_cpu: float  # CPU seconds this process (the server's) used meanwhile, all its threads together


#: What the child process runs: a ChatCrowd that takes its orders as JSON lines on stdin.
_CROWD_COMMAND = "from writing_servers.scaling import serve_crowd; serve_crowd()"


class CrowdProcess:
    """A :class:`ChatCrowd` in a child process: its clients' work never runs in this process.

    Use it as a ChatCrowd (``grow_to``, ``broadcast``, ``len``, ``close``, or
    as a context manager).  Every request waits at most *timeout* seconds,
    and :meth:`close` ends the child and reaps it.
    """

    def __init__(self, address: tuple[str, int], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self._size = 0
        self._requests = itertools.count(1)
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CROWD_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        # A thread reads the answers, so waiting for one can time out everywhere:
        # Windows cannot select() on a pipe.  It ends when the child does.
        self._answers: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read_answers, name="crowd-answers", daemon=True)
        self._reader.start()
        try:
            self._request(connect=list(address), timeout=timeout)
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return self._size

    def grow_to(self, size: int) -> None:
        """Connect and name new members until there are *size*."""
        self._size = int(self._request(grow_to=size)["size"])

    def broadcast(self) -> Broadcast:
        """Time one line from the first member to every other, and this process's CPU time meanwhile."""
        cpu_before = time.process_time()
        seconds = float(self._request(broadcast=True)["seconds"])
        return Broadcast(seconds, time.process_time() - cpu_before)

    def _request(self, **request: Any) -> dict[str, Any]:
        number = next(self._requests)
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(json.dumps({"id": number, **request}).encode() + b"\n")
        stdin.flush()
        while True:  # skip any answer to a request an interrupted cell stopped waiting for
            reply: dict[str, Any] = json.loads(self._next_answer())
            if reply["id"] == number:
                break
        if "error" in reply:
            kind = {"TimeoutError": TimeoutError, "ValueError": ValueError}.get(
                reply["kind"], ConnectionError
            )
            raise kind(reply["error"])
        return reply

    def _read_answers(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            self._answers.put(line)
        self._answers.put(b"")  # the child's end

    def _next_answer(self) -> bytes:
        # The child bounds each step by the same timeout: give its answer time to arrive.
        try:
            line = self._answers.get(timeout=2 * self.timeout + ANSWER_MARGIN)
        except queue.Empty:
            raise TimeoutError("the crowd's process did not answer in time") from None
        if not line:
            self._answers.put(line)  # every later request hears of the end too
            raise ConnectionError(
                f"the crowd's process ended (exit status {self._process.wait(self.timeout)})"
            )
        return line

    def close(self) -> None:
        """Close every connection of the crowd: end its process and wait (bounded) until it is gone."""
        self._size = 0
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):  # a child that already ended
                self._process.stdin.close()  # end of its orders: it closes its sockets and exits
        try:
            self._process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(self.timeout)
        self._reader.join(self.timeout)  # it reads until the child's end, which has come
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> CrowdProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve_crowd(orders: IO[bytes] | None = None, answers: IO[bytes] | None = None) -> None:
    """The child side of :class:`CrowdProcess`: run one ChatCrowd as told, one JSON line per order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupting the notebook's kernel must not kill it midway
    orders = orders or sys.stdin.buffer
    answers = answers or sys.stdout.buffer
    crowd: ChatCrowd | None = None
    try:
        for line in orders:  # until the parent closes our stdin
            order = json.loads(line)
            answer: dict[str, Any] = {"id": order["id"]}
            try:
                if "connect" in order:
                    crowd = ChatCrowd((order["connect"][0], order["connect"][1]), timeout=order["timeout"])
                elif "grow_to" in order and crowd is not None:
                    raise_open_file_limit(order["grow_to"] + SPARE_DESCRIPTORS)
                    crowd.grow_to(order["grow_to"])
                    answer["size"] = len(crowd)
                elif "broadcast" in order and crowd is not None:
                    answer["seconds"] = crowd.broadcast_latency()
            except Exception as error:
                answer.update(error=f"{error}", kind=type(error).__name__)
            answers.write(json.dumps(answer).encode() + b"\n")
            answers.flush()
    finally:
        if crowd is not None:
            crowd.close()


@dataclass(frozen=True)
class Sample:
    """What one design cost at one crowd size: medians over a few broadcasts, and memory while idle."""

    clients: int
    broadcast_ms: float  # one line until everyone else has read it
    server_cpu_ms: float  # the server's CPU time for that one broadcast
    memory_kib: float  # the server process's memory per connection, while every connection is idle

    def __str__(self) -> str:
        return (
            f"{self.clients:5} clients: {self.broadcast_ms:5.1f} ms to reach everyone, "
            f"{self.server_cpu_ms:5.1f} ms of server CPU, {self.memory_kib:5.1f} KiB per idle connection"
        )


def measure(crowd: CrowdProcess, sizes: Iterable[int], repeats: int = 5) -> list[Sample]:
    """Grow *crowd* to each size; sample its server's memory per idle connection, then time broadcasts.

    The server must run in this process (memory and CPU time are this
    process's); the crowd runs in its own.
    """
    memory_before = resident_memory()
    samples = []
    for size in sizes:
        crowd.grow_to(size)
        memory_kib = (resident_memory() - memory_before) / size / 1024
        broadcasts = [crowd.broadcast() for _ in range(repeats)]
        samples.append(
            Sample(
                size,
                statistics.median(b.seconds for b in broadcasts) * 1000,
                statistics.median(b.server_cpu for b in broadcasts) * 1000,
                memory_kib,
            )
        )
    return samples


def count_for(seconds: float) -> int:
    """Count as fast as pure Python can for *seconds*: work that holds the GIL all along."""
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        count += 1
    return count


@contextlib.contextmanager
def counting_process(seconds: float, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Another Python process runs :func:`count_for` (*seconds*) while the block runs.

    The block starts once the process has started counting, not while it is
    still importing.  It imports the package's ``count_for``: an edit to a
    notebook's copy does not reach it.
    """
    command = (
        "from writing_servers.scaling import count_for; "
        f"print('counting', flush=True); count_for({seconds!r})"
    )
    with subprocess.Popen([sys.executable, "-c", command], stdout=subprocess.PIPE, text=True) as counter:
        assert counter.stdout is not None
        started = threading.Thread(target=counter.stdout.readline, daemon=True)  # a pipe has no timeout
        started.start()
        started.join(timeout)
        try:
            if started.is_alive():
                raise TimeoutError(f"the counting process did not start within {timeout:g} s")
            yield
            counter.wait(timeout)
        finally:
            counter.kill()  # no-op once it has ended


class _ChatHandler(socketserver.StreamRequestHandler):
    """One thread per connection: ask for a name, then pass each line to everyone else."""

    server: _ThreadedChatServer

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections.add(self)
            self.server.threads.add(threading.current_thread())
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
        self.threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # each connection's thread

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
        """Threads this chat runs right now: the one that accepts, and one per connection."""
        with self._server.lock:
            connections = [thread for thread in self._server.threads if thread.is_alive()]
        return len(connections) + self._thread.is_alive()

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
    room = room_for_clients(args.clients)
    if room.clients < room.wanted:
        print(room, file=sys.stderr)
    return run_server(ChatFactory(), "Chat", args.port, args.interface)


if __name__ == "__main__":
    raise SystemExit(main())
