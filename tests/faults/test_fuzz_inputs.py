"""Bad input, property-based: arbitrary Structs for every task, through the codec and validation.

For each task key in ``TASKS`` hypothesis builds JSON-like input dicts — any nesting, unicode,
empty and large strings, ints and floats out of range, NaN, ±Infinity, -0.0, keys that are not
identifiers — mixed with that task's mesg.yml inputs (plausible values and wrong-typed ones),
so the service's own validation is really exercised, not just the engine's.

Each example takes the wire path an execution takes: ``dict_to_struct`` (an application's
codec; what it refuses cannot be on the wire), serialise and parse, ``struct_to_dict`` (the
service's decoding), then the engine's ``check_task_inputs`` (what it refuses never reaches the
service). What remains runs through the real handler against the session soketi, sometimes with
connection inputs aimed at a closed port, at TLS on a plain-HTTP port or at a dead proxy, always
with a small timeout so the network failure paths stay fast. The handler must return outputs
valid against mesg.yml (and encodable back into a Struct), or raise a ``MesgPusherError`` with a
non-empty message; anything else is a bug.

Inputs that hit a bug already pinned by an xfail test below are kept out of the generated
domain (see ``_HOSTS``), so this property stays green and the xfail tests say what is wrong.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesg_pusher.codec import Struct, dict_to_struct, struct_to_dict
from mesg_pusher.config import CONNECTION_INPUTS, PusherSettings
from mesg_pusher.definition import Parameter, check_task_inputs, check_task_outputs, load_definition
from mesg_pusher.engine import Execution
from mesg_pusher.errors import MesgPusherError
from mesg_pusher.pusher_client import ClientPool
from mesg_pusher.tasks import TASKS, TaskContext
from mesg_pusher.worker import Worker
from tests.support.soketi import Soketi, free_port

DEFINITION = load_definition()
TASK_KEYS = list(TASKS)
# A master key Pusher's SDK accepts (base64 of 32 bytes) and near misses.
MASTER_KEY = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
HANDLER_TIMEOUT = 10.0  # far above any example's own timeout: hitting it means a hang
# Per-test example counts: 12 tasks x (EXAMPLES + WORKER_EXAMPLES) stays well under a minute.
EXAMPLES = 120
WORKER_EXAMPLES = 25


# --- JSON-like values -----------------------------------------------------------------------

_KEY_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "a.b", "a b", "1", "$ref", "__proto__", "ключ", "\x00", "é✓", "-"]),
).filter(lambda k: k not in CONNECTION_INPUTS)  # connection inputs are generated on purpose

_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond a double's exact range
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 0.5, 2.0**53 + 2, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]),
)

_STRINGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "é✓\u2028\u2029",
            "😀" * 3000,  # characters of four bytes, 12 KB in all: over the 10 KB data limit
            "x" * 10_240,  # exactly the limit
            "x" * 10_241,  # one byte over
            "x" * 50_000,
            "NaN",
            "Infinity",
            '{"a":1}',
        ]
    ),
)

_LEAVES = st.one_of(st.none(), st.booleans(), _NUMBERS, _STRINGS)

JSON = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEY_TEXT, children, max_size=4),
    ),
    max_leaves=20,
)


def _or_junk(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all (wrong types, null, nesting)."""
    return st.one_of(plausible, plausible, plausible, JSON)


# --- plausible values of the task inputs ------------------------------------------------------

_CHANNEL_CHARS = "A-Za-z0-9_\\-=@,.;"
CHANNEL = st.one_of(
    st.from_regex(rf"fuzz-[{_CHANNEL_CHARS}]{{1,20}}", fullmatch=True),
    st.sampled_from(
        [
            "fuzz",
            "presence-fuzz",
            "private-fuzz",
            "private-encrypted-fuzz",
            "#server-to-user-u1",
            "c" * 164,
            "c" * 165,
            "bad name",
            "",
            "fuzz-é",
            "a&b",
        ]
    ),
)
EVENT_NAME = st.one_of(
    st.sampled_from(["ev", "client-ev", "pusher:ev", "n" * 200, "n" * 201, "", "é✓\n"]),
    st.text(max_size=30),
)
SOCKET_ID = st.one_of(
    st.sampled_from(["123.456", "1.2", "abc", "1.", "", "1.2.3", "\u0661.\u0662"]), st.text(max_size=10)
)
INFO = st.one_of(
    st.sampled_from(
        ["user_count", "subscription_count", "user_count,subscription_count", "cache", "a&b", ",", ""]
    ),
    st.text(max_size=20),
)
USER_ID = st.one_of(st.sampled_from(["u1", "u" * 200, "u" * 201, "bad id", "", "é"]), st.text(max_size=12))


