"""Signing a delivery per Standard Webhooks with the `standardwebhooks` package: `webhook-id` (the message id,
the same on every attempt), `webhook-timestamp` (Unix seconds of the attempt, UTC) and `webhook-signature`
(`v1,<base64>` for each active secret: during a rotation the old and the new secret both sign)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook


def headers(message_id: str, at: datetime, body: str, secrets: Sequence[str]) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json"}
