"""``received`` on a private-encrypted- channel: the service decrypts with the master key."""

from __future__ import annotations

import base64

from mesg_local_engine.app import Application
from tests.support.receive import channel, next_event, run
from tests.support.soketi import Soketi
from tests.support.stack import running_stack

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()


async def test_encrypted_channel_events_arrive_decrypted(soketi: Soketi) -> None:
    name = channel("private-encrypted-recv")
    env = {"PUSHER_SUBSCRIBE": name, "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": MASTER_KEY}
    with running_stack(soketi, env=env) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            assert (await run(app, instance, "subscribe", {"channel": name})).ok
            events = await app.listen_events(instance, key="received")
            try:
                data = {"secret": "plans", "n": 7}
                result = await run(app, instance, "trigger", {"channel": name, "name": "e2e", "data": data})
                assert result.ok, result.error
                got = await next_event(events, lambda d: d["event"] == "e2e")
                assert got == {"channel": name, "event": "e2e", "data": data}
            finally:
                events.close()
        assert MASTER_KEY not in stack.service.log()
