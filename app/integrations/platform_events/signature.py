"""Verifying a signed inbound message (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature`; signed string `{id}.{timestamp}.{body}`, HMAC-SHA256, base64, `v1,` entries separated
by spaces).

The signature itself is computed by the `standardwebhooks` package (`Webhook.sign`); the headers are parsed
here because its `verify` raises ValueError or binascii.Error (a 500) on a malformed signature header, and
reads the wall clock, where we check the timestamp against the service's clock.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from app.errors import Unauthorized

TOLERANCE_SECONDS = 300
MAX_ID = 255


def new_secret() -> str:
    """A fresh symmetric secret as Standard Webhooks shows it: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _refuse(why: str) -> Unauthorized:
    return Unauthorized(f"The message signature is not valid: {why}.")


def _signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split(" "):
        if not entry:
            continue
        version, sep, value = entry.partition(",")
        if not sep:
            raise _refuse("webhook-signature entries are `v1,<base64>` separated by spaces")
        if version != "v1":
            continue  # another scheme (e.g. v1a, asymmetric): not ours to check
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise _refuse("a v1 signature is not base64") from None
    if not found:
        raise _refuse("no v1 signature in webhook-signature")
    return found


def verify(keys: Sequence[str], headers: Mapping[str, str], body: bytes, now: datetime,
           tolerance: float = TOLERANCE_SECONDS) -> tuple[str, datetime]:
    """The message id and timestamp of a message signed with one of `keys`, or Unauthorized (a 401)."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    header = headers.get("webhook-signature")
    if not msg_id or not stamp or not header:
        raise _refuse("webhook-id, webhook-timestamp and webhook-signature are required")
    if len(msg_id) > MAX_ID or not msg_id.isascii() or not msg_id.isprintable():
        raise _refuse(f"webhook-id must be 1 to {MAX_ID} printable ASCII characters")
    # ASCII digits only: str.isdigit() also takes "²" (a Latin-1 header byte) that int() refuses.
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise _refuse("webhook-timestamp must be integer Unix seconds")
    if abs(now.timestamp() - int(stamp)) > tolerance:  # compared as numbers: year 33658 is no datetime
        raise _refuse(f"webhook-timestamp is more than {tolerance:.0f} s from our clock")
    sent = datetime.fromtimestamp(int(stamp), UTC)
    given = _signatures(header)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise _refuse("the body is not UTF-8") from None
    for key in keys:
        expected = base64.b64decode(Webhook(key).sign(msg_id, sent, text).partition(",")[2])
        if any(hmac.compare_digest(expected, sig) for sig in given):
            return msg_id, sent
    raise _refuse("no signature matches the broker's inbound secret")
