"""The service's /metrics (``MESG_PUSHER_METRICS_PORT``), scraped and parsed with
prometheus_client's own parser; and waiting for a state it shows instead of sleeping."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """Every sample of /metrics, keyed by sample name and labels."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def wait_for_gauge(port: int, name: str, wanted: float, timeout: float = 60.0) -> None:
    """Poll /metrics until gauge ``name`` reads ``wanted``; fail after ``timeout`` (generous)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = value(await scrape(port), name)
        except aiohttp.ClientError:
            seen = None  # not listening yet
        if seen == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} read {seen} after {timeout:g} s, not {wanted}")
