"""The chat soak of ``make soak``, small enough for every ``make test``: the same driver and checks."""

from __future__ import annotations

from soak.test_chat_soak import soak


def test_small_chat_soak() -> None:
    """Forty clients for three seconds: every owed message arrives; no user, fd or error is left behind."""
    figures = soak(clients=40, seconds=3.0)
    assert figures.joins >= 40
    assert figures.messages > 0
    assert figures.deliveries == figures.deliveries_owed > 0