def _object_with(required: Mapping[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """An object with the given keys (each sometimes absent) and a few arbitrary extra keys."""
    known = st.fixed_dictionaries({}, optional=dict(required))
    extra = st.dictionaries(_KEY_TEXT, JSON, max_size=3)
    return st.builds(lambda k, e: {**e, **k}, known, extra)


BATCH_EVENT = st.builds(
    lambda base, opt: {**base, **opt},
    st.fixed_dictionaries({"channel": _or_junk(CHANNEL), "name": _or_junk(EVENT_NAME), "data": JSON}),
    st.fixed_dictionaries({}, optional={"socket_id": _or_junk(SOCKET_ID), "info": _or_junk(INFO)}),
)

# Plausible values by input name; an input not listed here gets arbitrary JSON.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "name": EVENT_NAME,
    "data": st.one_of(JSON, _STRINGS),
    "channel": CHANNEL,
    "channels": st.one_of(
        st.lists(CHANNEL, max_size=4),
        st.sampled_from(
            [[], ["a", "a"], [f"fuzz-{i}" for i in range(101)], [f"fuzz-{i}" for i in range(100)]]
        ),
    ),
    "socket_id": SOCKET_ID,
    "info": INFO,
    "batch": st.one_of(
        st.lists(BATCH_EVENT, min_size=1, max_size=3),
        st.lists(st.one_of(BATCH_EVENT, JSON), max_size=12),
    ),
    "filter_by_prefix": st.one_of(
        st.sampled_from(["presence-", "private-", "", "&x", "a b"]), st.text(max_size=8)
    ),
    "params": st.one_of(
        _object_with(
            {
                "filter_by_prefix": st.sampled_from(["presence-", "", "&"]),
                "info": st.one_of(INFO, st.lists(INFO, max_size=3)),
            }
        ),
        st.fixed_dictionaries({}, optional={"info": st.one_of(INFO, st.lists(INFO, max_size=3))}),
    ),
    "user_id": USER_ID,
    "user_info": st.one_of(st.dictionaries(_KEY_TEXT, JSON, max_size=4), JSON),
    "user_data": _object_with({"id": _or_junk(USER_ID)}),
    "method": st.sampled_from(["GET", "POST", "get", "PUT", "", "GET\r\n"]),
    "path": st.one_of(
        st.sampled_from(
            [
                "/channels",
                "/channels/fuzz",
                "/events",
                "/nope",
                "/../x",
                "/a b",
                "/é",
                "channels",
                "//",
                "/a?b",
            ]
        ),
        st.text(max_size=20),
    ),
    "body": JSON,
}


# --- connection inputs: aimed at soketi, a closed port, TLS on plain HTTP, a dead proxy --------

# Hosts that need no DNS. Names the config accepts but the resolver cannot encode (an empty or
# over-63-character label) are a bug pinned by test_host_with_empty_or_long_label_is_refused.
_HOSTS = ["127.0.0.1", "localhost", "[::1]", "", "  ", "bad host", "ex@mple", "[1.2]", "é.example"]
_SMALL_TIMEOUT = st.integers(min_value=1, max_value=150)
_BAD_TIMEOUT = st.one_of(
    st.sampled_from([0, -1, 600_001, 1.5, math.nan, math.inf, "soon", "1e3", True, [], {}]),
    st.integers(min_value=600_001),
)


def connection_inputs(closed_port: int) -> st.SearchStrategy[dict[str, Any]]:
    """Connection overrides; any that could reach a dead end carries a small (or invalid) timeout."""
    dead_proxy = [f"http://127.0.0.1:{closed_port}", f"http://user:pa%40ss@127.0.0.1:{closed_port}"]
    junk = {
        "appId": _or_junk(st.sampled_from(["100001", "999999", "abc", "12 3", " 100001 ", ""])),
        "key": _or_junk(st.one_of(st.sampled_from(["test-app-key", "a b", "ü#&", ""]), st.text(max_size=10))),
        "secret": _or_junk(
            st.one_of(st.sampled_from(["test-app-secret", "wrong", ""]), st.text(max_size=10))
        ),
        "useTLS": _or_junk(st.sampled_from([True, False, "false", "yes", "maybe", 2, ""])),
        "cluster": _or_junk(st.sampled_from(["mt1", "eu", "", "bad cluster"])),
        "host": _or_junk(st.sampled_from(_HOSTS)),
        "port": _or_junk(st.sampled_from([closed_port, 0, 65536, -1, 1.5, "80x", str(closed_port), ""])),
        "proxy": _or_junk(st.sampled_from([*dead_proxy, "ftp://x", "http://[", "socks5://x", ""])),
        "keepAlive": _or_junk(st.sampled_from([True, False, "no", "perhaps"])),
        "encryptionMasterKeyBase64": _or_junk(
            st.sampled_from([MASTER_KEY, "not base64!", "AAAA", MASTER_KEY[:-4], ""])
        ),
        "maxDataBytes": _or_junk(st.sampled_from([1, 10_240, 65_536, 1_048_576, 0, 1_048_577, 1.5, "64k"])),
        "maxBatchSize": _or_junk(st.sampled_from([1, 10, 100, 0, 101, -1])),
        "maxChannelNameLength": _or_junk(st.sampled_from([1, 164, 200, 0, 201, "long"])),
    }
    # No host override means the environment's (soketi's) host: PUSHER_HOST takes precedence over
    # cluster, so no example ever resolves a real Pusher host name.
    return st.one_of(
        st.just({}),
        st.just({}),
        st.fixed_dictionaries({"timeout": st.sampled_from([1000, 600_000, "5000", 5000.0, ""])}),
        st.fixed_dictionaries(
            {"port": st.just(closed_port), "timeout": _SMALL_TIMEOUT},
            optional={"host": st.sampled_from(["127.0.0.1", "localhost"]), "keepAlive": st.booleans()},
        ),
        st.fixed_dictionaries({"useTLS": st.sampled_from([True, "true", "1"]), "timeout": _SMALL_TIMEOUT}),
        st.fixed_dictionaries({"proxy": st.sampled_from(dead_proxy), "timeout": _SMALL_TIMEOUT}),
        st.fixed_dictionaries({"timeout": st.one_of(_SMALL_TIMEOUT, _BAD_TIMEOUT)}, optional=junk),
    )


# Valid cores, so a good share of examples gets past every check and really talks to soketi.
_GOOD_CHANNEL = st.from_regex(r"fuzz-[A-Za-z0-9_\-=@,.;]{1,12}", fullmatch=True)
_GOOD_NAME = st.sampled_from(["ev", "é✓ event", "n" * 200])
_GOOD_DATA = st.one_of(st.text(max_size=40), JSON.filter(lambda v: v is not None))  # NaN inside: InputError
_GOOD_USER = st.from_regex(r"[A-Za-z0-9_\-=@,.;]{1,20}", fullmatch=True)
_GOOD_SOCKET = st.from_regex(r"[0-9]{1,6}\.[0-9]{1,6}", fullmatch=True)
_GOOD_EVENT = st.fixed_dictionaries(
    {"channel": _GOOD_CHANNEL, "name": _GOOD_NAME, "data": _GOOD_DATA},
    optional={"socket_id": _GOOD_SOCKET, "info": st.sampled_from(["subscription_count", "user_count"])},
)
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "trigger": st.fixed_dictionaries(
        {"name": _GOOD_NAME, "data": _GOOD_DATA},
        optional={"socket_id": _GOOD_SOCKET, "info": st.sampled_from(["subscription_count", ""])},
    ).flatmap(
        lambda base: st.one_of(
            st.builds(lambda c: {**base, "channel": c}, _GOOD_CHANNEL),
            st.builds(
                lambda cs: {**base, "channels": cs},
                st.lists(_GOOD_CHANNEL, min_size=1, max_size=5, unique=True),
            ),
        )
    ),
    "triggerBatch": st.fixed_dictionaries({"batch": st.lists(_GOOD_EVENT, min_size=1, max_size=10)}),
    "channels": st.fixed_dictionaries(
        {},
        optional={"filter_by_prefix": st.sampled_from(["presence-", "fuzz-"]), "info": st.just("user_count")},
    ),
    "channel": st.fixed_dictionaries(
        {"channel": _GOOD_CHANNEL}, optional={"info": st.sampled_from(["subscription_count", "cache", ""])}
    ),
    "users": st.fixed_dictionaries({"channel": st.builds("presence-{}".format, _GOOD_CHANNEL)}),
    "terminateUserConnections": st.fixed_dictionaries({"user_id": _GOOD_USER}),
    "sendToUser": st.fixed_dictionaries({"user_id": _GOOD_USER, "name": _GOOD_NAME, "data": _GOOD_DATA}),
    "authorizeChannel": st.fixed_dictionaries(
        {
            "socket_id": _GOOD_SOCKET,
            "channel": st.builds(
                "{}{}".format, st.sampled_from(["private-", "presence-", "private-encrypted-"]), _GOOD_CHANNEL
            ),
            "user_id": _GOOD_USER,
        },
        optional={"user_info": st.dictionaries(_KEY_TEXT, JSON, max_size=3)},
    ),
    "authenticateUser": st.fixed_dictionaries(
        {"socket_id": _GOOD_SOCKET, "user_data": _object_with({}).map(lambda d: d)}
    ).flatmap(
        lambda base: st.builds(
            lambda uid: {**base, "user_data": {**base["user_data"], "id": uid}}, _GOOD_USER
        )
    ),
    "subscribe": st.fixed_dictionaries({"channel": _GOOD_CHANNEL}),
    "unsubscribe": st.fixed_dictionaries({"channel": _GOOD_CHANNEL}),
    "request": st.one_of(
        st.fixed_dictionaries(
            {"method": st.just("GET"), "path": st.sampled_from(["/channels", "/channels/fuzz-x"])},
            optional={"params": st.fixed_dictionaries({}, optional={"info": st.just("subscription_count")})},
        ),
        st.fixed_dictionaries(
            {
                "method": st.just("POST"),
                "path": st.just("/events"),
                "body": st.fixed_dictionaries(
                    {"name": _GOOD_NAME, "channels": st.just(["fuzz"]), "data": st.text(max_size=20)}
                ),
            }
        ),
    ),
}


