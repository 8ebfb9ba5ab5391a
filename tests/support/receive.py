"""Shared by the receive tests: waiting for MESG events, unique channel names."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import aiohttp

from mesg_local_engine.app import EventListener
from mesg_pusher.definition import check_event_data
from tests.support.e2e import DEFINITION, channel, run

__all__ = ["DEFINITION", "channel", "next_event", "next_keyed", "no_event", "post_webhook", "run", "signed"]


async def next_event(
    events: EventListener, matches: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The next event whose data ``matches``; others are skipped."""
    async with asyncio.timeout(timeout):
        async for key, data in events:
            assert check_event_data(DEFINITION.name, DEFINITION.events[key], data) is None
            if matches(data):
                return data
    raise AssertionError("event stream ended")


async def next_keyed(
    events: EventListener, matches: Callable[[str, dict[str, Any]], bool], timeout: float = 10.0
) -> tuple[str, dict[str, Any]]:
    """The next ``(key, data)`` that ``matches``, for a stream of several event keys."""
    async with asyncio.timeout(timeout):
        async for key, data in events:
            assert check_event_data(DEFINITION.name, DEFINITION.events[key], data) is None
            if matches(key, data):
                return key, data
    raise AssertionError("event stream ended")


async def no_event(
    events: EventListener, matches: Callable[[dict[str, Any]], bool], until: Callable[[dict[str, Any]], bool]
) -> None:
    """Read events until one satisfies ``until``; fail if one ``matches`` on the way."""
    async with asyncio.timeout(10):
        async for _, data in events:
            assert not matches(data), f"unexpected event {data}"
            if until(data):
                return


def signed(body: str, secret: str) -> str:
    """The ``X-Pusher-Signature`` Pusher puts on a webhook: hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


async def post_webhook(port: int, body: bytes | str, headers: dict[str, str]) -> int:
    """POST a webhook to the service's endpoint on ``port``; the HTTP status."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/", data=body, headers=headers) as response,
    ):
        return response.status
