"""The one backoff policy for waiting on something that is away (engine, Pusher connection)."""

from __future__ import annotations

import random

_MAX_EXPONENT = 62


def backoff(attempt: int, first: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with jitter, capped: ``first * 2**attempt``, at most ``cap``, times 0.5 to 1.

    The jitter keeps many waiters (or many services) from retrying in step. The exponent is
    bounded: an engine away for hours reaches attempt 1024, where ``2**attempt`` no longer
    converts to a float, and the retry loops must keep going, not die of an OverflowError.
    """
    return min(cap, first * 2.0 ** min(attempt, _MAX_EXPONENT)) * random.uniform(0.5, 1.0)
