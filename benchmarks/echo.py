"""Case 2: one echo round trip, through the course's background reactor and through the alternatives.

A blocking client in the main thread sends 32 bytes and waits for them to
come back, over and over, to three servers living in the same process:

* ours: :class:`writing_servers.protocols.Echo` served by ``lab.listen`` on
  the background reactor thread (with and without the lab's trace), and,
  to tell the lab's share from Twisted's, by a bare ``reactor.listenTCP``
  on that same thread;
* the alternative: ``socketserver.ThreadingTCPServer``, a thread per client;
* the floor: a thread looping ``recv``/``sendall`` on a connected socket.

The servers take turns in blocks, so a burst of noise from elsewhere on the
machine lands on all of them alike.  Each placement runs in its own process:
``split`` keeps the client on core 0 and every server thread on core 1, so
each round trip pays two cross-core wake-ups; ``pinned`` puts every thread on
core 0, so what is left is the CPU each server spends per message.

Run as a script, it measures one placement and prints a JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import common
from table import Row, judged

ROUNDS = 20_000
QUICK_ROUNDS = 2_000
WARM_UP = 300
SIZE = 32
BLOCKS = 10
TIMEOUT = 10.0  # every socket operation: a server that stops answering fails the run
TARGET = 1.05  # lab.listen over the same Echo listening bare on the lab's reactor thread, at most
PLACEMENTS = {
    "split": "client core 0, server core 1",
    "pinned": "all on core 0",
}

Address = tuple[str, int]


@contextmanager
def twisted_echo(trace: bool) -> Iterator[Address]:
    """The course's Echo on the lab's background reactor, as a notebook serves it."""
    from twisted.internet.protocol import Factory

    from writing_servers import lab
    from writing_servers.protocols import Echo

    lab.start()
    server = lab.listen(Factory.forProtocol(Echo), name=f"echo (trace={trace})", trace=trace)
    try:
        assert server.host is not None and server.port is not None
        yield (server.host, server.port)
    finally:
        server.stop()


@contextmanager
def bare_twisted_echo() -> Iterator[Address]:
    """The same Echo on the same reactor thread, listening with reactor.listenTCP: no lab wrapper."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory

    from writing_servers import lab
    from writing_servers.protocols import Echo

    lab.start()
    port = lab.call(reactor.listenTCP, 0, Factory.forProtocol(Echo), interface=common.LOOPBACK)
    try:
        yield (port.getHost().host, port.getHost().port)
    finally:
        lab.call(port.stopListening)


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT * 6)  # idle while the other servers take their turns
        while data := self.request.recv(65536):
            self.request.sendall(data)


