"""Keeping secrets out of logs, errors and reprs."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str) -> str:
    """The URL with any password (and user name) replaced, for logs and messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.netloc.rpartition("@")[2]  # keeps the port and IPv6 brackets as written
        return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))
    except ValueError:
        return MASK


def redact_pusher_url(url: str) -> str:
    """A ``PUSHER_URL`` fit to show, even a malformed one (where ``redact_url`` cannot tell).

    Everything before the last ``@`` is user information (``key:secret``, a secret may hold
    ``/``); without an ``@``, a ``key:secret`` reads as ``host:port``, so a non-numeric
    "port" hides the whole authority.
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if "@" in rest:
        rest = f"{MASK}@{rest.rpartition('@')[2]}"
    else:
        authority, slash, path = rest.partition("/")
        if ":" in authority and not authority.rpartition(":")[2].isdigit():
            authority = MASK
        rest = authority + slash + path
    return f"{scheme}{sep}{rest}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each non-trivial secret masked."""
    # Longest first, so a secret that starts with another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """A last line of defence: masks known secrets in every log record's rendered text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            cleaned = scrub(message, self._secrets)
            if cleaned != message or record.exc_info:
                if record.exc_info and not record.exc_text:
                    record.exc_text = logging.Formatter().formatException(record.exc_info)
                if record.exc_text:
                    record.exc_text = scrub(record.exc_text, self._secrets)
                record.msg, record.args = cleaned, None
        return True


def url_password(url: str) -> str | None:
    """The password in a URL such as ``http://user:pass@proxy:3128``, if any."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def basic_token(url: str) -> str | None:
    """The Basic credentials (base64 of ``user:password``, percent-decoded) a URL's user info
    makes: what goes in ``Proxy-Authorization``; None without a user."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return None
    if user is None:
        return None
    pair = f"{unquote(user)}:{unquote(password or '')}"
    return base64.b64encode(pair.encode()).decode("ascii")


def url_secrets(url: str) -> tuple[str, ...]:
    """Every form a URL's password can leave in: as written, percent-decoded, and inside the
    Basic token (``user:password`` and its base64), which a proxy may echo back."""
    password = url_password(url)
    if not password:
        return ()
    token = basic_token(url) or ""
    decoded = unquote(password)
    return tuple(dict.fromkeys(s for s in (password, decoded, token, base64.b64decode(token).decode()) if s))
