"""The one backoff policy: grows, jitters within bounds, and never stops working."""

from __future__ import annotations

import pytest

from mesg_pusher.backoff import backoff


def test_first_attempts_grow_from_first_with_jitter() -> None:
    for attempt, base in ((0, 0.2), (1, 0.4), (2, 0.8)):
        delays = [backoff(attempt) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > base * 0.2  # jittered, not in step


@pytest.mark.parametrize("attempt", [30, 1023, 1024, 5000, 10**6])
def test_an_engine_away_for_hours_still_gets_a_capped_delay(attempt: int) -> None:
    # At about 1024 attempts (over an hour at the 5 s cap) 2**attempt no longer converts to a
    # float; the outbox and the reconnect loop must keep retrying, not die of OverflowError.
    assert 2.5 <= backoff(attempt) <= 5.0
    assert 5.0 <= backoff(attempt, first=1.0, cap=10.0) <= 10.0
