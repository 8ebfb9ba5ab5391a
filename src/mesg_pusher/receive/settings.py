"""Settings of the receiving side, read once from the environment (not per execution).

Every variable is checked here, at start: a bad value stops the service with a message that
names the variable (and never shows a secret), instead of failing later on a connection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesg_pusher import env
from mesg_pusher.config import PusherOptions, limits_from_environment
from mesg_pusher.errors import ConfigError
from mesg_pusher.limits import DEFAULT_LIMITS, Limits
from mesg_pusher.names import MAX_PRESENCE_USER_ID, MAX_USER_INFO_BYTES, channel_fault
from mesg_pusher.receive.identity import DEFAULT_USER_ID, ListenerIdentity, compact
from mesg_pusher.receive.webhook_body import WebhookToken

_API_HOST = re.compile(r"^api-([A-Za-z0-9\-]+)\.pusher\.com$")
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_channels(
    text: str, variable: str = "PUSHER_SUBSCRIBE", limits: Limits = DEFAULT_LIMITS
) -> tuple[str, ...]:
    """Comma-separated channel names, each checked (within ``limits``: the ``PUSHER_MAX_*``
    variables'), duplicates removed (order kept)."""
    channels: dict[str, None] = {}
    for part in text.split(","):
        if name := part.strip():
            if (fault := channel_fault(name, limits)) is not None:
                raise ConfigError(f"variable {variable} {fault}")
            channels[name] = None
    return tuple(channels)


def parse_webhook_secrets(text: str, variable: str = "PUSHER_WEBHOOK_SECRETS") -> tuple[WebhookToken, ...]:
    """``key:secret,key2:secret2``: the pairs, in order, repeats removed.

    A key may come with several secrets (a server where the secret changed and the key did
    not). Errors give the entry's position only: an entry without its colon may be a secret.
    """
    tokens: dict[WebhookToken, None] = {}
    for position, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue  # a trailing comma, as PUSHER_SUBSCRIBE allows
        key, colon, secret = entry.strip().partition(":")
        key, secret = key.strip(), secret.strip()
        if not colon or not key or not secret or any(c.isspace() for c in key):
            raise ConfigError(
                f"variable {variable}: entry {position} is not of the form key:secret "
                "(entries are separated by commas, e.g. key1:secret1,key2:secret2)"
            )
        tokens[WebhookToken(key, secret)] = None
    return tuple(tokens)


def parse_user_id(text: str, variable: str) -> str:
    """A presence user id as Pusher accepts it: 1 to 128 characters, no control characters."""
    value = text.strip()
    if not value:
        raise ConfigError(f"variable {variable} holds an empty user id")
    if len(value) > MAX_PRESENCE_USER_ID:
        raise ConfigError(
            f"variable {variable} has a user id of {len(value)} characters; Pusher allows {MAX_PRESENCE_USER_ID}"
        )
    if _CONTROL.search(value):
        raise ConfigError(f"variable {variable} has a user id with a control character")
    return value


def parse_user_info(text: str, variable: str = "PUSHER_LISTENER_USER_INFO") -> dict[str, Any]:
    """A JSON object of at most 1 KB once compact: the member's ``user_info``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"variable {variable} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(
            f'variable {variable} must be a JSON object, e.g. {{"name": "MESG"}}, not {type(value).__name__}'
        )
    size = len(compact(value).encode("utf-8", "surrogatepass"))
    if size > MAX_USER_INFO_BYTES:
        raise ConfigError(
            f"variable {variable} is {size} bytes as compact JSON; Pusher allows {MAX_USER_INFO_BYTES} "
            "for a member's user object"
        )
    return value


def parse_watchlist(text: str, variable: str = "PUSHER_LISTENER_WATCHLIST") -> tuple[str, ...]:
    """Comma-separated user ids, each checked, repeats removed (order kept)."""
    ids: dict[str, None] = {}
    for position, part in enumerate(text.split(","), start=1):
        if part.strip():
            ids[parse_user_id(part, f"{variable} (entry {position})")] = None
    return tuple(ids)


def parse_identity(environment: Mapping[str, str]) -> ListenerIdentity:
    """``PUSHER_LISTENER_USER_ID``, ``_USER_INFO``, ``_SIGNIN`` and ``_WATCHLIST``."""
    user_id = env.text(environment, "PUSHER_LISTENER_USER_ID")
    user_info = env.text(environment, "PUSHER_LISTENER_USER_INFO")
    watchlist = env.text(environment, "PUSHER_LISTENER_WATCHLIST")
    ids = parse_watchlist(watchlist) if watchlist else ()
    wants_signin = env.flag(environment, "PUSHER_LISTENER_SIGNIN")
    if ids and wants_signin is False:
        raise ConfigError(
            "variable PUSHER_LISTENER_WATCHLIST needs a sign-in (Pusher sends watchlist events to "
            "signed-in connections only), but PUSHER_LISTENER_SIGNIN is false: set it to true, or unset it"
        )
    return ListenerIdentity(
        user_id=DEFAULT_USER_ID if user_id is None else parse_user_id(user_id, "PUSHER_LISTENER_USER_ID"),
        user_info=None if user_info is None else parse_user_info(user_info),
        signin=bool(wants_signin) or bool(ids),
        watchlist=ids,
    )


@dataclass(frozen=True)
class ReceiveSettings:
    """The receiving side's variables: what to listen to, as whom, and the webhook endpoint.

    The credentials and the encryption master key are the connection settings' (``PusherOptions``).
    """

    subscribe: tuple[str, ...] = ()
    webhook_port: int | None = None
    ws_host: str | None = None
    ws_port: int | None = None
    # Accepted besides the app's own key and secret (PUSHER_WEBHOOK_SECRETS); reprs show the keys only.
    webhook_tokens: tuple[WebhookToken, ...] = ()
    identity: ListenerIdentity = field(default_factory=ListenerIdentity)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Secret values these settings hold (the webhook secrets), to mask wherever text leaves us."""
        return tuple(token.secret for token in self.webhook_tokens)

    @property
    def listens(self) -> bool:
        """Whether the listener connects at start: channels to listen to, or a sign-in."""
        return bool(self.subscribe) or self.identity.signin

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> ReceiveSettings:
        subscribe = env.text(environment, "PUSHER_SUBSCRIBE")
        ws_host = env.text(environment, "PUSHER_WS_HOST")
        secrets = env.text(environment, "PUSHER_WEBHOOK_SECRETS")
        if ws_host is not None and not _HOST.match(ws_host):
            raise ConfigError("variable PUSHER_WS_HOST is not a valid host name")
        return cls(
            subscribe=parse_channels(subscribe, limits=limits_from_environment(environment))
            if subscribe
            else (),
            webhook_port=env.port(environment, "PUSHER_WEBHOOK_PORT"),
            ws_host=ws_host,
            ws_port=env.port(environment, "PUSHER_WS_PORT"),
            webhook_tokens=parse_webhook_secrets(secrets) if secrets else (),
            identity=parse_identity(environment),
        )

    def ws_url(self, options: PusherOptions, version: str) -> str:
        """Pusher's protocol-7 WebSocket URL for the app: the cluster's ws- host, or overrides."""
        host = self.ws_host
        if host is None:
            match = _API_HOST.match(options.host)
            host = f"ws-{match.group(1)}.pusher.com" if match else options.host
        port = self.ws_port or options.port_or_default
        scheme = "wss" if options.use_tls else "ws"
        return f"{scheme}://{host}:{port}/app/{options.key}?protocol=7&client=mesg-pusher&version={version}"
