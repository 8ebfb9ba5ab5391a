"""The raw signed request task: every input check, the signing, and what counts as an error.

Against real local HTTP servers: the signature-checking Pusher API test server (signing of
GET and POST, query parameters included) and servers that fail in chosen ways (retries).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from mesg_pusher.config import PusherSettings
from mesg_pusher.errors import InputError, PusherHTTPError, PusherUnknownOutcome
from mesg_pusher.pusher_client import ClientPool
from mesg_pusher.tasks import TaskContext, raw
from tests.support.http_server import Seen, json_reply
from tests.support.pusher_api import PusherAPIServer, signature

APP_ID, KEY, SECRET = "100001", "raw-key", "raw-secret"


def error(function: Any, *args: Any) -> str:
    with pytest.raises(InputError) as caught:
        function(*args)
    return str(caught.value)


# --- method --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("GET", "GET"), ("post", "POST"), (" Get ", "GET")])
def test_method_get_or_post_in_any_case(value: str, expected: str) -> None:
    assert raw.method({"method": value}) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [("PUT", "'PUT'"), ("DELETE", "'DELETE'"), ("", "''"), (None, "null"), (1, "a number")],
)
def test_other_methods_are_refused(value: Any, shown: str) -> None:
    assert error(raw.method, {"method": value}) == f"input 'method' must be GET or POST, not {shown}"


# --- path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["/channels", "/channels/presence-room", "/channels/a-b_c=d@e,f.g;h/users", "/events", "/x:y~z", "/a.b"],
)
def test_paths_under_the_app(value: str) -> None:
    assert raw.path({"path": value}) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            None,
            "input 'path' is required: a path under the app (e.g. /channels or /channels/my-channel/users)",
        ),
        ("", "input 'path' is required"),
        (5, "input 'path' must be a string, not a number"),
        ("/a\r\nHost: evil", "contains a line break"),
        ("/a\nb", "contains a line break"),
        ("/chännels", "contains non-ASCII characters"),
        ("/a b", "contains a space or a control character"),
        ("/a\tb", "contains a space or a control character"),
        ("/a\x00", "contains a space or a control character"),
        ("/channels?info=x", "contains '?': give query parameters in input 'params'"),
        ("/channels#x", "contains '#'"),
        ("channels", "must start with /"),
        ("/apps/100001/channels", "is relative to the app: give /channels, not /apps/<id>/channels"),
        ("/apps", "is relative to the app"),
        ("/", "has an empty segment"),
        ("//channels", "has an empty segment"),
        ("/channels/", "has an empty segment (// or a trailing /)"),
        ("/channels//users", "has an empty segment"),
        ("/..", "has a '..' segment; it must stay under the app"),
        ("/channels/../../other", "has a '..' segment"),
        ("/./channels", "has a '.' segment"),
        ("/channels/%2e%2e", "contains '%'; path segments may only contain"),
        ("/a\\b", "contains '\\\\'"),
        ("/" + "a" * 1000, "is 1001 characters long; at most 1000 are allowed"),
    ],
)
def test_bad_paths_are_refused_naming_the_input(value: Any, message: str) -> None:
    assert message in error(raw.path, {"path": value})


# --- query parameters ------------------------------------------------------------------------------


def test_params_strings_numbers_booleans() -> None:
    params = {
        "info": "user_count,subscription_count",
        "n": 3,
        "x": 1.5,
        "big": 1e20,
        "on": True,
        "off": False,
    }
    assert raw.query({"params": params}) == {
        "info": "user_count,subscription_count",
        "n": "3",
        "x": "1.5",
        "big": "100000000000000000000",
        "on": "true",
        "off": "false",
    }
    assert raw.query({}) == {}
    assert raw.query({"params": {"empty": ""}}) == {"empty": ""}


@pytest.mark.parametrize(
    "name", ["auth_key", "auth_signature", "auth_timestamp", "auth_version", "body_md5", "auth_x"]
)
def test_reserved_names_are_refused(name: str) -> None:
    assert error(raw.query, {"params": {name: "x"}}) == (
        f"input 'params.{name}' is reserved: the service signs the request (auth_* and body_md5)"
    )


@pytest.mark.parametrize("name", ["Info", "a b", "a&b", "", "é", "n" * 101])
def test_param_names_that_would_break_the_signature_are_refused(name: str) -> None:
    assert "query parameter names are 1 to 100 lower-case letters" in error(
        raw.query, {"params": {name: "x"}}
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a&b", "contains '&'"),
        ("a b", "contains ' '"),
        ("a+b", "contains '+'"),
        ("50%", "contains '%'"),
        ("a#b", "contains '#'"),
        ("é", "contains 'é'"),
        ("a\r\nb", "contains '\\n\\r'"),
        (None, "must be a string, a number or a boolean, not null"),
        ([1], "must be a string, a number or a boolean, not a list"),
        ({"a": 1}, "must be a string, a number or a boolean, not an object"),
        (math.nan, "must be a finite number, not nan"),
        (math.inf, "must be a finite number, not inf"),
        ("v" * 1001, "is 1001 characters long; at most 1000 are allowed"),
    ],
)
def test_bad_param_values_are_refused_naming_the_parameter(value: Any, message: str) -> None:
    text = error(raw.query, {"params": {"info": value}})
    assert text.startswith("input 'params.info'")
    assert message in text


def test_params_must_be_an_object_of_at_most_50() -> None:
    assert (
        error(raw.query, {"params": ["info"]})
        == "input 'params' must be an object of query parameters, not a list"
    )
    many = {f"p{i}": "x" for i in range(51)}
    assert error(raw.query, {"params": many}) == "input 'params' has 51 parameters; at most 50 are allowed"


# --- body ------------------------------------------------------------------------------------------


def test_post_body_is_any_json_and_empty_object_when_absent() -> None:
    assert raw.body({}, "POST") == {}
    assert raw.body({"body": None}, "POST") == {}
    for value in ({"a": [1, None]}, [1, 2], "text", 3, True):
        assert raw.body({"body": value}, "POST") == value


def test_get_has_no_body() -> None:
    assert raw.body({}, "GET") is None
    assert error(raw.body, {"body": {"a": 1}}, "GET") == (
        "input 'body' is sent with POST only; a GET carries input 'params'"
    )


def test_body_with_nan_is_refused() -> None:
    assert error(raw.body, {"body": {"x": [math.nan]}}, "POST") == (
        "input 'body' contains NaN or Infinity, which JSON cannot carry"
    )


def test_parsed_answer() -> None:
    assert raw.parsed('{"channels": {}}') == {"channels": {}}
    assert raw.parsed("[1, 2]") == [1, 2]
    assert raw.parsed("OK") == "OK"
    assert raw.parsed("") is None
    assert raw.parsed("null") is None
    big = raw.parsed('{"n": ' + "9" * 400 + "}")
    assert big["n"] == math.inf  # a double, as a Struct carries it, not an int no double holds


# --- against the signature-checking API server -----------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[PusherAPIServer]:
    async with PusherAPIServer(APP_ID, KEY, SECRET) as server:
        yield server


def context(port: int, **env: str) -> TaskContext:
    environment = {
        "PUSHER_APP_ID": APP_ID,
        "PUSHER_APP_KEY": KEY,
        "PUSHER_APP_SECRET": SECRET,
        "PUSHER_HOST": "127.0.0.1",
        "PUSHER_PORT": str(port),
        "PUSHER_USE_TLS": "false",
        **env,
    }
    return TaskContext(PusherSettings(environment), ClientPool())


@pytest.fixture
async def contexts() -> AsyncIterator[list[TaskContext]]:
    made: list[TaskContext] = []
    yield made
    for ctx in made:
        await ctx.pool.close()


async def test_get_with_params_is_signed_as_pusher_checks(
    api: PusherAPIServer, contexts: list[TaskContext]
) -> None:
    ctx = context(api.port)
    contexts.append(ctx)
    inputs = {
        "method": "GET",
        "path": "/channels",
        "params": {"filter_by_prefix": "presence-", "info": "user_count"},
    }
    outputs = await raw.request(ctx, inputs)
    assert outputs == {
        "status": 200,
        "body": {"channels": {"presence-lobby": {"user_count": 2}, "presence-room": {"user_count": 2}}},
    }
    (record,) = api.requests
    assert record.signed, record.problem
    assert (record.method, record.path) == ("GET", f"/apps/{APP_ID}/channels")
    assert record.query["filter_by_prefix"] == "presence-"
    assert record.query["auth_signature"] == signature(SECRET, "GET", record.path, record.query)


async def test_post_with_params_and_body_signs_both(
    api: PusherAPIServer, contexts: list[TaskContext]
) -> None:
    ctx = context(api.port)
    contexts.append(ctx)
    body = {"name": "ev", "channels": ["c"], "data": "x", "info": "subscription_count"}
    outputs = await raw.request(
        ctx, {"method": "POST", "path": "/events", "params": {"extra": "1"}, "body": body}
    )
    assert outputs == {"status": 200, "body": {"channels": {"c": {"subscription_count": 3}}}}
    (record,) = api.requests
    assert record.signed, record.problem  # body_md5 and the extra query parameter under the signature
    assert record.query["extra"] == "1"
    assert record.json == body


async def test_wrong_secret_is_pushers_401(api: PusherAPIServer, contexts: list[TaskContext]) -> None:
    ctx = context(api.port, PUSHER_APP_SECRET="wrong")
    contexts.append(ctx)
    with pytest.raises(PusherHTTPError) as caught:
        await raw.request(ctx, {"method": "GET", "path": "/channels"})
    assert caught.value.status == 401
    assert str(caught.value).startswith("Pusher answered HTTP 401: Invalid signature")


async def test_unknown_path_is_pushers_404_with_its_body(
    api: PusherAPIServer, contexts: list[TaskContext]
) -> None:
    ctx = context(api.port)
    contexts.append(ctx)
    with pytest.raises(PusherHTTPError) as caught:
        await raw.request(ctx, {"method": "GET", "path": "/no/such/endpoint"})
    assert str(caught.value) == 'Pusher answered HTTP 404: {"error": "not found"}'


async def test_inputs_are_checked_before_anything_is_sent(
    api: PusherAPIServer, contexts: list[TaskContext]
) -> None:
    ctx = context(api.port)
    contexts.append(ctx)
    for inputs in (
        {"method": "GET", "path": "/../x"},
        {"method": "GET", "path": "/channels", "params": {"auth_key": "other"}},
        {"method": "PATCH", "path": "/channels"},
        {"method": "GET", "path": "/channels", "body": {}},
    ):
        with pytest.raises(InputError):
            await raw.request(ctx, inputs)
    assert api.requests == []


# --- what counts as an error, and what is retried -------------------------------------------------


async def test_any_2xx_is_an_answer_with_its_status(http_server: Any, contexts: list[TaskContext]) -> None:
    answers = [web.Response(status=204), web.Response(status=201, text="created"), json_reply(202, None)]
    server = await http_server(lambda seen, index: answers[index])
    ctx = context(server.port)
    contexts.append(ctx)
    assert await raw.request(ctx, {"method": "POST", "path": "/a"}) == {"status": 204}
    assert await raw.request(ctx, {"method": "POST", "path": "/a"}) == {"status": 201, "body": "created"}
    assert await raw.request(ctx, {"method": "POST", "path": "/a"}) == {"status": 202}


async def test_a_get_is_retried_on_5xx_like_every_read(http_server: Any, contexts: list[TaskContext]) -> None:
    def reply(seen: Seen, index: int) -> web.Response:
        return json_reply(503, {"error": "busy"}) if index == 0 else json_reply(200, {"ok": True})

    server = await http_server(reply)
    ctx = context(server.port)
    contexts.append(ctx)
    assert await raw.request(ctx, {"method": "GET", "path": "/channels"}) == {
        "status": 200,
        "body": {"ok": True},
    }
    assert len(server.requests) == 2


async def test_a_post_is_not_retried_on_5xx(http_server: Any, contexts: list[TaskContext]) -> None:
    # Other than 503, which says the request was not taken (tests/unit/test_retry_after.py).
    server = await http_server(lambda seen, index: json_reply(500, {"error": "busy"}))
    ctx = context(server.port)
    contexts.append(ctx)
    with pytest.raises(PusherHTTPError, match=r'^Pusher answered HTTP 500: \{"error": "busy"\}$'):
        await raw.request(ctx, {"method": "POST", "path": "/events", "body": {"name": "e"}})
    assert len(server.requests) == 1


async def test_a_post_without_answer_is_an_unknown_outcome_sent_once(
    http_server: Any, contexts: list[TaskContext]
) -> None:
    async def stall(seen: Seen, index: int) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")

    server = await http_server(stall)
    ctx = context(server.port, PUSHER_TIMEOUT="300")
    contexts.append(ctx)
    with pytest.raises(
        PusherUnknownOutcome, match="may or may not have been published, so it was not retried"
    ):
        await raw.request(ctx, {"method": "POST", "path": "/events", "body": {}})
    assert len(server.requests) == 1
