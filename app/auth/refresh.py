"""Refresh tokens: opaque, stored as HMACs, rotated on every use, with reuse detection.

Token: `fxr_rt_<broker id hex>_<43 random chars>`. The broker id lets the lookup run inside the
tenant's RLS scope. Each use marks the token used and issues its successor. The successor is derived
(HMAC of the used token), so a replay of the immediately previous token inside the grace window can
return the *same* new refresh token after a lost response, without storing any token in plain text.
Any other replay revokes the whole family.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import RefreshToken

TOKEN_RE = re.compile(r"^fxr_rt_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Outcome:
    token: str | None  # the new refresh token; None when refused
    user_id: uuid.UUID | None
    reason: str  # "rotated" | "grace" | "reuse" | "invalid" | "expired" | "revoked"
    family_id: uuid.UUID | None = None
    amr: tuple[str, ...] = ()  # how the session logged in; refreshed tokens carry exactly this


def broker_of(token: str) -> uuid.UUID | None:
    m = TOKEN_RE.match(token)
    return uuid.UUID(hex=m.group(1)) if m else None


def _hash(pepper: bytes, token: str) -> bytes:
    return hmac.new(pepper, b"rt:" + token.encode(), hashlib.sha256).digest()


def _successor(pepper: bytes, token: str, broker_id: uuid.UUID) -> str:
    raw = hmac.new(pepper, b"next:" + token.encode(), hashlib.sha256).digest()
    return f"fxr_rt_{broker_id.hex}_{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def new_token(broker_id: uuid.UUID) -> str:
    return f"fxr_rt_{broker_id.hex}_{secrets.token_urlsafe(32)}"


async def issue(session: AsyncSession, settings: Settings, pepper: bytes, *, broker_id: uuid.UUID,
                user_id: uuid.UUID, amr: list[str]) -> tuple[str, uuid.UUID]:
    """A new family for a fresh login; `amr` is how that login authenticated. The token and the family
    id (the session id `sid` of the access tokens issued with it)."""
    token = new_token(broker_id)
    now = datetime.now(UTC)
    family_id = uuid.uuid4()
    session.add(RefreshToken(broker_id=broker_id, user_id=user_id, family_id=family_id,
                             token_hash=_hash(pepper, token), issued_at=now, amr=sorted(set(amr)),
                             expires_at=now + timedelta(days=settings.refresh_absolute_days),
                             idle_expires_at=now + timedelta(days=settings.refresh_idle_days)))
    return token, family_id


async def rotate(session: AsyncSession, settings: Settings, pepper: bytes, token: str,
                 now: datetime | None = None) -> Outcome:
    broker_id = broker_of(token)
    if broker_id is None:
        return Outcome(None, None, "invalid")
    now = now or datetime.now(UTC)
    row = (await session.execute(select(RefreshToken).where(RefreshToken.token_hash == _hash(pepper, token))
                                 .with_for_update())).scalar_one_or_none()
    if row is None:
        return Outcome(None, None, "invalid")
    if row.revoked_at is not None:
        return Outcome(None, row.user_id, "revoked", row.family_id)
    if row.expires_at <= now or row.idle_expires_at <= now:
        return Outcome(None, row.user_id, "expired", row.family_id)
    successor = _successor(pepper, token, broker_id)
    if row.used_at is None:
        row.used_at = now
        row.successor_hash = _hash(pepper, successor)
        session.add(RefreshToken(broker_id=broker_id, user_id=row.user_id, family_id=row.family_id,
                                 token_hash=row.successor_hash, issued_at=now, expires_at=row.expires_at, amr=row.amr,
                                 idle_expires_at=min(row.expires_at, now + timedelta(days=settings.refresh_idle_days))))
        return Outcome(successor, row.user_id, "rotated", row.family_id, tuple(row.amr))
    # Used before: a lost-response retry of the immediately previous token inside the grace window
    # gets the same successor, as long as that successor has not been used itself.
    if now - row.used_at <= timedelta(seconds=settings.refresh_grace_seconds):
        nxt = (await session.execute(select(RefreshToken).where(RefreshToken.token_hash == row.successor_hash))
               ).scalar_one_or_none()
        if nxt is not None and nxt.used_at is None and nxt.revoked_at is None:
            return Outcome(successor, row.user_id, "grace", row.family_id, tuple(row.amr))
    await revoke_family(session, row.family_id, now)
    return Outcome(None, row.user_id, "reuse", row.family_id)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime | None = None) -> None:
    await session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                                     RefreshToken.revoked_at.is_(None))
                          .values(revoked_at=now or datetime.now(UTC)))


async def family_of(session: AsyncSession, pepper: bytes, token: str) -> RefreshToken | None:
    return (await session.execute(select(RefreshToken).where(RefreshToken.token_hash == _hash(pepper, token)))
            ).scalar_one_or_none()


async def revoke_user_families(session: AsyncSession, user_id: uuid.UUID,
                               now: datetime | None = None) -> list[uuid.UUID]:
    """Revoke every live family of a user; the ids of those that were live."""
    rows = (await session.execute(update(RefreshToken).where(RefreshToken.user_id == user_id,
                                                             RefreshToken.revoked_at.is_(None))
                                  .values(revoked_at=now or datetime.now(UTC))
                                  .returning(RefreshToken.family_id))).scalars().all()
    return sorted(set(rows))
