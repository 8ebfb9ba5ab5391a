"""Waiting on something that is away (engine, Pusher connection): the one backoff policy, and
the one way to give queued deliveries a last chance before stopping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

_MAX_EXPONENT = 62


def backoff(attempt: int, first: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with jitter, capped: ``first * 2**attempt``, at most ``cap``, times 0.5 to 1.

    The jitter keeps many waiters (or many services) from retrying in step. The exponent is
    bounded: an engine away for hours reaches attempt 1024, where ``2**attempt`` no longer
    converts to a float, and the retry loops must keep going, not die of an OverflowError.
    """
    return min(cap, first * 2.0 ** min(attempt, _MAX_EXPONENT)) * random.uniform(0.5, 1.0)


async def wait_until_empty(pending: Callable[[], int], timeout: float) -> int:
    """Wait until ``pending()`` is 0 or ``timeout`` passes; returns what is still pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return pending()
