"""Secrets kept out of URLs, text and log records."""

from __future__ import annotations

import logging
import sys

import pytest

from mesg_pusher.redact import MASK, SecretFilter, redact_url, scrub, url_password

SECRET = "app-s3cr3t-value"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pa55word@proxy.local:3128", "http://***@proxy.local:3128"),
        ("https://user:pa55word@proxy.local/path?q=1#f", "https://***@proxy.local/path?q=1#f"),
        ("http://onlyuser@proxy.local:3128", "http://***@proxy.local:3128"),
        ("http://:pa55word@proxy.local", "http://***@proxy.local"),
        ("http://proxy.local:3128", "http://proxy.local:3128"),
        ("http://proxy.local", "http://proxy.local"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_with_encoded_password() -> None:
    redacted = redact_url("http://u:p%40ss%3Aword@h:1")
    assert redacted == "http://***@h:1"
    assert "ss" not in redacted


def test_unparseable_url_is_masked_entirely() -> None:
    assert redact_url("http://[::1") == MASK


def test_redact_url_never_raises_on_a_bad_port() -> None:
    redacted = redact_url("http://user:topsecret@proxy:abc")
    assert "topsecret" not in redacted


def test_redact_url_keeps_ipv6_brackets() -> None:
    assert redact_url("http://u:pw@[::1]:3128") == "http://***@[::1]:3128"


def test_url_password() -> None:
    assert url_password("http://u:pw@h:1") == "pw"
    assert url_password("http://u@h:1") is None
    assert url_password("http://h:1") is None
    assert url_password("http://[::1") is None


def test_scrub_masks_every_occurrence() -> None:
    text = f"secret={SECRET}; again {SECRET}; password=pa55"
    assert scrub(text, [SECRET, "pa55"]) == "secret=***; again ***; password=***"


def test_scrub_ignores_trivial_secrets() -> None:
    # Masking "s" or "" would destroy the text and reveal what the secret is.
    assert scrub("a short secret: abc", ["", "abc", "s"]) == "a short secret: abc"
    assert scrub("four: abcd", ["abcd"]) == "four: ***"


def test_scrub_without_secrets_leaves_text() -> None:
    assert scrub("nothing to hide", []) == "nothing to hide"


def test_scrub_masks_overlapping_secrets_completely() -> None:
    assert scrub("token abcd1234XYZ9", ["abcd1234", "abcd1234XYZ9"]) == "token ***"


def record(msg: str, args: tuple[object, ...] = (), exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


def test_filter_masks_secret_in_message_and_args() -> None:
    secret_filter = SecretFilter([SECRET, "pw"])
    entry = record("calling with secret %s and %d", (SECRET, 3))
    assert secret_filter.filter(entry) is True
    assert entry.getMessage() == "calling with secret *** and 3"
    assert logging.Formatter().format(entry) == "calling with secret *** and 3"


def test_filter_leaves_clean_records_untouched() -> None:
    secret_filter = SecretFilter([SECRET])
    entry = record("hello %s", ("world",))
    assert secret_filter.filter(entry) is True
    assert (entry.msg, entry.args) == ("hello %s", ("world",))


def test_filter_masks_secret_in_exception_text() -> None:
    secret_filter = SecretFilter([SECRET])
    try:
        raise RuntimeError(f"bad secret {SECRET}")
    except RuntimeError:
        entry = record("request failed", exc_info=sys.exc_info())
    assert secret_filter.filter(entry) is True
    rendered = logging.Formatter().format(entry)
    assert SECRET not in rendered
    assert "RuntimeError: bad secret ***" in rendered
    assert rendered.startswith("request failed\nTraceback")


def test_filter_on_a_real_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("mesg_pusher.tests.redact")
    secret_filter = SecretFilter([SECRET])
    logger.addFilter(secret_filter)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("options: secret=%s", SECRET)
            try:
                raise ValueError(SECRET)
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeFilter(secret_filter)
    assert SECRET not in caplog.text
    assert "options: secret=***" in caplog.text
    assert "ValueError: ***" in caplog.text


def test_filter_without_secrets_is_a_no_op() -> None:
    entry = record("value %s", ("abc",))
    assert SecretFilter(["", "ab"]).filter(entry) is True
    assert (entry.msg, entry.args) == ("value %s", ("abc",))
