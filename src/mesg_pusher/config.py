"""Settings: the service's own (process-wide) and Pusher's (per execution).

Precedence for Pusher settings, highest first: the execution's connection inputs, the process
environment, a ``.env`` file in the working directory, the defaults below. Empty values count
as unset, because the engine passes mesg.yml's ``PUSHER_APP_ID=`` defaults as empty strings.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from mesg_pusher import env
from mesg_pusher.errors import ConfigError, InputError
from mesg_pusher.identity import EngineIdentity
from mesg_pusher.limits import DEFAULT, DEFAULT_LIMITS, INPUT, SETTINGS, VARIABLE, Limits
from mesg_pusher.redact import redact_pusher_url, redact_url, url_secrets

# Connection input -> the variable that sets it; the order is docs/configuration.md's.
VARIABLES: Mapping[str, str] = {
    "appId": "PUSHER_APP_ID",
    "key": "PUSHER_APP_KEY",
    "secret": "PUSHER_APP_SECRET",
    "cluster": "PUSHER_CLUSTER",
    "useTLS": "PUSHER_USE_TLS",
    "host": "PUSHER_HOST",
    "port": "PUSHER_PORT",
    "proxy": "PUSHER_PROXY",
    "timeout": "PUSHER_TIMEOUT",
    "keepAlive": "PUSHER_KEEP_ALIVE",
    "encryptionMasterKeyBase64": "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
    # The limits checked before calling Pusher (see mesg_pusher.limits).
    **{setting.input: setting.variable for setting in SETTINGS},
}
CONNECTION_INPUTS = tuple(VARIABLES)
LIMIT_INPUTS = tuple(setting.input for setting in SETTINGS)

DEFAULT_TIMEOUT_MS = 5000
MAX_TIMEOUT_MS = 600_000
_APP_ID = re.compile(r"[0-9]{1,20}")
# The app key goes into every request's query string as it is (the SDK does not encode it):
# only characters that need no encoding in a URL, so it can neither split the request nor
# change the signed query.
_KEY = re.compile(r"[A-Za-z0-9._~-]{1,256}")
# PUSHER_URL, as Pusher's dashboard and Heroku add-on give it: http(s)://key:secret@host[:port]/apps/id
_PUSHER_URL = re.compile(
    r"^(https?)://([^:@/]+):([^@/]+)@(\[[0-9A-Fa-f:.]+\]|[^/:\[\]]+)(?::(\d+))?/apps/(\d+)/?$"
)
_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}")
_IPV6 = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


def valid_host(value: str) -> bool:
    """A DNS name (labels of 1 to 63 characters, 253 in all), an IPv4 address or a bracketed IPv6."""
    if bracketed := _IPV6.fullmatch(value):
        try:
            ipaddress.IPv6Address(bracketed.group(1))
        except ValueError:
            return False
        return True
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


# A PEM file of CA certificates trusted besides the system's; a variable only (not an input),
# as it is read from the service's own file system once per process.
CA_BUNDLE_VARIABLE = "PUSHER_CA_BUNDLE"


@dataclass(frozen=True)
class PusherOptions:
    """Everything needed to reach one Pusher app; equal options share one HTTP pool."""

    app_id: str
    key: str
    secret: str = field(repr=False)
    host: str
    use_tls: bool = True
    port: int | None = None
    proxy: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_MS / 1000
    keep_alive: bool = True
    encryption_master_key_base64: str | None = field(default=None, repr=False)
    limits: Limits = DEFAULT_LIMITS

    def __repr__(self) -> str:
        proxy = redact_url(self.proxy) if self.proxy else None
        return (
            f"PusherOptions(app_id={self.app_id!r}, key={self.key!r}, secret='***', "
            f"host={self.host!r}, use_tls={self.use_tls}, port={self.port}, proxy={proxy!r}, "
            f"timeout={self.timeout}, keep_alive={self.keep_alive}, "
            f"encryption={'on' if self.encryption_master_key_base64 else 'off'}"
            + (f", limits={self.limits!r})" if self.limits != DEFAULT_LIMITS else ")")
        )

    @property
    def port_or_default(self) -> int:
        """The port given, else the scheme's (443 with TLS, 80 without)."""
        return self.port or (443 if self.use_tls else 80)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.use_tls else "http"
        return f"{scheme}://{self.host}:{self.port_or_default}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: the app secret and the proxy URL's password."""
        return secrets_in(
            {
                "secret": self.secret,
                "proxy": self.proxy,
                "encryptionMasterKeyBase64": self.encryption_master_key_base64,
            }
        )


