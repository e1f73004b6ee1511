"""Notebook 9's tools: a crowd of chat clients and a thread-per-client chat, over loopback."""

from __future__ import annotations

import resource
import threading

import psutil
import pytest

from writing_servers import lab
from writing_servers.chat import ChatFactory
from writing_servers.scaling import ChatCrowd, ThreadPerClientChat, raise_open_file_limit


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
    with ChatCrowd(server.address, timeout=0.5) as crowd:
        crowd.grow_to(3)
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
            assert 0 < crowd.broadcast_latency() < 10
    assert threading.active_count() == threads_before
    assert psutil.Process().num_fds() == fds_before


def test_raise_open_file_limit_stays_within_the_hard_limit() -> None:
    """The soft limit rises to what is asked, but never past the hard limit."""
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
