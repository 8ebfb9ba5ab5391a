"""Settings of the receiving side, read once from the environment (not per execution)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mesg_pusher.config import PusherOptions, limits_from_environment
from mesg_pusher.errors import ConfigError
from mesg_pusher.limits import DEFAULT_LIMITS, Limits
from mesg_pusher.tasks.validation import channel_name

_API_HOST = re.compile(r"^api-([A-Za-z0-9\-]+)\.pusher\.com$")
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")


def _clean(environment: Mapping[str, str], name: str) -> str | None:
    value = environment.get(name)
    return value.strip() if value is not None and value.strip() else None


def _port(text: str, variable: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"variable {variable} must be a port number from 1 to 65535, not {text[:20]!r}")
    return int(text)


def parse_channels(
    text: str, variable: str = "PUSHER_SUBSCRIBE", limits: Limits = DEFAULT_LIMITS
) -> tuple[str, ...]:
    """Comma-separated channel names, each checked (within ``limits``: the ``PUSHER_MAX_*``
    variables'), duplicates removed (order kept)."""
    names: dict[str, None] = {}
    for part in text.split(","):
        if part.strip():
            try:
                names[channel_name(part.strip(), variable, limits=limits)] = None
            except Exception as exc:
                raise ConfigError(str(exc).replace("input ", "variable ", 1)) from None
    return tuple(names)


@dataclass(frozen=True)
class ReceiveSettings:
    """``PUSHER_SUBSCRIBE``, ``PUSHER_WEBHOOK_PORT``, ``PUSHER_WS_HOST`` and ``PUSHER_WS_PORT``.

    The credentials and the encryption master key are the connection settings' (``PusherOptions``).
    """

    subscribe: tuple[str, ...] = ()
    webhook_port: int | None = None
    ws_host: str | None = None
    ws_port: int | None = None

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> ReceiveSettings:
        subscribe = _clean(environment, "PUSHER_SUBSCRIBE")
        webhook = _clean(environment, "PUSHER_WEBHOOK_PORT")
        ws_host = _clean(environment, "PUSHER_WS_HOST")
        ws_port = _clean(environment, "PUSHER_WS_PORT")
        if ws_host is not None and not _HOST.match(ws_host):
            raise ConfigError("variable PUSHER_WS_HOST is not a valid host name")
        return cls(
            subscribe=parse_channels(subscribe, limits=limits_from_environment(environment))
            if subscribe
            else (),
            webhook_port=None if webhook is None else _port(webhook, "PUSHER_WEBHOOK_PORT"),
            ws_host=ws_host,
            ws_port=None if ws_port is None else _port(ws_port, "PUSHER_WS_PORT"),
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
