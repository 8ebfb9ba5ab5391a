"""``online`` and ``offline``: the listener signs in with a watchlist, through the engine.

soketi 1.6.1 has no watchlist (it never sends ``pusher_internal:watchlist_events``), so the
listener connects to a stand-in that follows Pusher's documented frames
(tests/support/pusher_standin.py), while tasks still go to soketi. Users come online and go
offline by signing in to the stand-in with a real WebSocket client, as browsers would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from mesg_local_engine.app import Application, EventListener
from tests.support.container import service_factory
from tests.support.processes import EngineProcess, ServiceProcess, start_services, terminate_all
from tests.support.pusher_standin import PusherStandIn
from tests.support.pusher_ws import PusherWS, sign_user
from tests.support.receive import next_keyed
from tests.support.soketi import Soketi
from tests.support.stack import engine_generation

WATCHER = "mesg-watcher"
WATCHED = ("alice", "bob", "carol")


@pytest.fixture
def standin(soketi: Soketi) -> Iterator[PusherStandIn]:
    with PusherStandIn(soketi.app.key, soketi.app.secret) as server:
        yield server


async def _signed_in(standin: PusherStandIn, user_id: str) -> PusherWS:
    """A browser of ``user_id`` signed in to the stand-in (connected: call ``close`` to leave)."""
    ws = PusherWS(standin.ws_url())
    await ws.__aenter__()
    user_data = json.dumps({"id": user_id})
    await ws.signin(sign_user(standin.key, standin.secret, ws.socket_id, user_data), user_data)
    return ws


@pytest.fixture
async def watching(
    soketi: Soketi, standin: PusherStandIn
) -> AsyncIterator[tuple[EventListener, list[ServiceProcess]]]:
    """bob online, then the engine, an application listening, then the service signing in."""
    bob = await _signed_in(standin, "bob")
    generation, runners = engine_generation()
    env = {
        **soketi.pusher_env(),
        "PUSHER_WS_HOST": "127.0.0.1",
        "PUSHER_WS_PORT": str(standin.port),
        "PUSHER_LISTENER_USER_ID": WATCHER,
        "PUSHER_LISTENER_USER_INFO": json.dumps({"name": "MESG"}),
        "PUSHER_LISTENER_WATCHLIST": ",".join(WATCHED),
    }
    engine = EngineProcess(env=env, generation=generation, runners=runners).start()
    services: tuple[ServiceProcess, ...] = ()
    try:
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            # Listening before the service starts: the online status at sign-in is not missed.
            events = await app.listen_events(instance)
            services = start_services(engine, factory=service_factory())
            try:
                yield events, list(services)
            finally:
                events.close()
                await bob.close()
    finally:
        terminate_all([engine, *services])


async def test_watched_users_online_and_offline_become_events(
    standin: PusherStandIn, watching: tuple[EventListener, list[ServiceProcess]]
) -> None:
    events, services = watching
    watchlist = ("online", "offline")
    # At sign-in: bob was already online.
    key, data = await next_keyed(events, lambda k, d: k in watchlist)
    assert (key, data) == ("online", {"user_id": "bob"})
    for service in services:
        service.wait_for_log(f"signed in to Pusher as {WATCHER} (watching 3 users)")
    # The stand-in checked the signature; this is what the service signed in with.
    assert {"id": WATCHER, "user_info": {"name": "MESG"}, "watchlist": list(WATCHED)} in standin.signins
    assert standin.refused_signins == 0
    # And it does refuse a wrong one, as Pusher does: the acceptance above proves ours right.
    async with PusherWS(standin.ws_url()) as ws:
        user_data = json.dumps({"id": "mallory"})
        with pytest.raises(Exception, match="4009"):
            await ws.signin(sign_user(standin.key, "wrong-secret", ws.socket_id, user_data), user_data)
    assert standin.refused_signins == 1

    alice = await _signed_in(standin, "alice")
    key, data = await next_keyed(events, lambda k, d: k in watchlist and d["user_id"] != "bob")
    assert (key, data) == ("online", {"user_id": "alice"})

    # Someone not on the watchlist comes and goes: no event for dave before alice's offline.
    dave = await _signed_in(standin, "dave")
    await dave.close()
    await alice.close()

    def alice_offline(key: str, data: dict[str, object]) -> bool:
        assert data.get("user_id") != "dave", f"{key} {data}: dave is not watched"
        return (key, data) == ("offline", {"user_id": "alice"})

    await next_keyed(events, alice_offline)
