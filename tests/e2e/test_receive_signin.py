"""The listener signs in (``pusher:signin``) where soketi requires it: user authentication on.

soketi 1.6.1 with ``SOKETI_DEFAULT_APP_USER_AUTHENTICATION`` closes, with 4009, a connection
that neither signed in nor joined a private channel within ``SOKETI_USER_AUTHENTICATION_TIMEOUT``
(30 s; shortened here). The listener listens to a public channel only, so only the sign-in
keeps it connected.
"""

from __future__ import annotations

import pytest

from mesg_local_engine.app import Application
from tests.support.fixtures import SoketiFactory
from tests.support.pusher_ws import PusherWS
from tests.support.receive import channel, next_event, run
from tests.support.soketi import Soketi
from tests.support.stack import running_stack

TIMEOUT_MS = "1500"


@pytest.fixture
def strict_soketi(soketi_factory: SoketiFactory) -> Soketi:
    """soketi with user authentication on and a short sign-in timeout."""
    return soketi_factory(user_authentication=True, env={"SOKETI_USER_AUTHENTICATION_TIMEOUT": TIMEOUT_MS})


async def _closed_for_not_signing_in(ws_url: str) -> int | None:
    """Open a connection that does not sign in and wait for soketi to close it: the timeout passed."""
    async with PusherWS(ws_url) as ws:
        await ws.connection.wait_closed()
        return ws.close_code


async def test_the_signed_in_listener_outlives_the_authentication_timeout(strict_soketi: Soketi) -> None:
    public = channel("signin")
    env = {
        "PUSHER_SUBSCRIBE": public,
        "PUSHER_LISTENER_SIGNIN": "true",
        "PUSHER_LISTENER_USER_ID": "mesg-signed",
    }
    with running_stack(strict_soketi, env=env) as stack:
        for service in stack.services:
            service.wait_for_log("signed in to Pusher as mesg-signed")
            service.wait_for_log(f"subscribed to {public}")
        # A connection opened after the listener's, closed for not signing in: the listener's
        # own timeout has passed too.
        assert await _closed_for_not_signing_in(strict_soketi.ws_url()) == 4009
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            events = await app.listen_events(instance, key="received")
            try:
                result = await run(
                    app, instance, "trigger", {"channel": public, "name": "still", "data": {"n": 1}}
                )
                assert result.ok, result.error
                got = await next_event(events, lambda d: d["event"] == "still")
                assert got == {"channel": public, "event": "still", "data": {"n": 1}}
            finally:
                events.close()
        log = stack.log()
        assert "Pusher connection to" not in log, log  # never lost, so never reconnected
        assert "Pusher listener stopped" not in log, log


async def test_without_the_signin_the_listener_stops_and_says_what_to_set(strict_soketi: Soketi) -> None:
    with running_stack(strict_soketi, env={"PUSHER_SUBSCRIBE": channel("nosignin")}) as stack:
        stack.service.wait_for_log("set PUSHER_LISTENER_SIGNIN=true")
        assert "4009" in stack.service.log()