def _shown(value: str) -> str:
    """A refused value fit for a message: escaped (CR, LF...) and cut to 40 characters."""
    return repr(value[:40] + ("…" if len(value) > 40 else ""))


def build_limits(values: Mapping[str, Any], given: Collection[str] = ()) -> Limits:
    """The limits among merged settings (keyed by connection input name), each within its
    bounds; ``given`` names those that came from the execution's inputs (the rest from the
    environment), so refusals can say who set the limit."""
    numbers: list[int] = []
    sources: list[str] = []
    for setting in SETTINGS:
        raw = env.clean(values.get(setting.input))
        if raw is None:
            numbers.append(setting.default)
            sources.append(DEFAULT)
            continue
        numbers.append(env.parse_int(raw, setting.input, setting.variable, setting.low, setting.high))
        sources.append(INPUT if setting.input in given else VARIABLE)
    data, batch, channel = numbers
    return Limits(data, batch, channel, (sources[0], sources[1], sources[2]))


def limits_from_environment(environment: Mapping[str, str]) -> Limits:
    """The limits the ``PUSHER_MAX_*`` variables set (for settings read once, such as
    ``PUSHER_SUBSCRIBE``); a ``ConfigError`` naming the variable if one is out of bounds."""
    return build_limits({setting.input: environment.get(setting.variable) for setting in SETTINGS})


def build_options(values: Mapping[str, Any], given: Collection[str] = ()) -> PusherOptions:
    """Validate merged settings (keyed by connection input name) into ``PusherOptions``;
    ``given``: the names that came from the execution's inputs (see ``build_limits``)."""

    def get(name: str) -> Any:
        return env.clean(values.get(name))

    missing = [name for name in ("appId", "key", "secret") if not isinstance(get(name), str)]
    for name in missing:
        if get(name) is not None:
            raise ConfigError(f"{env.source(name, VARIABLES[name])} must be a string")
    if missing:
        listed = ", ".join(f"{VARIABLES[n]} (input {n!r})" for n in missing)
        raise ConfigError(f"Pusher credentials missing: set {listed}")
    app_id, key, secret = (str(get(n)).strip() for n in ("appId", "key", "secret"))
    if not _APP_ID.fullmatch(app_id):
        raise ConfigError(f"{env.source('appId', 'PUSHER_APP_ID')} must be digits, not {_shown(app_id)}")
    if not _KEY.fullmatch(key):
        raise ConfigError(
            f"{env.source('key', 'PUSHER_APP_KEY')} (the app key) must be letters, digits, '-', '_', '.' "
            f"or '~', not {_shown(key)}"
        )

    host, cluster = get("host"), get("cluster")
    for name, value in (("host", host), ("cluster", cluster)):
        if value is not None and (not isinstance(value, str) or not valid_host(value.strip())):
            raise ConfigError(f"{env.source(name, VARIABLES[name])} is not a valid host name")
    if host is not None:
        host = host.strip()
    elif cluster is not None:
        host = f"api-{cluster.strip()}.pusher.com"
    else:
        raise ConfigError(
            "Pusher host missing: set PUSHER_CLUSTER (input 'cluster', e.g. eu or mt1) "
            "or PUSHER_HOST (input 'host')"
        )

    use_tls = True if get("useTLS") is None else env.parse_bool(get("useTLS"), "useTLS", VARIABLES["useTLS"])
    keep_alive = (
        True
        if get("keepAlive") is None
        else env.parse_bool(get("keepAlive"), "keepAlive", VARIABLES["keepAlive"])
    )
    port = None if get("port") is None else env.parse_int(get("port"), "port", "PUSHER_PORT", 1, 65535)
    timeout_ms = (
        DEFAULT_TIMEOUT_MS
        if get("timeout") is None
        else env.parse_int(get("timeout"), "timeout", "PUSHER_TIMEOUT", 1, MAX_TIMEOUT_MS)
    )
    proxy = get("proxy")
    if proxy is not None:
        if not isinstance(proxy, str) or not proxy.strip().lower().startswith(("http://", "https://")):
            raise ConfigError(f"{env.source('proxy', 'PUSHER_PROXY')} must be an http:// or https:// URL")
        try:
            proxy_host = urlsplit(proxy.strip()).hostname
        except ValueError:
            proxy_host = None
        if not proxy_host:
            raise ConfigError(
                f"{env.source('proxy', 'PUSHER_PROXY')} must name a proxy host, e.g. http://proxy:3128"
            )
        try:
            proxy_port = urlsplit(proxy.strip()).port
        except ValueError:
            proxy_port = 0
        if proxy_port == 0:
            raise ConfigError(
                f"{env.source('proxy', 'PUSHER_PROXY')} has a port that is not a number from 1 to 65535"
            )
        proxy = proxy.strip()
    master_key = get("encryptionMasterKeyBase64")
    if master_key is not None:
        master_key = parse_master_key(master_key)
    return PusherOptions(
        app_id=app_id,
        key=key,
        secret=secret,
        host=host,
        use_tls=use_tls,
        port=port,
        proxy=proxy,
        timeout=timeout_ms / 1000,
        keep_alive=keep_alive,
        encryption_master_key_base64=master_key,
        limits=build_limits(values, given),
    )


