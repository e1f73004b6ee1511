"""The chat load generator: many non-blocking clients on one epoll, in a process of its own.

It speaks the course chat's protocol exactly: read "What's your name?",
send a name, read "Welcome, NAME!", then every line sent is received by
everyone else as "<NAME> text".  It checks every byte of the handshake and
of each fan-out, so a server that behaves differently fails the run instead
of producing a figure.

Talking to the benchmark over stdin/stdout: once every client has joined it
prints ``READY`` and waits for a line ``GO``; then it runs its phases and
prints one JSON object.

* fan-out: one client sends a line; the time until all the others have
  received it in full (one message in flight at a time);
* sustained: clients take turns sending, keeping ``window`` messages in
  flight, for a fixed time; deliveries (lines received) per second;
* burst (``--burst-senders``): that many clients send one long line at the
  same moment; how many readers, all reading as fast as they can, the
  server cuts off;
* slow reader (``--slow-reader``): one extra client joins, then never reads
  again, while the others chat with long lines; reports when (and whether)
  the server cut it off.
"""

from __future__ import annotations

import argparse
import errno
import json
import select
import socket
import sys
import time
from typing import Any

import common

BATCH = 50  # clients connecting at once: no more than a listen backlog holds (Twisted's default is 50)
STEP_TIMEOUT = 20.0  # for any one expected reply; every wait below has a deadline
GREETING = b"What's your name?\r\n"
MESSAGE = "hello everyone"
LONG_MESSAGE = "x" * 600


class Swarm:
    """*count* named clients of one chat server, all on one epoll."""

    def __init__(self, port: int, count: int, prefix: str = "c") -> None:
        self.port = port
        self.names = [f"{prefix}{i:04d}" for i in range(count)]
        self.sockets: list[socket.socket] = []
        self.index: dict[int, int] = {}  # file descriptor -> client number
        self.poller = select.epoll()
        self.pending: list[bytes] = [b""] * count  # received, not yet matched

    def join(self) -> None:
        for first in range(0, len(self.names), BATCH):
            batch = range(first, min(first + BATCH, len(self.names)))
            for i in batch:
                self.sockets.append(self._connect())
                self.index[self.sockets[i].fileno()] = i
                self.poller.register(self.sockets[i].fileno(), select.EPOLLIN)
            self.expect({i: GREETING for i in batch})
            for i in batch:
                self.send(i, self.names[i])
            self.expect({i: f"Welcome, {self.names[i]}!\r\n".encode() for i in batch})

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        status = sock.connect_ex((common.LOOPBACK, self.port))
        if status not in (0, errno.EINPROGRESS):
            raise common.BenchError(f"connect failed: {errno.errorcode.get(status, status)}")
        return sock

    def send(self, i: int, text: str) -> None:
        data = text.encode() + b"\n"
        if self.sockets[i].send(data) != len(data):  # a few bytes into an empty socket buffer
            raise common.BenchError(f"client {i} could not send {len(data)} bytes at once")

    def expect(self, wanted: dict[int, bytes]) -> float:
        """Read until each client in *wanted* has received exactly its bytes; return when the last did.

        Bytes for a client not in *wanted*, or bytes that differ, fail the run.
        """
        left = {i for i, data in wanted.items() if self.pending[i] != data}
        deadline = time.monotonic() + STEP_TIMEOUT
        done = time.perf_counter()
        while left:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                i = min(left)
                raise common.BenchError(
                    f"{len(left)} client(s) still waiting after {STEP_TIMEOUT:g} s; "
                    f"client {i} has {self.pending[i]!r}, wants {wanted[i]!r}"
                )
            for fd, _ in self.poller.poll(min(timeout, 1.0)):
                i = self.index[fd]
                data = self.sockets[i].recv(65536)
                if not data:
                    raise common.BenchError(f"the server closed client {i} ({self.names[i]})")
                self.pending[i] += data
                expected = wanted.get(i, b"")
                if not expected.startswith(self.pending[i]):
                    raise common.BenchError(f"client {i} received {self.pending[i]!r}, expected {expected!r}")
                if self.pending[i] == expected:
                    left.discard(i)
                    done = time.perf_counter()
        for i in wanted:
            self.pending[i] = b""
        return done

    def fan_out(self, rounds: int) -> list[float]:
        """Milliseconds until one line reaches every other client, once per round."""
        times = []
        count = len(self.sockets)
        for k in range(rounds):
            sender = (k * 37) % count
            line = f"<{self.names[sender]}> fan-out {k}\r\n".encode()
            started = time.perf_counter()
            self.send(sender, f"fan-out {k}")
            finished = self.expect({i: line for i in range(count) if i != sender})
            times.append((finished - started) * 1000)
        return times

    def sustained(self, seconds: float, window: int, warm_up: float, text: str = MESSAGE) -> dict[str, Any]:
        """Keep *window* messages in flight for *seconds*; count the lines delivered.

        Each client has at most *window* lines waiting for it, so a reader
        that keeps up is never the server's slow reader.
        """
        count = len(self.sockets)
        per_message = count - 1
        sent = delivered = 0
        sender = 0
        started = time.perf_counter()
        warm_at, stop_at = started + warm_up, started + warm_up + seconds
        at_warm: tuple[float, int] | None = None
        at_stop: tuple[float, int] | None = None
        drain_deadline = stop_at + STEP_TIMEOUT
        poll, sockets, index = self.poller.poll, self.sockets, self.index
        while True:
            now = time.perf_counter()
            if at_warm is None and now >= warm_at:
                at_warm = (now, delivered)
            if now < stop_at:
                while (sent - window) * per_message < delivered:  # fewer than *window* in flight
                    self.send(sender, text)
                    sent += 1
                    sender = (sender + 1) % count
            else:
                if at_stop is None:
                    at_stop = (now, delivered)
                if delivered >= sent * per_message:
                    break
                if now > drain_deadline:
                    raise common.BenchError(f"{sent * per_message - delivered} deliveries still missing")
            for fd, _ in poll(0.05):
                data = sockets[index[fd]].recv(262144)
                if not data:
                    raise common.BenchError(
                        f"the server closed client {index[fd]} during the sustained phase"
                    )
                delivered += data.count(b"\n")
        assert at_warm is not None and at_stop is not None
        if delivered != sent * per_message:
            raise common.BenchError(
                f"{delivered} deliveries for {sent} messages to {per_message} readers each"
            )
        return {
            "messages": sent,
            "deliveries": delivered,
            "deliveries_per_s": (at_stop[1] - at_warm[1]) / (at_stop[0] - at_warm[0]),
            "messages_per_s": (at_stop[1] - at_warm[1]) / per_message / (at_stop[0] - at_warm[0]),
        }

    def burst(self, senders: int, size: int) -> dict[str, Any]:
        """The first *senders* clients each send one *size*-byte line at the same moment.

        Every client keeps reading as fast as it can; a server that cuts any
        of them off (its connection ends) is counting a burst as a stalled reader.
        """
        count = len(self.sockets)
        for i in range(senders):
            self.send(i, "b" * size)
        expected = senders * (count - 1)
        lines = 0
        dropped: set[int] = set()
        deadline = time.monotonic() + 2 * STEP_TIMEOUT
        last_data = time.monotonic()
        while lines < expected and time.monotonic() < deadline:
            events = self.poller.poll(0.2)
            for fd, _ in events:
                i = self.index[fd]
                try:
                    data = self.sockets[i].recv(262144)
                except ConnectionResetError:
                    data = b""
                if not data:
                    dropped.add(i)
                    self.poller.unregister(fd)
                    continue
                lines += data.count(b"\n")
                last_data = time.monotonic()
            if dropped and time.monotonic() - last_data > 1.0:
                break  # nothing more is coming: some lines went down with the dropped clients
        return {
            "burst_senders": senders,
            "burst_size": size,
            "burst_dropped": len(dropped),
            "burst_lines": lines,
        }


