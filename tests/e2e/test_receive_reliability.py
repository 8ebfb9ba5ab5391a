"""The listener survives a Pusher restart; events wait for the engine while it is away."""

from __future__ import annotations

import asyncio

import pusher

from mesg_local_engine.app import Application
from tests.support.fixtures import SoketiFactory
from tests.support.receive import channel, next_event, run
from tests.support.soketi import Soketi
from tests.support.stack import running_stack


async def test_listener_reconnects_and_resubscribes(soketi_factory: SoketiFactory) -> None:
    server: Soketi = soketi_factory()
    public, private = channel(), channel("private-rc")
    with running_stack(server, env={"PUSHER_SUBSCRIBE": f"{public},{private}"}) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            assert (await run(app, instance, "subscribe", {"channels": [public, private]})).ok
            events = await app.listen_events(instance, key="received")
            try:
                assert (
                    await run(app, instance, "trigger", {"channel": public, "name": "before", "data": 1})
                ).ok
                await next_event(events, lambda d: d["event"] == "before")

                offset = len(stack.service.log())
                server.stop()
                stack.service.wait_for_log("Pusher connection", after=offset)
                server.start()  # same port
                stack.service.wait_for_log(f"subscribed to {public}", timeout=30, after=offset)
                stack.service.wait_for_log(f"subscribed to {private}", timeout=30, after=offset)

                for name in (public, private):
                    assert (
                        await run(app, instance, "trigger", {"channel": name, "name": "after", "data": 2})
                    ).ok
                    got = await next_event(
                        events, lambda d, name=name: d["event"] == "after" and d["channel"] == name
                    )
                    assert got["data"] == 2
            finally:
                events.close()


async def test_events_are_retried_while_the_engine_is_away(soketi: Soketi) -> None:
    name = channel()
    with running_stack(soketi, env={"PUSHER_SUBSCRIBE": name}) as stack:
        stack.service.wait_for_log(f"subscribed to {name}")
        offset = len(stack.service.log())
        stack.engine.stop()
        client = pusher.Pusher(
            app_id=soketi.app.app_id,
            key=soketi.app.key,
            secret=soketi.app.secret,
            host=soketi.host,
            port=soketi.port,
            ssl=False,
        )
        client.trigger(name, "while-away", {"n": 1})
        stack.service.wait_for_log("events held, retrying", after=offset)
        # Let the retry backoff grow to seconds, so that the listener below is ready before
        # the next attempt (the engine does not replay events to late listeners).
        await asyncio.sleep(3)
        stack.engine.restart()
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            events = await app.listen_events(instance, key="received")
            try:
                got = await next_event(events, lambda d: d["event"] == "while-away", timeout=20)
                assert got == {"channel": name, "event": "while-away", "data": {"n": 1}}
            finally:
                events.close()