def parse_master_key(value: Any) -> str:
    """A base64 string that decodes to exactly 32 bytes (the end-to-end encryption master key)."""
    where = env.source("encryptionMasterKeyBase64", "PUSHER_ENCRYPTION_MASTER_KEY_BASE64")
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a base64 string")
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where} is not valid base64 (e.g. `openssl rand -base64 32`)") from None
    if len(decoded) != 32:
        raise ConfigError(f"{where} must decode to 32 bytes, not {len(decoded)}")
    return value.strip()


def load_ssl_context(path: str | None) -> ssl.SSLContext | None:
    """The system's trusted CAs plus those in the PEM file ``path`` (``PUSHER_CA_BUNDLE``).

    ``None`` without a path: the transport then uses the system store alone. A ``ConfigError``
    naming the variable if the file cannot be read or holds no certificate.
    """
    if path is None:
        return None
    where = f"{CA_BUNDLE_VARIABLE} {path!r}"
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=os.path.expanduser(path))
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ConfigError(f"{where} holds no usable PEM CA certificate ({reason})") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    return context


def parse_pusher_url(url: str) -> dict[str, Any]:
    """Connection settings from ``PUSHER_URL``; a clear error (without the secret) if malformed."""
    match = _PUSHER_URL.match(url.strip())
    if not match:
        raise ConfigError(
            f"PUSHER_URL {redact_pusher_url(url)!r} is not of the form http(s)://key:secret@host[:port]/apps/APP_ID"
        )
    scheme, key, secret, host, port, app_id = match.groups()
    values: dict[str, Any] = {
        "appId": app_id,
        "key": key,
        "secret": secret,
        "host": host,
        "useTLS": scheme == "https",
    }
    if port:
        values["port"] = port
    return values


class PusherSettings:
    """The environment layer of Pusher settings, read once; resolves each execution's options."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        url = env.text(environment, "PUSHER_URL")
        # PUSHER_URL sits below the individual variables: they override its parts.
        self._url_error: ConfigError | None = None
        self._base: dict[str, Any] = {}
        if url is not None:
            try:
                self._base.update(parse_pusher_url(url))
            except ConfigError as exc:
                self._url_error = exc
        self._base.update(
            (name, value)
            for name, variable in VARIABLES.items()
            if (value := env.clean(environment.get(variable))) is not None
        )
        self._resolve = lru_cache(maxsize=256)(self._resolve_uncached)
        self._limits = lru_cache(maxsize=256)(self._limits_uncached)
        # Built once per process and shared by every HTTP pool (PUSHER_CA_BUNDLE, else None:
        # the system store). Raises ConfigError, so a bad path stops the service at start.
        self.ca_bundle = env.text(environment, CA_BUNDLE_VARIABLE)
        self.ssl_context = load_ssl_context(self.ca_bundle)

    @classmethod
    def load(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> PusherSettings:
        """Defaults < ``.env`` in ``cwd`` < process environment."""
        return cls(merged_environment(cwd, environ))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Secret values set in the environment layer, to mask wherever text leaves us."""
        return secrets_in(self._base)

    def resolve(self, inputs: Mapping[str, Any]) -> PusherOptions:
        """Options for one execution: its connection inputs over the environment."""
        # The type is part of the key: True == 1 == 1.0 would otherwise share a cache entry.
        overrides = tuple(
            (name, type(value).__name__, value)
            for name in CONNECTION_INPUTS
            if (value := env.clean(inputs.get(name))) is not None
        )
        try:
            return self._resolve(overrides)
        except TypeError:  # an unhashable input (a list or object where a scalar belongs)
            name = next(n for n, _, v in overrides if isinstance(v, list | dict))
            raise InputError(f"input {name!r} must be a single value, not a list or object") from None

    def _resolve_uncached(self, overrides: tuple[tuple[str, str, Any], ...]) -> PusherOptions:
        if self._url_error is not None:
            raise self._url_error
        given = {name for name, _, _ in overrides}
        return build_options({**self._base, **{name: value for name, _, value in overrides}}, given)

    def limits(self, inputs: Mapping[str, Any]) -> Limits:
        """The limits for one execution, without the rest of its options: tasks check their
        inputs against them before (and whether or not) the credentials are complete."""
        overrides = tuple(
            (name, type(value).__name__, value)
            for name in LIMIT_INPUTS
            if (value := env.clean(inputs.get(name))) is not None
        )
        try:
            return self._limits(overrides)
        except TypeError:  # an unhashable input (a list or object where a number belongs)
            name = next(n for n, _, v in overrides if isinstance(v, list | dict))
            raise InputError(f"input {name!r} must be a single value, not a list or object") from None

    def _limits_uncached(self, overrides: tuple[tuple[str, str, Any], ...]) -> Limits:
        given = {name for name, _, _ in overrides}
        return build_limits({**self._base, **{name: value for name, _, value in overrides}}, given)


