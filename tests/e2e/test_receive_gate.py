"""``Tally``: what clients do wrong is logged as one warning at once, then one summary per interval."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from mesg_pusher.receive.gate import Tally


async def test_a_burst_is_one_warning_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    tally = Tally(lambda counts: f"refused {counts['x']}", every=0.2)
    with caplog.at_level(logging.WARNING, logger="mesg_pusher.receive.gate"):
        for _ in range(1000):
            tally.note("x")
        await asyncio.sleep(0.3)  # the summary of the 999 others
        await asyncio.sleep(0.3)  # nothing more happened: nothing more is logged
        tally.note("x")  # quiet again: the next one is reported at once
        tally.close()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "refused 1 (reported at most every 0.2 s)",
        "refused 999 (reported at most every 0.2 s)",
        "refused 1 (reported at most every 0.2 s)",
    ]
    assert tally.totals == Counter({"x": 1001})
