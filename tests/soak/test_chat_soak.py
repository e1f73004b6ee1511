"""Chat soak: many clients join, chat and leave at random for a while; nothing is lost or left behind.

``make soak`` runs it at full size (1,000 clients for 30 s; SOAK_CLIENTS and
SOAK_SECONDS change that) and prints its figures.  ``make test`` runs the
same code small, from tests/test_soak_small.py, so it cannot rot.

The rule checked: a message reaches every client that was in the chat when
it was sent.  "In the chat" is what the driver can know for sure: the
client's welcome had arrived before the message was sent, and the client
had not started leaving.  A client leaves only once it has every message it
is owed, so an early hang-up cannot hide a lost message.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time
from dataclasses import dataclass, field

import psutil
import pytest

from writing_servers import lab
from writing_servers.chat import ChatFactory
from writing_servers.scaling import raise_open_file_limit

TIMEOUT = 30.0  # for any single step: connecting, a welcome, a client's last messages


@dataclass
class Figures:
    clients: int
    seconds: float
    joins: int = 0
    leaves: int = 0
    peak_present: int = 0
    messages: int = 0
    deliveries_owed: int = 0
    deliveries: int = 0
    extra_deliveries: int = 0  # arrived though not owed (sent while the client was still joining)
    latencies: list[float] = field(default_factory=list)

    def report(self) -> str:
        latencies = sorted(self.latencies) or [0.0]
        p99 = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) > 1 else latencies[0]
        return (
            f"chat soak: {self.clients} clients for {self.seconds:g} s\n"
            f"  joins {self.joins}, leaves {self.leaves}, most present at once {self.peak_present}\n"
            f"  messages {self.messages}, deliveries owed {self.deliveries_owed}, "
            f"made {self.deliveries} (+{self.extra_deliveries} to clients still joining)\n"
            f"  delivery latency: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )


class Driver:
    """Simulated people; the shared record of who was present when each message was sent."""

    def __init__(self, address: tuple[str, int], clients: int, seconds: float, seed: int) -> None:
        self.address = address
        self.figures = Figures(clients, seconds)
        self.random = random.Random(seed)
        self.present: set[Person] = set()
        self.sent_at: dict[int, float] = {}
        self.deadline = 0.0
        self.clients = clients
        self.seconds = seconds
        # Spread the talk: about 40 messages a second in all, whatever the number of clients.
        self.pause_between_messages = clients / 40.0

    async def run(self) -> Figures:
        self.deadline = time.monotonic() + self.seconds
        await asyncio.gather(*(self.life(number) for number in range(self.clients)))
        return self.figures

    async def life(self, number: int) -> None:
        generation = 0
        await asyncio.sleep(self.random.uniform(0, min(5.0, self.seconds / 4)))  # arrive over time
        while time.monotonic() < self.deadline:
            person = Person(self, f"u{number}x{generation}")
            await person.live(stay=self.random.uniform(self.seconds / 6, self.seconds / 2))
            generation += 1
            await asyncio.sleep(self.random.uniform(0, 1))

    def say(self, sender: Person) -> str:
        """Record a new message from *sender*: everyone present now is owed it."""
        message_id = self.figures.messages
        self.figures.messages += 1
        self.sent_at[message_id] = time.monotonic()
        for person in self.present:
            if person is not sender:
                person.owed.add(message_id)
                self.figures.deliveries_owed += 1
        return f"m{message_id}"


class Person:
    def __init__(self, driver: Driver, name: str) -> None:
        self.driver = driver
        self.name = name
        self.owed: set[int] = set()
        self.received: set[int] = set()
        self.caught_up = asyncio.Event()
        self.caught_up.set()

    async def live(self, stay: float) -> None:
        driver = self.driver
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*driver.address), TIMEOUT)
        try:
            assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"What's your name?\r\n"
            writer.write(self.name.encode() + b"\r\n")
            welcome = await asyncio.wait_for(reader.readline(), TIMEOUT)
            assert welcome == f"Welcome, {self.name}!\r\n".encode(), welcome
            driver.figures.joins += 1
            driver.present.add(self)
            driver.figures.peak_present = max(driver.figures.peak_present, len(driver.present))
            listening = asyncio.create_task(self.listen(reader))
            leave_at = min(time.monotonic() + stay, driver.deadline)
            while (left := leave_at - time.monotonic()) > 0:
                await asyncio.sleep(min(left, driver.random.expovariate(1 / driver.pause_between_messages)))
                if time.monotonic() < leave_at:
                    writer.write(driver.say(self).encode() + b"\r\n")
            # Leave only with everything owed in hand: messages sent from now on are not owed.
            driver.present.discard(self)
            await asyncio.wait_for(self.all_owed_received(listening), TIMEOUT)
            listening.cancel()
            driver.figures.leaves += 1
        finally:
            driver.present.discard(self)
            writer.close()

    async def all_owed_received(self, listening: asyncio.Task[None]) -> None:
        while not self.owed <= self.received:
            if listening.done():  # the server hung up, or a line was wrong: say which
                listening.result()
                raise AssertionError(
                    f"{self.name}: connection ended owing {sorted(self.owed - self.received)}"
                )
            self.caught_up.clear()
            await self.caught_up.wait()

    async def listen(self, reader: asyncio.StreamReader) -> None:
        driver = self.driver
        while line := await reader.readline():
            if not line.endswith(b"\n"):
                break
            sender, _, text = line.decode().rstrip("\r\n").partition(" ")
            assert sender.startswith("<u") and text.startswith("m"), line
            message_id = int(text[1:])
            assert message_id not in self.received, f"{self.name} got {text} twice"
            self.received.add(message_id)
            if message_id in self.owed:
                driver.figures.deliveries += 1
                driver.figures.latencies.append(time.monotonic() - driver.sent_at[message_id])
            else:
                driver.figures.extra_deliveries += 1
            self.caught_up.set()
        self.caught_up.set()  # the connection ended: let all_owed_received look


def soak(clients: int, seconds: float, seed: int = 6) -> Figures:
    """Run the soak against the course's chat on the background reactor; assert it left nothing behind."""
    needed = 2 * clients + 200  # both ends of every connection live in this process
    limit = raise_open_file_limit(needed)
    if limit < needed:
        pytest.skip(f"needs {needed} open files; the hard limit (ulimit -Hn) is {limit}")
    factory = ChatFactory()
    server = lab.listen(factory, name="soak-chat")  # Twisted's first listen also reserves an fd for good
    process = psutil.Process()
    gc.collect()
    fds_before = process.num_fds()
    lab.errors().take_new()

    figures = asyncio.run(Driver(server.address, clients, seconds, seed).run())

    server.wait_until_idle(timeout=TIMEOUT)
    assert lab.call(lambda: dict(factory.users)) == {}
    assert lab.errors().take_new() == []
    gc.collect()
    # No more than before: the soak leaks none. (Fewer is fine: an earlier test's kernel client may close its
    # sockets on its own thread meanwhile.)
    assert process.num_fds() <= fds_before
    server.stop()
    assert figures.deliveries == figures.deliveries_owed
    return figures


def test_chat_soak() -> None:
    """1,000 clients join, chat and leave at random; every owed message arrives; nothing is left behind."""
    clients = int(os.environ.get("SOAK_CLIENTS", "1000"))
    seconds = float(os.environ.get("SOAK_SECONDS", "30"))
    started = time.monotonic()
    figures = soak(clients, seconds)
    print()
    print(figures.report())
    print(f"  wall time {time.monotonic() - started:.1f} s")
    assert figures.peak_present > clients // 2
