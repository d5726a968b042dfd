"""Create, list, rotate and revoke API keys. Keys are stored as an HMAC of their secret, shown once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.admin.api_keys.schemas import KeyCreate
from app.audit import service as audit
from app.auth import keys
from app.auth.permissions import PUBLISHABLE_SCOPES, SCOPES
from app.auth.principal import Principal
from app.auth.service import AuthService
from app.errors import Conflict, Forbidden, NotFound
from app.models import ApiKey


def key_out(row: ApiKey) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "mode": row.mode, "name": row.name, "prefix": row.prefix,
            "last4": row.last4, "scopes": list(row.scopes), "status": row.status, "expiresAt": row.expires_at,
            "createdAt": row.created_at, "revokedAt": row.revoked_at, "lastUsedAt": row.last_used_at,
            "rotatedFrom": row.rotated_from}


async def insert_key(session: AsyncSession, auth: AuthService, broker_id: uuid.UUID, spec: KeyCreate, *,
                     created_by: uuid.UUID | None = None, rotated_from: uuid.UUID | None = None) -> tuple[str, ApiKey]:
    full, parsed = keys.generate(spec.kind, spec.mode)
    scopes = list(PUBLISHABLE_SCOPES) if spec.kind == "publishable" else list(spec.scopes or SCOPES)
    row = ApiKey(
        broker_id=broker_id, key_id=parsed.key_id, kind=spec.kind, mode=spec.mode, scopes=scopes,
        secret_hash=keys.hash_secret(auth.secrets.pepper, parsed.secret), prefix=parsed.prefix, last4=full[-4:],
        name=spec.name, created_by=created_by, rotated_from=rotated_from,
        signing_secret_enc=auth.fernet.encrypt(full.encode()).decode() if spec.kind == "secret" else None,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return full, row


def _within_own_scopes(principal: Principal, kind: str, scopes: list[str] | None) -> None:
    """An API key may only issue (create or rotate into) keys no stronger than itself."""
    if principal.kind != "secret_key":
        return
    wanted = set(PUBLISHABLE_SCOPES) if kind == "publishable" else set(scopes or SCOPES)
    if not wanted <= set(principal.scopes):
        raise Forbidden("A key may only issue keys within its own scopes.")


async def create(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                 spec: KeyCreate, conn: HTTPConnection) -> dict[str, Any]:
    _within_own_scopes(principal, spec.kind, spec.scopes)
    full, row = await insert_key(session, auth, broker_id, spec, created_by=principal.user_id or principal.api_key_id)
    await audit.record(session, broker_id=broker_id, action="api_key.created", conn=conn, principal=principal,
                       target_type="api_key", target_id=row.id,
                       details={"kind": row.kind, "prefix": row.prefix, "scopes": list(row.scopes)})
    await session.commit()
    return {**key_out(row), "key": full}


async def list_keys(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).scalars().all()
    return [key_out(r) for r in rows]


async def _get(session: AsyncSession, key_row_id: uuid.UUID) -> ApiKey:
    row = await session.get(ApiKey, key_row_id)
    if row is None:
        raise NotFound("No API key with this id.")
    return row


async def rotate(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                 key_row_id: uuid.UUID, overlap_hours: float | None, conn: HTTPConnection) -> dict[str, Any]:
    # The row is locked, so two concurrent rotations of one key cannot both make a successor.
    old = (await session.execute(select(ApiKey).where(ApiKey.id == key_row_id).with_for_update())).scalar_one_or_none()
    if old is None:
        raise NotFound("No API key with this id.")
    if old.status != "active":
        raise NotFound("No active API key with this id.")
    successor = await session.scalar(select(ApiKey.id).where(ApiKey.rotated_from == old.id).limit(1))
    if successor is not None:
        raise Conflict(f"This key was already rotated (its successor is {successor}); rotate the successor, or "
                       f"revoke this one to end its overlap.",
                       errors=[{"field": "keyId", "pointer": "#", "code": "already_rotated",
                                "detail": f"successor {successor}"}])
    _within_own_scopes(principal, old.kind, list(old.scopes))
    hours = auth.settings.key_rotation_overlap_hours if overlap_hours is None else overlap_hours
    expires = datetime.now(UTC) + timedelta(hours=hours)
    if old.expires_at is None or old.expires_at > expires:
        old.expires_at = expires
    spec = KeyCreate(kind=old.kind, mode=old.mode, name=old.name,  # type: ignore[arg-type]
                     scopes=list(old.scopes) if old.kind == "secret" else None)
    full, new = await insert_key(session, auth, broker_id, spec, created_by=principal.user_id or principal.api_key_id,
                                 rotated_from=old.id)
    await audit.record(session, broker_id=broker_id, action="api_key.rotated", conn=conn, principal=principal,
                       target_type="api_key", target_id=old.id,
                       details={"newKeyId": str(new.id), "oldExpiresAt": expires.isoformat(), "prefix": old.prefix})
    await audit.record(session, broker_id=broker_id, action="api_key.created", conn=conn, principal=principal,
                       target_type="api_key", target_id=new.id,
                       details={"kind": new.kind, "prefix": new.prefix, "rotatedFrom": str(old.id)})
    await session.commit()
    auth.forget_key(old.key_id)
    return {**key_out(new), "key": full, "previousKeyExpiresAt": old.expires_at}


async def revoke(session: AsyncSession, auth: AuthService, principal: Principal, broker_id: uuid.UUID,
                 key_row_id: uuid.UUID, conn: HTTPConnection) -> dict[str, Any]:
    row = await _get(session, key_row_id)
    if row.status != "revoked":
        await session.execute(update(ApiKey).where(ApiKey.id == row.id)
                              .values(status="revoked", revoked_at=datetime.now(UTC)))
        await audit.record(session, broker_id=broker_id, action="api_key.revoked", conn=conn, principal=principal,
                           target_type="api_key", target_id=row.id, details={"prefix": row.prefix})
        await session.commit()
        await session.refresh(row)
    auth.forget_key(row.key_id)
    return key_out(row)
