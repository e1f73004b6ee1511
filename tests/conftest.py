"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from writing_servers import lab


@pytest.fixture(autouse=True)
def _own_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests describe a student's own machine, even when run in a terminal on a shared hub."""
    monkeypatch.delenv("WRITING_SERVERS_LOOPBACK", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)


@pytest.fixture(autouse=True)
def _isolate_lab() -> Iterator[None]:
    """Errors logged before a test are not its business; no server it started outlives it."""
    lab.errors().take_new()
    yield
    lab.stop_all(timeout=5.0)
    assert lab.servers() == []