def task_inputs(task_key: str, closed_port: int) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs for one task: a valid core or its declared inputs with plausible and wrong values
    (required ones nearly always present), plus arbitrary extra keys and connection overrides."""
    params: tuple[Parameter, ...] = DEFINITION.tasks[task_key].inputs
    own = [p for p in params if p.key not in CONNECTION_INPUTS]
    required = {p.key: _or_junk(PLAUSIBLE.get(p.key, JSON)) for p in own if not p.optional}
    optional = {p.key: _or_junk(PLAUSIBLE.get(p.key, JSON)) for p in own if p.optional}
    declared = st.one_of(VALID[task_key], st.fixed_dictionaries(required, optional=optional))
    return st.builds(
        lambda unsendable, extra, connection, declared: {**unsendable, **extra, **connection, **declared},
        # Now and then a value no double holds: the application's encoder refuses the lot.
        st.sampled_from([{}] * 40 + [{"big": 2**1100}, {"nested": [{"big": -(2**1030)}]}]),
        st.dictionaries(_KEY_TEXT, JSON, max_size=3),
        connection_inputs(closed_port),
        declared,
    )


# --- the wire path ----------------------------------------------------------------------------


def over_the_wire(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """What the service decodes after an application sent ``inputs``; None if it cannot be sent."""
    try:
        struct = dict_to_struct(inputs)
    except TypeError:
        return None  # the codec refuses it (e.g. an int beyond a double): never on the wire
    parsed = Struct.FromString(struct.SerializeToString())
    return struct_to_dict(parsed)


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nothing listens on (free a moment ago, and nobody binds it here)."""
    return free_port()


