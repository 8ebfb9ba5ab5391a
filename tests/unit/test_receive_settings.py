"""The receiving side's variables: webhook tokens and the listener's identity, checked at start."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesg_pusher.cli import run_service
from mesg_pusher.errors import ConfigError
from mesg_pusher.hash_text import b58
from mesg_pusher.receive.identity import ListenerIdentity
from mesg_pusher.receive.settings import ReceiveSettings
from mesg_pusher.receive.webhook_body import WebhookToken

SECRET = "hidden-webhook-secret"


def test_defaults_are_one_stable_member_no_signin_and_the_apps_own_token_only() -> None:
    settings = ReceiveSettings.from_environment({})
    assert settings.identity == ListenerIdentity(user_id="mesg-pusher", user_info=None, signin=False)
    assert settings.webhook_tokens == () and settings.secrets == ()
    assert not settings.listens
    assert settings.identity.channel_data() == '{"user_id":"mesg-pusher"}'


def test_the_variables_as_parsed() -> None:
    settings = ReceiveSettings.from_environment(
        {
            "PUSHER_WEBHOOK_SECRETS": f" k1:{SECRET}, k2:s:with:colons ,k1:{SECRET},k1:second-secret,",
            "PUSHER_LISTENER_USER_ID": " svc-1 ",
            "PUSHER_LISTENER_USER_INFO": '{"name": "Zoë", "n": 1}',
            "PUSHER_LISTENER_WATCHLIST": "alice, bob,alice,",
        }
    )
    assert settings.webhook_tokens == (
        WebhookToken("k1", SECRET),
        WebhookToken("k2", "s:with:colons"),
        WebhookToken("k1", "second-secret"),
    )
    assert settings.secrets == (SECRET, "s:with:colons", "second-secret")
    assert SECRET not in repr(settings) and "k1" in repr(settings)
    # A watchlist implies the sign-in, so the listener connects without a channel.
    assert settings.identity == ListenerIdentity("svc-1", {"name": "Zoë", "n": 1}, True, ("alice", "bob"))
    assert settings.listens
    assert json.loads(settings.identity.user_data()) == {
        "id": "svc-1",
        "user_info": {"name": "Zoë", "n": 1},
        "watchlist": ["alice", "bob"],
    }
    signin_only = ReceiveSettings.from_environment({"PUSHER_LISTENER_SIGNIN": "yes"}).identity
    assert signin_only.signin and signin_only.user_data() == '{"id":"mesg-pusher"}'


BAD = [
    (
        {"PUSHER_WEBHOOK_SECRETS": SECRET},
        "variable PUSHER_WEBHOOK_SECRETS: entry 1 is not of the form key:secret",
    ),
    (
        {"PUSHER_WEBHOOK_SECRETS": f"k:{SECRET},k2:"},
        "variable PUSHER_WEBHOOK_SECRETS: entry 2 is not of the form key:secret",
    ),
    ({"PUSHER_WEBHOOK_SECRETS": f":{SECRET}"}, "variable PUSHER_WEBHOOK_SECRETS: entry 1 is not"),
    ({"PUSHER_WEBHOOK_SECRETS": f"my key:{SECRET}"}, "variable PUSHER_WEBHOOK_SECRETS: entry 1 is not"),
    (
        {"PUSHER_LISTENER_USER_ID": "u" * 129},
        "variable PUSHER_LISTENER_USER_ID has a user id of 129 characters; Pusher allows 128",
    ),
    ({"PUSHER_LISTENER_USER_ID": "a\x01b"}, "variable PUSHER_LISTENER_USER_ID has a user id with a control"),
    ({"PUSHER_LISTENER_USER_INFO": "{name: 1}"}, "variable PUSHER_LISTENER_USER_INFO is not valid JSON"),
    ({"PUSHER_LISTENER_USER_INFO": '["a"]'}, "variable PUSHER_LISTENER_USER_INFO must be a JSON object"),
    ({"PUSHER_LISTENER_USER_INFO": '"text"'}, 'must be a JSON object, e.g. {"name": "MESG"}, not str'),
    (
        {"PUSHER_LISTENER_USER_INFO": json.dumps({"bio": "x" * 1100})},
        "variable PUSHER_LISTENER_USER_INFO is 1110 bytes as compact JSON; Pusher allows 1024",
    ),
    ({"PUSHER_LISTENER_SIGNIN": "sometimes"}, "variable PUSHER_LISTENER_SIGNIN must be true or false"),
    (
        {"PUSHER_LISTENER_WATCHLIST": "alice," + "b" * 200},
        "variable PUSHER_LISTENER_WATCHLIST (entry 2) has a user id of 200 characters",
    ),
    (
        {"PUSHER_LISTENER_WATCHLIST": "alice", "PUSHER_LISTENER_SIGNIN": "false"},
        "variable PUSHER_LISTENER_WATCHLIST needs a sign-in",
    ),
]


@pytest.mark.parametrize(("environment", "message"), BAD)
def test_each_bad_value_is_a_config_error_naming_its_variable(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ReceiveSettings.from_environment(environment)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.fixture
def service_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """An empty working directory and a G1 engine's variables; the root logger restored after."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("MESG_", "PUSHER_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESG_ENDPOINT", "127.0.0.1:1")
    monkeypatch.setenv("MESG_TOKEN", b58(bytes(32)))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield monkeypatch
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(("environment", "message"), BAD[:1] + BAD[5:6] + BAD[-1:])
def test_the_service_does_not_start_and_says_which_variable(
    service_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    message: str,
) -> None:
    for name, value in environment.items():
        service_environment.setenv(name, value)
    assert run_service() == 2
    log = capsys.readouterr().err
    assert f"cannot start: {message}" in log, log
    assert SECRET not in log and "Traceback" not in log
