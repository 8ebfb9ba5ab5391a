"""The soketi test server answers like Pusher where the project's tests rely on it.

Why: every end-to-end test trusts this server; in particular its error statuses must be real
(an unpatched soketi answers 401 as 200, so a wrong secret would look like success).
"""

from __future__ import annotations

import asyncio
import uuid

import pusher
import pytest
from pusher.errors import PusherBadAuth

from tests.support.pusher_ws import PusherError, PusherWS, sign_private
from tests.support.soketi import Soketi


def _client(server: Soketi, secret: str | None = None) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=server.app.app_id,
        key=server.app.key,
        secret=server.app.secret if secret is None else secret,
        host=server.host,
        port=server.port,
        ssl=False,
    )


def _channel(prefix: str = "") -> str:
    """A fresh channel name: the session server is shared between tests."""
    return f"{prefix}soketi-test-{uuid.uuid4().hex[:12]}"


@pytest.mark.asyncio
async def test_trigger_reaches_public_subscriber_with_data_intact(soketi: Soketi) -> None:
    channel = _channel()
    payload = {"text": 'héllo "wörld" ✓', "n": 42, "nested": {"list": [1, 2.5, None, True]}}
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(channel)
        result = await asyncio.to_thread(_client(soketi).trigger, channel, "my-event", payload)
        assert result == {"ok": True}
        event = await ws.next_event(channel=channel, event="my-event")
    assert event["channel"] == channel
    assert event["data"] == payload


def test_wrong_secret_is_rejected_with_401(soketi: Soketi) -> None:
    with pytest.raises(PusherBadAuth):
        _client(soketi, secret="not-the-secret").trigger(_channel(), "my-event", {"a": 1})


@pytest.mark.asyncio
async def test_channel_info_reports_occupancy_and_subscription_count(soketi: Soketi) -> None:
    channel = _channel()
    client = _client(soketi)
    empty = await asyncio.to_thread(client.channel_info, channel, ["subscription_count"])
    assert empty["occupied"] is False
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(channel)
        info = await asyncio.to_thread(client.channel_info, channel, ["subscription_count"])
    assert info["occupied"] is True
    assert info["subscription_count"] == 1


@pytest.mark.asyncio
async def test_private_channel_needs_a_valid_signature(soketi: Soketi) -> None:
    channel = _channel("private-")
    app = soketi.app
    async with PusherWS(soketi.ws_url()) as good, PusherWS(soketi.ws_url()) as bad:
        good_auth = sign_private(app.key, app.secret, good.socket_id, channel)
        await good.subscribe(channel, auth=good_auth)
        with pytest.raises(PusherError) as refused:
            await bad.subscribe(channel, auth=sign_private(app.key, "wrong", bad.socket_id, channel))
        assert refused.value.frame["event"] == "pusher:subscription_error"
        assert refused.value.data["status"] == 401
        # A signature made for another socket must not work either.
        with pytest.raises(PusherError):
            await bad.subscribe(channel, auth=good_auth)
        await asyncio.to_thread(_client(soketi).trigger, channel, "secret-event", {"x": 1})
        assert (await good.next_event(channel=channel))["data"] == {"x": 1}
