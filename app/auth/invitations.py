"""Invitation links: a user created without a password gets a link to choose one.

The token is stateless: `fxr_inv_<payload>.<mac>`, the payload the broker id, the user id and the expiry
(base64url JSON), the MAC an HMAC-SHA256 under the server pepper. No table: it is single-use because
accepting sets a password, and a token is honoured only while the user has none, is active and is not
an SSO identity. The broker id in the payload lets the accept route open the tenant's RLS scope
before anyone is authenticated (like a refresh token's prefix).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import orjson

PREFIX = "fxr_inv_"
LIFETIME_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Invitation:
    broker_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: int  # epoch seconds


def _mac(pepper: bytes, payload: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(pepper, b"invite:" + payload.encode(), hashlib.sha256).digest()
                                    ).decode().rstrip("=")


def issue(pepper: bytes, broker_id: uuid.UUID, user_id: uuid.UUID, now: float | None = None) -> tuple[str, int]:
    exp = int((now if now is not None else time.time()) + LIFETIME_SECONDS)
    payload = base64.urlsafe_b64encode(orjson.dumps({"b": broker_id.hex, "u": user_id.hex, "e": exp})
                                       ).decode().rstrip("=")
    return f"{PREFIX}{payload}.{_mac(pepper, payload)}", exp


def verify(pepper: bytes, token: str, now: float | None = None) -> Invitation | None:
    """The invitation, or None for anything forged, malformed or expired (one answer for all)."""
    if not token.startswith(PREFIX):
        return None
    payload, _, mac = token[len(PREFIX):].partition(".")
    if not payload or not hmac.compare_digest(mac, _mac(pepper, payload)):
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        found = Invitation(uuid.UUID(hex=data["b"]), uuid.UUID(hex=data["u"]), int(data["e"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return found if found.expires_at > (now if now is not None else time.time()) else None