@pytest.fixture
def loop_and_context(soketi: Soketi) -> Iterator[tuple[asyncio.AbstractEventLoop, TaskContext]]:
    """A private event loop (hypothesis drives a sync function) and a real task context.

    No listener: subscribe/unsubscribe then answer with an InputError, which the property
    accepts; their listening path is covered by tests/e2e/test_receive_*.py.
    """
    loop = asyncio.new_event_loop()
    context = TaskContext(PusherSettings(soketi.pusher_env()), ClientPool())
    try:
        yield loop, context
    finally:
        loop.run_until_complete(context.pool.close())
        loop.close()


def _fuzz_settings(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
    )


# --- the properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("task_key", TASK_KEYS)
def test_fuzz_every_task_ends_in_valid_outputs_or_a_clear_error(
    task_key: str, loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext], closed_port: int
) -> None:
    loop, context = loop_and_context
    handler = TASKS[task_key]
    task = DEFINITION.tasks[task_key]
    seen: Counter[str] = Counter()

    @_fuzz_settings(EXAMPLES)
    @given(inputs=task_inputs(task_key, closed_port))
    def property_(inputs: dict[str, Any]) -> None:
        decoded = over_the_wire(inputs)
        if decoded is None:
            seen["not encodable"] += 1
            return
        refusal = check_task_inputs(DEFINITION.name, task, decoded)
        if refusal is not None:
            assert isinstance(refusal, str) and refusal
            seen["refused by the engine"] += 1
            return
        try:
            outputs = loop.run_until_complete(asyncio.wait_for(handler(context, decoded), HANDLER_TIMEOUT))
        except MesgPusherError as exc:
            message = str(exc)
            assert isinstance(message, str) and message.strip(), f"{type(exc).__name__} without a message"
            seen[type(exc).__name__] += 1
            return
        # Anything else (TypeError, KeyError, UnicodeError, a hang turned TimeoutError...) is a bug:
        # it propagates and hypothesis reports the smallest input that raises it.
        assert isinstance(outputs, dict), outputs
        assert check_task_outputs(DEFINITION.name, task, outputs) is None, outputs
        dict_to_struct(outputs)  # the service must be able to send them back to the engine
        seen["completed"] += 1

    property_()
    # The generator must really reach the handler, not only the engine's checks.
    handled = sum(n for what, n in seen.items() if what not in ("not encodable", "refused by the engine"))
    assert handled >= EXAMPLES // 4, dict(seen)
    if task_key not in ("subscribe", "unsubscribe"):
        assert seen["completed"] > 0, dict(seen)


