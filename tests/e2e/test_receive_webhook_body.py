"""Which signatures the webhook endpoint accepts, on the bytes Pusher signs."""

from __future__ import annotations

from mesg_pusher.receive.webhook_body import WebhookToken, signed_by
from tests.support.receive import signed

BODY = '{"time_ms":1,"events":[{"name":"channel_occupied","channel":"é"}]}'
TOKENS = (WebhookToken("app", "old-secret"), WebhookToken("app", "new-secret"), WebhookToken("other", "s2"))


def test_a_key_may_have_several_secrets_and_each_key_only_its_own() -> None:
    raw = BODY.encode()
    assert signed_by(TOKENS, "app", signed(BODY, "old-secret"), raw)
    assert signed_by(TOKENS, "app", signed(BODY, "new-secret"), raw)
    assert signed_by(TOKENS, "other", signed(BODY, "s2"), raw)
    assert not signed_by(TOKENS, "other", signed(BODY, "new-secret"), raw)
    assert not signed_by(TOKENS, "third", signed(BODY, "s2"), raw)
    assert not signed_by(TOKENS, "app", signed(BODY, "old-secret"), raw + b" ")  # the bytes as sent
    assert not signed_by(TOKENS, "app", "", raw)
    assert not signed_by(TOKENS, "", signed(BODY, "old-secret"), raw)
    assert not signed_by(TOKENS, "app", "é" * 64, raw)  # not hex: refused, not an error