def slow_reader_run(swarm: Swarm, port: int, seconds: float, window: int) -> dict[str, Any]:
    """One more client joins, then stops reading while the swarm chats; when is it cut off?"""
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, set before connecting
    slow.settimeout(STEP_TIMEOUT)
    slow.connect((common.LOOPBACK, port))
    reader = slow.makefile("rb")
    if reader.readline() != GREETING:
        raise common.BenchError("the slow reader was not greeted")
    slow.sendall(b"slowpoke\n")
    if reader.readline() != b"Welcome, slowpoke!\r\n":
        raise common.BenchError("the slow reader was not welcomed")
    # From here on it reads nothing.  EPOLLERR/EPOLLHUP/EPOLLRDHUP say the server dropped it.
    watcher = select.epoll()
    watcher.register(slow.fileno(), select.EPOLLRDHUP)
    started = time.perf_counter()
    dropped_after: float | None = None
    # The swarm counts deliveries among its own members; the slow reader gets every message too.
    swarm_result = {"messages": 0, "deliveries": 0}
    while time.perf_counter() - started < seconds:
        chunk = swarm.sustained(min(0.5, seconds), window, 0.0, LONG_MESSAGE)
        swarm_result["messages"] += chunk["messages"]
        swarm_result["deliveries"] += chunk["deliveries"]
        if dropped_after is None and watcher.poll(0):
            dropped_after = time.perf_counter() - started
        print(f"PROGRESS {time.perf_counter() - started:.2f} {swarm_result['messages']}", flush=True)
    waiting = 0
    ending = "still connected"
    slow.settimeout(0.5)
    try:
        while chunk_ := slow.recv(1 << 20):  # what the server still had for it, if it kept it
            waiting += len(chunk_)
        ending = "closed by the server (EOF)"
    except ConnectionResetError:
        ending = "reset by the server"
    except TimeoutError:
        ending = "still connected"
    slow.close()
    watcher.close()
    return {
        **swarm_result,
        "message_bytes": len(LONG_MESSAGE) + len("<c0000> \r\n"),
        "dropped_after_s": dropped_after,
        "slow_reader": ending,
        "bytes_still_arriving": waiting,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--fan-outs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0, help="sustained phase (0: none)")
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--slow-reader", action="store_true")
    parser.add_argument("--burst-senders", type=int, default=0, help="last phase: this many send at once")
    parser.add_argument("--burst-size", type=int, default=1000)
    args = parser.parse_args()
    common.raise_fd_limit(args.clients + 100)

    swarm = Swarm(args.port, args.clients)
    joined = time.perf_counter()
    swarm.join()
    result: dict[str, Any] = {"clients": args.clients, "join_s": time.perf_counter() - joined}
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        return
    if args.slow_reader:
        result.update(slow_reader_run(swarm, args.port, args.seconds, args.window))
    else:
        swarm.fan_out(3)  # warm-up
        result["fan_out_ms"] = swarm.fan_out(args.fan_outs)
        if args.seconds > 0:
            result.update(swarm.sustained(args.seconds, args.window, warm_up=0.5))
        if args.burst_senders > 0:  # last: it may cost clients their connections
            result.update(swarm.burst(args.burst_senders, args.burst_size))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
