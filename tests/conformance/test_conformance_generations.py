"""Conformance of the installed service with engines of generation G2 (v0.17-v0.20) and G3
(v0.21-v0.26), as emulated independently by engine.js (see emulation.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.e2e import channel
from tests.support.emulation import EmulatedEngine, EngineFactory, ServiceFactory, State, now_ms
from tests.support.installed import InstalledService
from tests.support.pusher_ws import PusherWS
from tests.support.soketi import Soketi

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=["g2", "g3"])
def generation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def trigger(ch: str, name: str = "conformance", data: Any = None) -> dict[str, Any]:
    return {"channel": ch, "name": name, "data": {"n": 1} if data is None else data}


def clean_log(service: InstalledService, engine: EmulatedEngine) -> None:
    """No traceback, and no secret: neither the service's signature nor any token it was given."""
    log = service.log()
    assert "Traceback" not in log, log[-3000:]
    secrets = [service.env.get("MESG_REGISTER_SIGNATURE", "")]
    secrets += [r["token"] for r in engine.state()["registers"] if r.get("token")]
    leaked = [secret for secret in secrets if secret and secret in log]
    assert leaked == [], f"secrets in the service's log: {leaked}"


def accepted(execution: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in execution["attempts"] if a.get("ok")]


def start(engine_factory: EngineFactory, service_factory: ServiceFactory, generation: str, nodes: int = 1,
          serving: int = 1) -> tuple[EmulatedEngine, list[InstalledService]]:  # fmt: skip
    """An engine of ``nodes`` nodes, the installed service on the first ``serving`` of them, subscribed."""
    engine = engine_factory(generation, nodes=nodes)
    services = [service_factory(node) for node in engine.nodes[:serving]]
    for node in engine.nodes[:serving]:
        engine.wait_subscribed(node.index)
    return engine, services


def test_listens_as_its_generation_requires(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    engine, (service,) = start(engine_factory, service_factory, generation)
    node = engine.nodes[0]
    state = engine.state()
    (sub,) = [s for s in state["subscriptions"] if s["active"]]
    if generation == "g2":
        # New work only, and only this runner's: without executorHash it would get every runner's.
        assert sub["statuses"] == ["InProgress"]
        assert sub["executorHash"] == node.runner
        assert sub["instanceHash"] in ("", engine.instance)
        assert state["registers"] == []
    else:
        # Registered with the signature the engine gave, then streamed with the token it got.
        assert [r for r in state["registers"] if not r.get("ok")] == []
        assert [r["runner"] for r in state["registers"]] == [node.runner]
        assert sub["runner"] == node.runner
    clean_log(service, engine)


async def test_trigger_is_delivered(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory, soketi: Soketi
) -> None:
    engine, _ = start(engine_factory, service_factory, generation)
    ch = channel()
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(ch)
        hash_ = engine.create("trigger", trigger(ch, data={"hello": "world", "n": 2}))
        frame = await ws.next_event(channel=ch, event="conformance", timeout=20)
        done = await asyncio.to_thread(engine.wait_finished, [hash_])
    execution = done[hash_]
    assert frame["data"] == {"hello": "world", "n": 2}
    # engine.js validated the outputs against the installed mesg.yml: a mismatch would be Failed.
    assert (execution["status"], execution["outputs"], execution["error"]) == (
        "Completed",
        {"message": "sent"},
        None,
    )
    assert len(execution["attempts"]) == 1


def test_events_reach_the_engine(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    # G2: Event.Create with MESG_INSTANCE_HASH; G3: Runner.Event with the token. engine.js refuses
    # another instance hash and data that does not match the installed mesg.yml's `received`.
    ch = channel()
    engine = engine_factory(generation)
    service = service_factory(engine.nodes[0], env={"PUSHER_SUBSCRIBE": ch})
    engine.wait_subscribed(0)
    hashes: list[str] = []

    def received(state: State) -> list[dict[str, Any]]:
        if not hashes or engine.execution(hashes[-1])["status"] != "Completed":
            # The listener subscribes on its own schedule: trigger again until an event comes back.
            hashes.append(engine.create("trigger", trigger(ch, name="echo", data={"k": "v"})))
        return [e for e in state["events"] if e["key"] == "received"]

    (event, *_) = engine.wait_for(received, "a received event")
    assert event["data"]["channel"] == ch
    assert (event["data"]["event"], event["data"]["data"]) == ("echo", {"k": "v"})
    assert event["instance"] == engine.instance
    assert event["via"] == ("Event.Create" if generation == "g2" else "Event")
    clean_log(service, engine)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"g2": ["MESG_INSTANCE_HASH"], "g3": ["MESG_ENV_HASH"]}, None),
        ({"g2": ["MESG_ENDPOINT"], "g3": ["MESG_SERVICE_HASH"]}, None),
        (
            {"g2": {"MESG_RUNNER_HASH": "not-base58!"}, "g3": {"MESG_RUNNER_HASH": "not-base58!"}},
            "MESG_RUNNER_HASH",
        ),
    ],
    ids=["missing", "missing-other", "malformed"],
)
def test_incomplete_engine_variables_stop_the_service_clearly(
    generation: str,
    variables: dict[str, Any],
    named: str | None,
    engine_factory: EngineFactory,
    service_factory: ServiceFactory,
) -> None:
    engine = engine_factory(generation)
    change = variables[generation]
    if isinstance(change, dict):
        service = service_factory(engine.nodes[0], env=change)
    else:
        service = service_factory(engine.nodes[0], without=change)
    code = service.wait(30)
    log = service.log()
    assert code != 0, log
    for name in [named] if named else change:
        assert name in log, log
    assert "Traceback" not in log, log
    assert engine.state()["subscriptions"] == []