def secrets_in(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The app secret, the master key and the proxy password (in each form it is sent: see
    ``redact.url_secrets``) among connection settings or inputs, if strings."""
    found = [
        value
        for name in ("secret", "encryptionMasterKeyBase64")
        if isinstance(value := values.get(name), str) and value
    ]
    proxy = values.get("proxy")
    if isinstance(proxy, str):
        found.extend(url_secrets(proxy.strip()))
    return tuple(found)


def merged_environment(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``.env`` values (if the file exists) overlaid by the process environment."""
    path = (cwd or Path.cwd()) / ".env"
    merged: dict[str, str] = {}
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    # An empty process variable (the engine passes mesg.yml's `PUSHER_APP_ID=`) must not hide
    # a value from .env: empty counts as unset.
    merged.update(
        (k, v)
        for k, v in (os.environ if environ is None else environ).items()
        if v.strip() or k not in merged
    )
    return merged


@dataclass(frozen=True)
class ServiceSettings:
    """Process-wide settings of the service (not per execution).

    ``endpoint``, ``instance_hash`` and ``token`` are G1's view (``MESG_TOKEN``; empty under
    later engines); ``identity`` is what the engine's variables say about every generation.
    """

    endpoint: str
    instance_hash: bytes = field(repr=False)
    token: str
    concurrency: int = 64
    grace_period: float = 10.0
    keepalive_ms: int = 300_000
    log_level: str = "INFO"
    coalesce: bool = True
    detected: EngineIdentity | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 10_000:
            raise ConfigError("MESG_PUSHER_CONCURRENCY must be from 1 to 10000")
        if not 0 <= self.grace_period <= 3600:
            raise ConfigError("MESG_PUSHER_GRACE_PERIOD must be from 0 to 3600 seconds")
        if not 1_000 <= self.keepalive_ms <= 86_400_000:
            raise ConfigError("MESG_PUSHER_KEEPALIVE_MS must be from 1000 to 86400000")

    @property
    def identity(self) -> EngineIdentity:
        """The engine's generation and our identity to it (G1 when built by hand from a token)."""
        if self.detected is not None:
            return self.detected
        return EngineIdentity("g1", self.endpoint, instance_hash=self.instance_hash)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credentials the engine gave us (G3's register signature), to mask in logs."""
        return (self.identity.signature,) if self.identity.signature else ()

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> ServiceSettings:
        identity = EngineIdentity.from_env(environment)
        return cls(
            endpoint=identity.endpoint,
            instance_hash=identity.instance_hash or b"",
            token=(env.text(environment, "MESG_TOKEN") or "") if identity.generation == "g1" else "",
            concurrency=int(env.number(environment, "MESG_PUSHER_CONCURRENCY", 64)),
            grace_period=env.number(environment, "MESG_PUSHER_GRACE_PERIOD", 10.0),
            keepalive_ms=int(env.number(environment, "MESG_PUSHER_KEEPALIVE_MS", 300_000)),
            coalesce=env.flag(environment, "PUSHER_COALESCE", True),
            log_level=(env.text(environment, "LOG_LEVEL") or "INFO").upper(),
            detected=identity,
        )
