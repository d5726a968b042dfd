"""A widget session token as a credential: verified, then re-checked against the live key and broker.

The signature alone would keep a token working for its whole 15 minutes after its publishable key
is revoked or its broker offboarded; so every use also reads the key and the broker through
AuthService's in-process caches (no database round trip on the hot path). A revocation then ends
the key's sessions at once on the worker that revoked it and within `key_cache_seconds` elsewhere.

The request's Origin is not checked here: the page's origin was checked when the session was issued,
and the iframe that uses the token runs on our own origin. The origin bound in the token must still be
on the broker's allow-list, though.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.auth.cache import BrokerRecord, KeyRecord
from app.auth.permissions import PUBLISHABLE_SCOPES, permissions_for_scopes
from app.auth.principal import Principal
from app.auth.widget_tokens import PREFIX, InvalidWidgetToken, WidgetClaims
from app.errors import Unauthorized

if TYPE_CHECKING:  # AuthService imports this module for its `fxw_` branch
    from app.auth.service import AuthService

__all__ = ["PREFIX", "VerifiedSession", "authenticate", "verify"]

_PERMISSIONS = permissions_for_scopes(PUBLISHABLE_SCOPES)


@dataclass(frozen=True)
class VerifiedSession:
    claims: WidgetClaims
    key: KeyRecord
    broker: BrokerRecord


def key_usable(record: KeyRecord | None, now: datetime) -> bool:
    return (record is not None and record.kind == "publishable" and record.status == "active"
            and (record.expires_at is None or record.expires_at > now))


async def verify(auth: AuthService, token: str, now: float | None = None) -> VerifiedSession:
    """The token's binding, its still-active publishable key and its still-active broker, or 401."""
    try:
        claims = auth.widget_tokens.verify(token, now)
    except InvalidWidgetToken as exc:
        raise Unauthorized("Invalid or expired widget session; reload the widget.") from exc
    record = await auth.key_record(claims.key_id)
    when = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    if not key_usable(record, when) or record is None or record.broker_id != claims.broker_id:
        raise Unauthorized("The widget's publishable key has been revoked; the widget needs a new session.")
    broker = await auth.broker(claims.broker_id)
    if broker is None or broker.status != "active":
        raise Unauthorized("The credential's broker is not active.")
    if claims.origin is not None and claims.origin not in broker.allowed_origins:
        # Not the request's Origin (see above) but the one checked at issue: a broker that removes a
        # site from its allow-list ends that site's sessions too, not only new embeds.
        raise Unauthorized("The page this widget session was issued to is no longer on the broker's allowedOrigins.")
    return VerifiedSession(claims=claims, key=record, broker=broker)


async def authenticate(auth: AuthService, token: str) -> Principal:
    """The principal of a widget session: exactly what its publishable key may do (stateless calculations)."""
    session = await verify(auth, token)
    return Principal(broker_id=session.broker.id, kind="publishable_key", permissions=_PERMISSIONS,
                     api_key_id=session.key.id, scopes=PUBLISHABLE_SCOPES, widget_session=True)
