"""The webhook endpoint under abuse: a real flood of slow, abandoned, malformed and forged
connections, executions running.

Without the gate in front of the endpoint, the same flood wrote two ERROR tracebacks per connection, held a
descriptor for every slow client for as long as it liked, and halved the executions' pace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from mesg_pusher.receive.gate import BACKLOG, MAX_CONNECTIONS, REQUEST_TIMEOUT
from tests.support.flood import flood
from tests.support.receive import post_webhook, signed
from tests.support.soketi import Soketi, free_port
from tests.support.stack import Stack, running_stack

PORT = free_port()
SLOW, ABANDONED, MALFORMED, FORGED, HOLD = 600, 4000, 200, 500, REQUEST_TIMEOUT + 5


@pytest.fixture(scope="module")
def fstack(soketi: Soketi) -> Iterator[Stack]:
    with running_stack(soketi, env={"PUSHER_WEBHOOK_PORT": str(PORT)}) as stack:
        stack.service.wait_for_log("webhook endpoint listening")
        yield stack


@pytest.mark.timeout(240)
async def test_flood_of_slow_and_abandoned_clients(fstack: Stack) -> None:
    figures = await flood(
        fstack, PORT, slow=SLOW, abandoned=ABANDONED, malformed=MALFORMED, forged=FORGED, hold=HOLD
    )
    print(figures.report())
    # Hanging up is logged at DEBUG at most: nothing at the default level but two summaries.
    assert figures.error_lines == 0, fstack.service.log()[-3000:]
    assert figures.log_lines <= 4, fstack.service.log()[-3000:]
    log = fstack.service.log()
    # The first of each kind at once, the rest in the next summary (a minute later).
    assert log.count("requests with an unknown key or a bad signature (HTTP 401)") == 1, log[-3000:]
    assert log.count("connections over the cap of 256") == 1, log[-3000:]
    # Over the cap, clients are refused at once with a 503; under it, cut at the deadline.
    outcomes = figures.outcomes
    assert outcomes["abandoned"] == ABANDONED
    # aiohttp answers what it cannot parse with 400; its traceback is for DEBUG only.
    assert outcomes["malformed: 400"] == MALFORMED, outcomes
    assert outcomes["forged: 401"] == FORGED, outcomes
    assert outcomes["slow: 503 at once"] >= SLOW - MAX_CONNECTIONS - 50, outcomes
    assert outcomes["slow: 503 at once"] + outcomes["slow: cut"] == SLOW, outcomes
    cut = sorted(figures.slow_held)[-outcomes["slow: cut"] :]
    assert all(REQUEST_TIMEOUT - 1 <= held < HOLD for held in cut), cut
    # Descriptors stay bounded by the cap, whatever the flood: the engine and Pusher keep theirs.
    assert figures.max_fds <= figures.fds_before + MAX_CONNECTIONS + 3 * BACKLOG + 10, figures.report()
    # Executions went on, none failed.
    assert figures.executed > 0 and figures.failed == 0, figures.report()

    # The endpoint still serves a real webhook.
    app = fstack.soketi.app
    body = json.dumps(
        {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": "x"}]}
    )
    headers = {"X-Pusher-Key": app.key, "X-Pusher-Signature": signed(body, app.secret)}
    assert await post_webhook(PORT, body, headers) == 200