def test_bad_input_fails_clearly_and_the_service_carries_on(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    engine, (service,) = start(engine_factory, service_factory, generation)
    bad = [
        engine.create("trigger", trigger("bad channel!")),
        engine.create("trigger", {"channels": ["a", "b"], "channel": "c", "name": "x", "data": "x"}),
        engine.create("trigger", trigger(channel(), name="x" * 201)),
    ]
    good = engine.create("trigger", trigger(channel()))
    done = engine.wait_finished([*bad, good])
    errors = [done[h]["error"] for h in bad]
    assert [done[h]["status"] for h in bad] == ["Failed"] * 3, errors
    assert "channel" in errors[0] and "bad channel!" in errors[0], errors[0]
    assert "channel" in errors[1] and "channels" in errors[1], errors[1]
    assert "name" in errors[2] and "200" in errors[2], errors[2]
    assert done[good]["status"] == "Completed"
    assert service.running
    clean_log(service, engine)


def test_another_runners_executions_are_left_alone(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    # Two nodes run the instance; only node 0's service is up. Node 1's executions wait for it.
    engine, (service,) = start(engine_factory, service_factory, generation, nodes=2, serving=1)
    theirs = engine.create_many([{"task": "trigger", "inputs": trigger(channel()), "executor": 1}] * 10)
    ours = engine.create("trigger", trigger(channel()), executor=0)
    engine.wait_finished([ours])
    service.assert_alive(1.0)  # time for a stray result on node 1's work to arrive
    state = engine.state()
    left = [e for e in state["executions"] if e["hash"] in theirs]
    assert [(e["status"], e["attempts"]) for e in left] == [("InProgress", [])] * 10
    assert state["orphan_attempts"] == []


async def test_two_runners_share_200_executions_exactly_once(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory, soketi: Soketi
) -> None:
    engine, services = start(engine_factory, service_factory, generation, nodes=2, serving=2)
    ch = channel()
    count = 200
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(ch)
        items = [
            {"task": "trigger", "inputs": trigger(ch, name="shared", data={"i": i})} for i in range(count)
        ]
        hashes = await asyncio.to_thread(engine.create_many, items)  # executor: random among both
        seen: list[int] = []
        for _ in range(count):
            frame = await ws.next_event(channel=ch, event="shared", timeout=60)
            seen.append(frame["data"]["i"])
        done = await asyncio.to_thread(engine.wait_finished, hashes, 120)
        with pytest.raises(TimeoutError):
            extra = await ws.next_event(channel=ch, event="shared", timeout=1.0)
            pytest.fail(f"an event arrived twice: {extra}")
    assert sorted(seen) == list(range(count))
    assert {e["status"] for e in done.values()} == {"Completed"}
    # Exactly one call per execution, accepted, from the executor's own node.
    calls = [e["attempts"] for e in done.values()]
    assert [len(c) for c in calls] == [1] * count
    assert all(
        c[0].get("ok") and c[0]["node"] == e["executor"] for c, e in zip(calls, done.values(), strict=True)
    )
    shares = [sum(1 for e in done.values() if e["executor"] == node.index) for node in engine.nodes]
    assert min(shares) > 0, shares
    print(f"\n{generation}: 200 executions shared {shares[0]}/{shares[1]} between two runners")
    for service in services:
        clean_log(service, engine)


async def test_held_result_is_delivered_after_an_engine_restart(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory, soketi: Soketi
) -> None:
    engine, (service,) = start(engine_factory, service_factory, generation)
    ch = channel()
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(ch)
        # The engine goes down during the service's result call, for 1.5 s, and comes back with
        # no tokens (G3): the service must hold the result, register again and deliver it.
        engine.call("restart_on_next_result", down_ms=1500)
        restarted = now_ms()
        hash_ = engine.create("trigger", trigger(ch, name="held"))
        await ws.next_event(channel=ch, event="held", timeout=20)
        done = await asyncio.to_thread(engine.wait_finished, [hash_], 60)
        execution = done[hash_]
        assert execution["status"] == "Completed"
        assert len(accepted(execution)) == 1
        with pytest.raises(TimeoutError):  # the result was retried, not the trigger
            await ws.next_event(channel=ch, event="held", timeout=0.5)
    # Back to work: subscribed again, and a new execution goes through.
    await asyncio.to_thread(engine.wait_subscribed, 0, restarted)
    after = engine.create("trigger", trigger(channel()))
    assert (await asyncio.to_thread(engine.wait_finished, [after]))[after]["status"] == "Completed"
    state = engine.state()
    if generation == "g3":
        registered = [r for r in state["registers"] if r.get("ok")]
        assert len(registered) >= 2, json.dumps(state["registers"])
        assert all(r["at"] > restarted for r in registered[1:])
    clean_log(service, engine)


def test_result_refused_for_good_is_dropped_once(
    generation: str, engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    # The engine no longer knows the execution when its result arrives: the refusal is final,
    # so the service must drop that result after one call and keep serving.
    engine, (service,) = start(engine_factory, service_factory, generation)
    engine.call("forget_on_next_result")
    forgotten = engine.create("trigger", trigger(channel()))
    engine.wait_for(lambda s: s["orphan_attempts"], "the refused result call")
    later = engine.create("trigger", trigger(channel()))
    assert engine.wait_finished([later])[later]["status"] == "Completed"
    service.assert_alive(3.0)  # time for retries of the refused result to show
    refused = engine.state()["orphan_attempts"]
    assert [a["execution"] for a in refused] == [forgotten]
    expected = "not found: invalid request" if generation == "g3" else "doesn't exist"
    assert expected in refused[0]["error"]
    clean_log(service, engine)


def test_reregisters_after_an_engine_restart(
    engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    engine, (service,) = start(engine_factory, service_factory, "g3")
    before = now_ms()
    engine.call("restart", down_ms=1000)  # every token is forgotten
    engine.wait_for(
        lambda s: [r for r in s["registers"] if r.get("ok") and r["at"] > before], "a new Register"
    )
    engine.wait_subscribed(0, after=before)
    hash_ = engine.create("trigger", trigger(channel()))
    assert engine.wait_finished([hash_])[hash_]["status"] == "Completed"
    assert service.running
    clean_log(service, engine)


def test_token_taken_by_another_registration_is_replaced(
    engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    # Another process registers as the same runner: the service's token stops working while its
    # stream stays open (the engine checks tokens when a call starts). Its next result is refused
    # with "credential token doesn't exist"; it must register again and deliver the result.
    engine, (service,) = start(engine_factory, service_factory, "g3")
    engine.call("register_as", node=0)
    hash_ = engine.create("trigger", trigger(channel()))
    execution = engine.wait_finished([hash_])[hash_]
    assert execution["status"] == "Completed"
    assert len(accepted(execution)) == 1
    assert execution["attempts"][0]["error"] == "credential token doesn't exist"
    by_service = [r for r in engine.state()["registers"] if r.get("ok") and "by" not in r]
    assert len(by_service) == 2  # at start, and again once its token was refused
    assert service.running
    clean_log(service, engine)


def test_wrong_signature_is_retried_without_crashing(
    engine_factory: EngineFactory, service_factory: ServiceFactory
) -> None:
    engine = engine_factory("g3")
    service = service_factory(engine.nodes[0], rogue=True)  # signed by a key the engine does not trust

    def refused(state: State) -> list[dict[str, Any]]:
        return [r for r in state["registers"] if r.get("error") == "verification of the signature failed"]

    engine.wait_for(lambda s: len(refused(s)) >= 3, "three refused Register calls")
    service.assert_alive(3.0)
    attempts = len(refused(engine.state()))
    assert attempts < 20, f"{attempts} Register calls in a few seconds: no backoff"
    log = service.log()
    assert "signature" in log.lower(), log[-3000:]
    clean_log(service, engine)
    # Once the engine trusts that key (an operator fixed it), the same process gets to work.
    engine.call("authorize_rogue")
    engine.wait_subscribed(0, timeout=60)  # the backoff after refusals reaches 30 s at most
    hash_ = engine.create("trigger", trigger(channel()))
    assert engine.wait_finished([hash_])[hash_]["status"] == "Completed"
    clean_log(service, engine)
