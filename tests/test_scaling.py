"""Notebook 9's tools: a crowd of chat clients and a thread-per-client chat, over loopback."""

from __future__ import annotations

import io
import json
import mmap
import subprocess
import sys
import threading
import time

import psutil
import pytest

from writing_servers import lab, scaling
from writing_servers.chat import ChatFactory
from writing_servers.scaling import (
    ChatCrowd,
    CrowdProcess,
    Room,
    ThreadPerClientChat,
    measure,
    raise_open_file_limit,
    resident_memory,
    room_for_clients,
    select_limit,
    serve_crowd,
)


def test_crowd_joins_and_hears_one_broadcast_from_the_reactor_chat() -> None:
    """Fifty named members join the course's chat; one line reaches all 49 others; closing frees every name."""
    factory = ChatFactory()
    server = lab.listen(factory, name="crowd-chat")
    with ChatCrowd(server.address, timeout=10) as crowd:
        crowd.grow_to(20)
        crowd.grow_to(50)
        assert len(crowd) == 50
        assert lab.call(lambda: len(factory.users)) == 50
        assert 0 < crowd.broadcast_latency() < 10
        assert 0 < crowd.broadcast_latency() < 10  # the second message is told apart from the first
    server.wait_until_idle()
    assert factory.users == {}


def test_broadcast_latency_fails_loudly_when_a_member_never_hears() -> None:
    """If the server drops a broadcast, broadcast_latency raises instead of returning a number."""

    class Deaf(ChatFactory):
        protocol = type("DeafChat", (ChatFactory.protocol,), {"broadcast": lambda self, text: None})

    server = lab.listen(Deaf(), name="crowd-deaf")
    with ChatCrowd(server.address, timeout=10) as crowd:
        crowd.grow_to(3)  # joining may be slow on a loaded machine; only the broadcast must time out
        crowd.timeout = 0.5
        with pytest.raises(TimeoutError, match="2 of 2 members did not get m1"):
            crowd.broadcast_latency()


def test_thread_per_client_chat_uses_a_thread_per_connection_and_cleans_up() -> None:
    """The socketserver chat relays like ours, runs one thread per client, and stop() ends them all."""
    threads_before = threading.active_count()
    fds_before = psutil.Process().num_fds()
    with ThreadPerClientChat() as chat:
        assert chat.address[0] == "127.0.0.1"
        with ChatCrowd(chat.address, timeout=10) as crowd:
            crowd.grow_to(30)
            assert chat.users == sorted(f"user{n}" for n in range(1, 31))
            assert threading.active_count() >= threads_before + 31  # the server's, plus one per client
            assert chat.threads() == 31
            assert 0 < crowd.broadcast_latency() < 10
    assert chat.threads() == 0
    assert threading.active_count() == threads_before
    assert psutil.Process().num_fds() == fds_before