@pytest.mark.parametrize("task_key", TASK_KEYS)
def test_fuzz_worker_turns_every_execution_into_one_clean_result(
    task_key: str, loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext], closed_port: int
) -> None:
    """The same inputs through ``Worker._run``: never an exception, never an internal error."""
    loop, context = loop_and_context
    worker = Worker(engine=None, handlers=TASKS, context=context)  # type: ignore[arg-type]  # _run never uses it
    task = DEFINITION.tasks[task_key]

    @_fuzz_settings(WORKER_EXAMPLES)
    @given(inputs=task_inputs(task_key, closed_port))
    def property_(inputs: dict[str, Any]) -> None:
        decoded = over_the_wire(inputs)
        if decoded is None or check_task_inputs(DEFINITION.name, task, decoded) is not None:
            return
        execution = Execution(b"\x01" * 32, task_key, decoded)
        result = loop.run_until_complete(asyncio.wait_for(worker._run(execution), HANDLER_TIMEOUT))
        assert result.hash == execution.hash
        if result.error is None:
            assert result.outputs is not None
            assert check_task_outputs(DEFINITION.name, task, result.outputs) is None
        else:
            assert result.outputs is None
            assert result.error.strip()
            assert not result.error.startswith("internal_error"), result.error

    property_()


