"""Queries of the privacy service: everything stored about one user, in the tenant session of its broker."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, cast, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, AuditLog, Calculation, RefreshToken, User


async def broker_of(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID | None:
    """Platform session only: the broker a user belongs to (the platform operator's reach)."""
    found: uuid.UUID | None = await session.scalar(select(User.broker_id).where(User.id == user_id))
    return found


async def user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id, with_for_update=True)


async def sessions(session: AsyncSession, user_id: uuid.UUID) -> list[RefreshToken]:
    return list((await session.execute(select(RefreshToken).where(RefreshToken.user_id == user_id)
                                       .order_by(RefreshToken.issued_at))).scalars())


async def keys_created(session: AsyncSession, user_id: uuid.UUID) -> list[ApiKey]:
    return list((await session.execute(select(ApiKey).where(ApiKey.created_by == user_id)
                                       .order_by(ApiKey.created_at))).scalars())


async def audit_events(session: AsyncSession, user_id: uuid.UUID, email: str, pseudonym: str) -> list[AuditLog]:
    """Entries by or about the user (its id or pseudonym as actor or target), or naming its email."""
    uid = str(user_id)
    stmt = select(AuditLog).where(or_(
        AuditLog.actor_id.in_((uid, pseudonym)), AuditLog.target_id.in_((uid, pseudonym)),
        func.strpos(func.lower(cast(AuditLog.details, Text)), email.lower()) > 0,
    )).order_by(AuditLog.created_at, AuditLog.id)
    return list((await session.execute(stmt)).scalars())


async def calculations(session: AsyncSession, user_id: uuid.UUID) -> list[Calculation]:
    stmt = select(Calculation).where(Calculation.user_id == user_id).order_by(Calculation.created_at)
    return list((await session.execute(stmt)).scalars())


async def count_calculations(session: AsyncSession, user_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(Calculation).where(Calculation.user_id == user_id)
    return int(await session.scalar(stmt) or 0)


async def revoke_sessions(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """Every live refresh token of the user revoked; the families (sessions) they belonged to."""
    rows = await session.execute(update(RefreshToken).where(RefreshToken.user_id == user_id,
                                                            RefreshToken.revoked_at.is_(None))
                                 .values(revoked_at=now).returning(RefreshToken.family_id))
    return sorted(set(rows.scalars()))


async def pseudonymise_audit(session: AsyncSession, user_id: uuid.UUID, email: str, pseudonym: str,
                             identifiers: list[str]) -> int:
    """The owner-run function of migration 20261203_21 (the app role cannot UPDATE audit_logs itself)."""
    n = await session.scalar(text("select audit_pseudonymise_subject(:u, :e, :p, cast(:ids as text[]))"),
                             {"u": user_id, "e": email, "p": pseudonym, "ids": identifiers})
    return int(n or 0)