def test_raise_open_file_limit_stays_within_the_hard_limit() -> None:
    """The soft limit rises to what is asked, but never past the hard limit."""
    resource = pytest.importorskip("resource", reason="Windows has no open-file limits")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert raise_open_file_limit(soft) == soft
        assert raise_open_file_limit(soft + 1) == (
            soft + 1 if hard == resource.RLIM_INFINITY or hard > soft else soft
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_progress_bar_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """grow_to(progress=True) draws a tqdm bar on stdout (a notebook shows stderr as an error)."""
    server = lab.listen(ChatFactory(), name="crowd-progress")
    with ChatCrowd(server.address, timeout=10) as crowd:
        crowd.grow_to(5, progress=True)
    captured = capsys.readouterr()
    assert "connecting 5 clients: 100%" in captured.out
    assert captured.err == ""


def test_crowd_process_runs_the_crowd_in_a_child_and_reaps_it() -> None:
    """A CrowdProcess joins its members from another process, times broadcasts, and close() reaps the child."""
    factory = ChatFactory()
    server = lab.listen(factory, name="crowd-process")
    fds_before = psutil.Process().num_fds()
    with CrowdProcess(server.address, timeout=10) as crowd:
        children = psutil.Process().children()
        assert len(children) == 1
        crowd.grow_to(20)
        assert len(crowd) == 20
        assert lab.call(lambda: len(factory.users)) == 20
        broadcast = crowd.broadcast()
        assert 0 < broadcast.seconds < 10
        assert 0 <= broadcast.server_cpu < 10
    assert not children[0].is_running() or children[0].status() == psutil.STATUS_ZOMBIE
    assert psutil.Process().children() == []
    assert psutil.Process().num_fds() == fds_before
    server.wait_until_idle()
    assert factory.users == {}
    crowd.close()  # a second close does no harm


def test_crowd_process_reports_the_childs_errors_as_exceptions() -> None:
    """A broadcast nobody hears raises TimeoutError here, as it would in a ChatCrowd in this process."""

    class Deaf(ChatFactory):
        protocol = type("DeafChat", (ChatFactory.protocol,), {"broadcast": lambda self, text: None})

    server = lab.listen(Deaf(), name="crowd-process-deaf")
    with CrowdProcess(server.address, timeout=0.5) as crowd:
        crowd.grow_to(3)
        with pytest.raises(TimeoutError, match="2 of 2 members did not get m1"):
            crowd.broadcast()


def test_serve_crowd_answers_each_order_by_its_id() -> None:
    """The child's side: one JSON answer per order, carrying the order's id, and its sockets closed at EOF."""
    server = lab.listen(ChatFactory(), name="serve-crowd")
    orders = [
        {"id": 1, "connect": list(server.address), "timeout": 10},
        {"id": 2, "grow_to": 3},
        {"id": 3, "broadcast": True},
    ]
    answers = io.BytesIO()
    serve_crowd(io.BytesIO(b"".join(json.dumps(order).encode() + b"\n" for order in orders)), answers)
    replies = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert [reply["id"] for reply in replies] == [1, 2, 3]
    assert replies[1]["size"] == 3
    assert replies[2]["seconds"] > 0
    server.wait_until_idle()


def test_measure_samples_each_size() -> None:
    """measure() grows the crowd through the sizes and gives one sample per size, in order."""
    server = lab.listen(ChatFactory(), name="measure-chat", trace=False)
    with CrowdProcess(server.address, timeout=10) as crowd:
        samples = measure(crowd, [5, 10], repeats=2)
    assert [sample.clients for sample in samples] == [5, 10]
    assert all(sample.broadcast_ms > 0 and sample.server_cpu_ms >= 0 for sample in samples)
    assert "10 clients:" in str(samples[1])


def test_room_for_clients_stays_under_the_hard_limit() -> None:
    """With a low hard limit the room shrinks to what fits, leaving the spare descriptors free, and says why."""
    pytest.importorskip("resource", reason="Windows has no open-file limits")
    # In a child process: lowering a hard limit cannot be undone without privileges.
    script = """
import resource
from writing_servers.scaling import SPARE_DESCRIPTORS, open_descriptors, room_for_clients

low = open_descriptors() + SPARE_DESCRIPTORS + 100
resource.setrlimit(resource.RLIMIT_NOFILE, (low - 50, low))
room = room_for_clients(1000)
print(room.clients, resource.getrlimit(resource.RLIMIT_NOFILE)[0] == low, room_for_clients(10).clients)
print(room)
"""
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    numbers, sentence = shown.stdout.splitlines()
    room, raised, small = numbers.split()
    assert 95 <= int(room) <= 100  # open_descriptors() counts the same few descriptors each time
    assert raised == "True"
    assert small == "10"
    assert sentence.startswith(
        f"Room for {room} of 1000 connections: the hard limit on open files (ulimit -Hn) is "
    )


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's default reactor is epoll")
def test_room_for_clients_on_epoll_has_room_for_everyone() -> None:
    """On Linux's default reactor nothing but the open-file limit bounds the room, and the sentence says all fit."""
    assert select_limit() is None
    room = room_for_clients(100)
    assert room == Room(100, 100, room.reason)
    assert str(room) == "Room for all 100 connections."


def test_resident_memory_sees_an_allocation() -> None:
    """resident_memory() grows when 20 MB are mapped and touched."""
    before = resident_memory()
    # Fresh pages from the system, each written to: freed heap memory that is already resident
    # (which a bytearray may reuse) would not make the process grow.
    with mmap.mmap(-1, 20_000_000) as block:
        for offset in range(0, len(block), mmap.PAGESIZE):
            block[offset] = 1
        assert resident_memory() - before > 15_000_000


def test_crowd_process_says_when_its_child_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that exits instead of answering is reported as a ConnectionError with its exit status."""
    monkeypatch.setattr(scaling, "_CROWD_COMMAND", "import sys; sys.exit(3)")
    with pytest.raises(ConnectionError, match=r"ended \(exit status 3\)"):
        CrowdProcess(("127.0.0.1", 1), timeout=5)
    assert psutil.Process().children() == []


def test_crowd_process_gives_up_on_a_silent_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that never answers: the wait ends with TimeoutError, and the child is killed and reaped."""
    monkeypatch.setattr(scaling, "_CROWD_COMMAND", "import time; time.sleep(60)")
    monkeypatch.setattr(scaling, "ANSWER_MARGIN", 0.0)
    threads_before = threading.active_count()
    with pytest.raises(TimeoutError, match="did not answer in time"):
        CrowdProcess(("127.0.0.1", 1), timeout=0.5)
    assert psutil.Process().children() == []
    assert threading.active_count() == threads_before  # the answers' reader ended with the child


def test_counting_process_runs_the_block_while_it_counts() -> None:
    """The block runs while the other process counts (it said so), and the process is gone after it."""
    me = psutil.Process()
    started = time.monotonic()
    with scaling.counting_process(1.0):
        [child] = me.children()
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE  # still counting
    assert time.monotonic() - started >= 1.0  # the block's end waited for the count to finish
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
