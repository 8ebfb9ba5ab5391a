"""The one backoff policy for waiting on something that is away (engine, Pusher connection)."""

from __future__ import annotations

import random


def backoff(attempt: int, first: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with jitter, capped: ``first * 2**attempt``, at most ``cap``, times 0.5 to 1.

    The jitter keeps many waiters (or many services) from retrying in step.
    """
    return min(cap, first * 2**attempt) * random.uniform(0.5, 1.0)