def test_fuzz_unknown_task_key_is_an_error_result(
    loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext],
) -> None:
    loop, context = loop_and_context
    worker = Worker(engine=None, handlers=TASKS, context=context)  # type: ignore[arg-type]
    result = loop.run_until_complete(worker._run(Execution(b"\x02" * 32, "no-such-task\x00é", {})))
    assert result.outputs is None and result.error and "unknown task" in result.error


# --- bugs found by the properties above, pinned ------------------------------------------------


@pytest.mark.parametrize("host", ["..", "a..b", "a" * 64, "a" * 300])
def test_host_with_empty_or_long_label_is_refused(
    host: str, loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext]
) -> None:
    loop, context = loop_and_context
    inputs = over_the_wire({"channel": "fuzz", "name": "ev", "data": "x", "host": host, "timeout": 150})
    assert inputs is not None
    with pytest.raises(MesgPusherError, match="host"):
        loop.run_until_complete(asyncio.wait_for(TASKS["trigger"](context, inputs), HANDLER_TIMEOUT))


_NON_JSON_NUMBERS = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("number", _NON_JSON_NUMBERS, ids=["nan", "inf", "-inf"])
def test_authorize_channel_user_info_nan_is_refused_or_valid_json(
    number: float, loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext]
) -> None:
    loop, context = loop_and_context
    inputs = over_the_wire(
        {"socket_id": "123.456", "channel": "presence-fuzz", "user_id": "u1", "user_info": {"x": number}}
    )
    assert (
        inputs is not None
        and check_task_inputs(DEFINITION.name, DEFINITION.tasks["authorizeChannel"], inputs) is None
    )
    try:
        outputs = loop.run_until_complete(TASKS["authorizeChannel"](context, inputs))
    except MesgPusherError as exc:
        assert "user_info" in str(exc)
        return
    _strict_json(outputs["channel_data"])


@pytest.mark.parametrize("number", _NON_JSON_NUMBERS, ids=["nan", "inf", "-inf"])
def test_authenticate_user_user_data_nan_is_refused_or_valid_json(
    number: float, loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext]
) -> None:
    loop, context = loop_and_context
    inputs = over_the_wire({"socket_id": "123.456", "user_data": {"id": "u1", "x": number}})
    assert inputs is not None
    try:
        outputs = loop.run_until_complete(TASKS["authenticateUser"](context, inputs))
    except MesgPusherError as exc:
        assert "user_data" in str(exc)
        return
    _strict_json(outputs["user_data"])


def test_channel_data_is_strict_json_for_ordinary_user_info(
    loop_and_context: tuple[asyncio.AbstractEventLoop, TaskContext],
) -> None:
    """The control of the two xfail tests above: finite numbers give strict JSON."""
    loop, context = loop_and_context
    inputs = over_the_wire(
        {
            "socket_id": "123.456",
            "channel": "presence-fuzz",
            "user_id": "u1",
            "user_info": {"x": 1.5, "é": -0.0},
        }
    )
    assert inputs is not None
    outputs = loop.run_until_complete(TASKS["authorizeChannel"](context, inputs))
    assert _strict_json(outputs["channel_data"]) == {"user_id": "u1", "user_info": {"x": 1.5, "é": 0}}


def test_fuzz_strategy_keys_match_mesg_yml() -> None:
    """PLAUSIBLE must not drift from mesg.yml: every key it names is some task's input."""
    declared = {p.key for task in DEFINITION.tasks.values() for p in task.inputs}
    assert set(PLAUSIBLE) <= declared
    assert set(VALID) == set(TASKS) == set(DEFINITION.tasks)
    assert re.fullmatch(r"[A-Za-z0-9+/]+=*", MASTER_KEY)
