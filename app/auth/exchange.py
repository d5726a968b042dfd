"""Broker-minted end-user tokens exchanged for ours: `POST /api/v1/auth/exchange`.

A broker's own server signs a short JWT for its trader with one of its *secret* API keys (HS256, the
full key string is the HMAC key; header `kid` = the key's 12-character key id). We verify it and
return our own token pair for an END_USER identified by (`broker:<slug>`, `sub`).

Validation (RFC 8725): the algorithm is pinned to HS256 and tied to the key kind (only secret keys
have a signing secret, so a publishable key id or `alg: none` can never verify); `kid` is only used
as a lookup handle after a format check; iss must be the key's broker slug, aud `forexrisk`, sub, iat,
exp and jti are required, and exp may be at most 10 minutes after iat. Each jti is stored until the
token expires, so a replay inside its lifetime gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.auth import refresh
from app.auth import users as repository
from app.auth.cache import BrokerRecord
from app.auth.login import token_pair
from app.auth.service import AuthService
from app.errors import Unauthorized
from app.models import ApiKey, ExchangeJti, User

AUDIENCE = "forexrisk"
ALGORITHM = "HS256"
MAX_LIFETIME_SECONDS = 600
LEEWAY_SECONDS = 30
KID_RE = re.compile(r"^[0-9A-Za-z]{12}$")
END_USER_ROLE = "END_USER"
# Our amr for a session the broker vouched for (no RFC 8176 value fits; it is never a second factor).
EXCHANGE_AMR = ["broker"]


class ExchangeRefused(Unauthorized):
    """Every refusal looks the same to the caller; the reason goes to the audit log when a broker is known."""

    def __init__(self, reason: str) -> None:
        super().__init__("Invalid end-user token.")
        self.reason = reason


def issuer_of(slug: str) -> str:
    return f"broker:{slug}"


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise ExchangeRefused("not a compact JWS")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ExchangeRefused("malformed header") from exc
    if not isinstance(header, dict):
        raise ExchangeRefused("malformed header")
    return header


async def _signing_key(auth: AuthService, kid: str) -> tuple[ApiKey, BrokerRecord]:
    async with auth.db.platform() as s:  # the tenant is not known before the key is found
        row = (await s.execute(select(ApiKey).where(ApiKey.key_id == kid))).scalar_one_or_none()
    if row is None:
        raise ExchangeRefused("unknown key")
    broker = await auth.broker(row.broker_id)
    if broker is None or broker.status != "active":
        raise ExchangeRefused("broker not active")
    return row, broker


def _check_key(row: ApiKey, now: datetime) -> str:
    if row.kind != "secret" or row.signing_secret_enc is None:
        raise ExchangeRefused("not a secret key")
    if row.status != "active":
        raise ExchangeRefused("key revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise ExchangeRefused("key expired")
    return row.signing_secret_enc


def _claims(token: str, secret: str, slug: str, now: int) -> dict[str, Any]:
    try:
        decoded = jwt.decode(token, OctKey.import_key(secret), algorithms=[ALGORITHM])
    except (JoseError, ValueError) as exc:
        raise ExchangeRefused(f"bad signature or format: {type(exc).__name__}") from exc
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": slug}, aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True}, jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise ExchangeRefused(f"bad claims: {type(exc).__name__}") from exc
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int) or isinstance(exp, bool) or isinstance(iat, bool):
        raise ExchangeRefused("exp and iat must be integers")
    if exp - iat > MAX_LIFETIME_SECONDS or exp <= iat:
        raise ExchangeRefused("lifetime over 10 minutes")
    if iat > now + LEEWAY_SECONDS:
        raise ExchangeRefused("issued in the future")
    for name, limit in (("sub", 255), ("jti", 255)):
        if not 1 <= len(claims[name]) <= limit:
            raise ExchangeRefused(f"{name} length")
    for name, limit in (("email", 320), ("name", 200)):
        value = claims.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ExchangeRefused(f"{name} must be a string of at most {limit} characters")
    return claims


def placeholder_email(slug: str, subject: str) -> str:
    # The reserved .invalid TLD (RFC 2606) can never receive mail; the hash keeps any `sub` a valid local part.
    return f"{hashlib.sha256(subject.encode()).hexdigest()[:32]}@{slug}.broker.invalid"


async def _email_for(s: AsyncSession, slug: str, subject: str, claimed: str | None) -> tuple[str, bool]:
    """The claimed email unless another user of the broker has it (never link by email: that account is
    not this identity); then the placeholder. Returns (email, conflicted)."""
    if claimed and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", claimed):
        if not await repository.email_taken(s, claimed):
            return claimed, False
        return placeholder_email(slug, subject), True
    return placeholder_email(slug, subject), False


async def find_or_provision(s: AsyncSession, broker_id: uuid.UUID, slug: str,
                            claims: dict[str, Any]) -> tuple[User, bool]:
    issuer, subject = issuer_of(slug), str(claims["sub"])
    stmt = select(User).where(User.sso_issuer == issuer, User.sso_subject == subject)
    user = (await s.execute(stmt)).scalar_one_or_none()
    if user is not None:
        return user, False
    email, _ = await _email_for(s, slug, subject, claims.get("email"))
    row = User(broker_id=broker_id, email=email, name=claims.get("name"), role=END_USER_ROLE,
               sso_issuer=issuer, sso_subject=subject)
    # A concurrent first exchange for the same trader may win the insert: then that user is the one.
    user, created = await repository.insert_unless_exists(s, row, stmt)
    if user is None:
        raise RuntimeError("user provisioning conflicted on something other than the trader's identity")
    return user, created


async def exchange(auth: AuthService, token: str, conn: HTTPConnection) -> dict[str, Any]:
    header = _header(token)
    if header.get("alg") != ALGORITHM:
        raise ExchangeRefused("algorithm not HS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
        raise ExchangeRefused("kid is not a key id")
    now_ts = int(time.time())
    now = datetime.fromtimestamp(now_ts, UTC)
    row, broker = await _signing_key(auth, kid)
    try:
        secret = auth.fernet.decrypt(_check_key(row, now).encode()).decode()
        claims = _claims(token, secret, broker.slug, now_ts)
    except ExchangeRefused as exc:
        async with auth.db.tenant(broker.id) as s:
            await audit.record(s, broker_id=broker.id, action="auth.exchange_failed", conn=conn,
                               actor_type="api_key", actor_id=str(row.id), target_type="api_key", target_id=row.id,
                               details={"reason": exc.reason})
            await s.commit()
        raise
    async with auth.db.tenant(broker.id) as s:
        # Expired jtis can no longer be replayed (their token is refused as expired first): drop them.
        await s.execute(delete(ExchangeJti).where(ExchangeJti.expires_at < now))
        stored = await s.scalar(
            insert(ExchangeJti).values(broker_id=broker.id, jti=str(claims["jti"]),
                                       expires_at=datetime.fromtimestamp(claims["exp"], UTC)
                                       + timedelta(seconds=LEEWAY_SECONDS))
            .on_conflict_do_nothing(index_elements=["broker_id", "jti"]).returning(ExchangeJti.jti))
        if stored is None:
            await s.rollback()
            await audit.record(s, broker_id=broker.id, action="auth.exchange_replay", conn=conn,
                               actor_type="api_key", actor_id=str(row.id), target_type="api_key", target_id=row.id,
                               details={"jti": str(claims["jti"]), "sub": str(claims["sub"])})
            await s.commit()
            raise ExchangeRefused("jti replayed")
        user, created = await find_or_provision(s, broker.id, broker.slug, claims)
        if user.status != "active" or user.role != END_USER_ROLE:
            # A broker-minted token only ever signs in an end user; a promoted or disabled account is refused.
            await s.rollback()
            raise ExchangeRefused("account not an active end user")
        user.last_login_at = now
        refresh_token, sid = await refresh.issue(s, auth.settings, auth.secrets.pepper, broker_id=broker.id,
                                                 user_id=user.id, amr=list(EXCHANGE_AMR))
        await audit.record(s, broker_id=broker.id, action="auth.exchange", conn=conn, actor_type="user",
                           actor_id=str(user.id), target_type="user", target_id=user.id,
                           details={"keyPrefix": row.prefix, "jti": str(claims["jti"]), "provisioned": created,
                                    "amr": EXCHANGE_AMR})
        await s.commit()
        return token_pair(auth, user, refresh_token, EXCHANGE_AMR, sid)