@contextmanager
def socketserver_echo() -> Iterator[Address]:
    """The standard library's thread-per-client echo."""
    server = socketserver.ThreadingTCPServer((common.LOOPBACK, 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="socketserver", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield (str(host), int(port))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@contextmanager
def raw_echo() -> Iterator[Address]:
    """The floor: one thread, one connection, recv and sendall."""
    listener = socket.create_server((common.LOOPBACK, 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
        with connection:
            connection.settimeout(TIMEOUT * 6)
            while data := connection.recv(65536):
                connection.sendall(data)

    thread = threading.Thread(target=serve, name="raw echo", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        thread.join(TIMEOUT)  # ends once the client has closed its side


SERVERS: dict[str, Callable[[], AbstractContextManager[Address]]] = {
    "twisted": lambda: twisted_echo(trace=False),
    "twisted, traced": lambda: twisted_echo(trace=True),
    "twisted, bare listenTCP": bare_twisted_echo,
    "socketserver": socketserver_echo,
    "raw": raw_echo,
}


@contextmanager
def client(address: Address) -> Iterator[socket.socket]:
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sock


def round_trips(sock: socket.socket, payload: bytes, count: int) -> list[int]:
    """Send *payload* and wait for all of it to come back, *count* times; nanoseconds each."""
    times = []
    clock, send, recv, size = time.perf_counter_ns, sock.sendall, sock.recv, len(payload)
    for _ in range(count):
        start = clock()
        send(payload)
        got = 0
        while got < size:
            chunk = recv(65536)
            if not chunk:
                raise common.BenchError("the echo server closed the connection")
            got += len(chunk)
        times.append(clock() - start)
    return times


def check_echo(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    back = b""
    while len(back) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise common.BenchError("the echo server closed the connection")
        back += chunk
    if back != payload:
        raise common.BenchError(f"sent {payload!r}, got back {back!r}")


def thread_cores() -> dict[str, list[int]]:
    """Which cores each thread of this process may run on."""
    import os

    return {
        thread.name: sorted(os.sched_getaffinity(thread.native_id))
        for thread in threading.enumerate()
        if thread.native_id is not None
    }


def measure(placement: str, rounds: int) -> dict[str, Any]:
    """Round trips to every server under one placement (run in a process of its own)."""
    payload = b"x" * (SIZE - 1) + b"\n"
    # Threads inherit the core mask of the thread that starts them: start the servers on their core.
    common.pin(0, {0} if placement == "pinned" else {1})
    with ExitStack() as stack:
        addresses = {name: stack.enter_context(start()) for name, start in SERVERS.items()}
        common.pin(0, {0})
        sockets = {name: stack.enter_context(client(address)) for name, address in addresses.items()}
        for sock in sockets.values():
            check_echo(sock, payload)
            round_trips(sock, payload, WARM_UP)
        samples: dict[str, list[int]] = {name: [] for name in sockets}
        order = list(sockets)
        for block in range(BLOCKS):
            for name in order[block % len(order) :] + order[: block % len(order)]:  # no server always first
                samples[name] += round_trips(sockets[name], payload, rounds // BLOCKS)
        cores = thread_cores()
    return {
        "placement": placement,
        "rounds": rounds // BLOCKS * BLOCKS,
        "size": SIZE,
        "cores": cores,
        "servers": {
            name: {
                "median_us": common.median(times) / 1000,
                "p99_us": common.percentile(times, 0.99) / 1000,
            }
            for name, times in samples.items()
        },
    }


# -- the benchmark's side ------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    """Measure every placement, each in a fresh process."""
    rounds = QUICK_ROUNDS if quick else ROUNDS
    return {
        placement: common.run_json(
            [common.script("echo.py"), "--placement", placement, "--rounds", str(rounds)],
            f"echo ({placement})",
            timeout=300,
        )
        for placement in PLACEMENTS
    }


def shown(figures: dict[str, float]) -> str:
    return f"{figures['median_us']:.1f} µs (p99 {figures['p99_us']:.0f})"


BARE = "twisted, bare listenTCP"


def rows(results: dict[str, Any]) -> list[Row]:
    table = []
    for placement, label in PLACEMENTS.items():
        servers = results[placement]["servers"]
        bare = servers[BARE]
        for name in ("twisted", "twisted, traced"):
            table.append(
                judged(
                    f"echo round trip, {'lab.listen' if name == 'twisted' else 'lab.listen traced'}, {label}",
                    shown(servers[name]),
                    servers[name]["median_us"] / bare["median_us"],
                    "≤",
                    TARGET,
                    "bare listenTCP",
                    alternative="socketserver " + shown(servers["socketserver"]),
                    floor="bare listenTCP " + shown(bare),
                )
            )
        table.append(
            Row(
                f"echo round trip, bare listenTCP over socketserver, {label}",
                shown(bare),
                "socketserver " + shown(servers["socketserver"]),
                "raw " + shown(servers["raw"]),
                bare["median_us"] / servers["socketserver"]["median_us"],
                "reported (Twisted's design)",
                "info",
            )
        )
    return table


def report(results: dict[str, Any]) -> str:
    lines = [
        "| placement | server | median µs | p99 µs | over bare listenTCP | over socketserver | over raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for placement, label in PLACEMENTS.items():
        servers = results[placement]["servers"]
        for name, figures in servers.items():
            over_bare = figures["median_us"] / servers[BARE]["median_us"]
            over_ss = figures["median_us"] / servers["socketserver"]["median_us"]
            over_raw = figures["median_us"] / servers["raw"]["median_us"]
            lines.append(
                f"| {label} | {name} | {figures['median_us']:.1f} | {figures['p99_us']:.1f} "
                f"| {over_bare:.2f} | {over_ss:.2f} | {over_raw:.2f} |"
            )
    split = results["split"]["servers"]
    pinned = results["pinned"]["servers"]
    extra_split = split[BARE]["median_us"] - split["socketserver"]["median_us"]
    extra_pinned = pinned[BARE]["median_us"] - pinned["socketserver"]["median_us"]
    cores = results["split"]["cores"]
    lines += [
        "",
        f"{results['split']['rounds']:,} round trips of {results['split']['size']} bytes per server and "
        f"placement, in {BLOCKS} interleaved blocks (medians; ratios are of medians). Bare Twisted's extra cost over "
        "socketserver: "
        f"{extra_split:+.1f} µs per round trip across cores, {extra_pinned:+.1f} µs on one core.",
        "Thread placement in the split run: "
        + ", ".join(f"{name} → {sorted(set(mask))}" for name, mask in sorted(cores.items()))
        + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placement", choices=PLACEMENTS, required=True)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    print(json.dumps(measure(args.placement, args.rounds)), flush=True)


if __name__ == "__main__":
    main()


def findings(results: dict[str, Any]) -> list[str]:
    found = []
    for placement, label in PLACEMENTS.items():
        servers = {name: figures["median_us"] for name, figures in results[placement]["servers"].items()}
        bare = servers[BARE]
        found.append(
            f"Echo ({label}): the lab's wrapper costs {servers['twisted'] - bare:+.1f} µs per round trip over the same "
            f"Echo listening bare on the lab's reactor thread ({servers['twisted'] / bare:.2f} ×), its trace "
            f"{servers['twisted, traced'] - servers['twisted']:+.1f} µs more ({servers['twisted, traced'] / bare:.2f} ×). "
            f"Twisted itself costs {bare - servers['socketserver']:+.1f} µs over socketserver "
            f"({bare / servers['socketserver']:.2f} ×): reported, not judged, as it is the reactor's design (each write "
            "is queued and sent on the reactor's next pass), not something the course can move."
        )
    return found
