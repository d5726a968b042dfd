"""Statements on idempotency_keys. Every call runs in a tenant session: RLS scopes it to one broker.

Times come from the caller (the service's clock), never now(), so one clock decides expiry.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import IdempotencyRecord as R


async def claim(session: AsyncSession, *, broker_id: uuid.UUID, key: str, fingerprint: bytes, principal: str,
                claim_id: uuid.UUID, now: datetime, expires_at: datetime, stale_before: datetime) -> bool:
    """Insert a pending row, or take over the existing one when it has expired or its run is stale
    (pending since before `stale_before`: a worker died mid-request). True when this call owns the row.

    One statement, so two concurrent takers cannot both win: the loser's WHERE is re-checked against
    the winner's new row version and fails."""
    fresh = {"fingerprint": fingerprint, "principal": principal, "claim": claim_id, "status": "pending",
             "response_status": None, "response_headers": None, "response_body": None,
             "created_at": now, "expires_at": expires_at}
    stmt = (
        insert(R).values(broker_id=broker_id, key=key, **fresh)
        .on_conflict_do_update(
            index_elements=[R.broker_id, R.key], set_=fresh,
            where=or_(R.expires_at <= now, and_(R.status == "pending", R.created_at <= stale_before)),
        )
        .returning(R.claim)
    )
    return (await session.execute(stmt)).scalar_one_or_none() == claim_id


async def get(session: AsyncSession, broker_id: uuid.UUID, key: str) -> R | None:
    return await session.get(R, (broker_id, key), populate_existing=True)


async def purge_expired(session: AsyncSession, broker_id: uuid.UUID, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired rows of one broker (index on broker_id, expires_at): bounded work."""
    victims = select(R.broker_id, R.key).where(R.broker_id == broker_id, R.expires_at <= now).limit(limit)
    result: Any = await session.execute(delete(R).where(tuple_(R.broker_id, R.key).in_(victims)))
    return int(result.rowcount or 0)


async def complete(session: AsyncSession, *, broker_id: uuid.UUID, key: str, claim_id: uuid.UUID, status: int,
                   headers: list[list[str]], body: bytes) -> bool:
    """Store the response on the row this run still owns; False when it was taken over meanwhile."""
    result: Any = await session.execute(
        update(R).where(R.broker_id == broker_id, R.key == key, R.claim == claim_id, R.status == "pending")
        .values(status="done", response_status=status, response_headers=headers, response_body=body))
    return bool(result.rowcount)


async def release(session: AsyncSession, *, broker_id: uuid.UUID, key: str, claim_id: uuid.UUID) -> bool:
    """Drop this run's pending row (a 5xx or an exception), so a retry runs again."""
    result: Any = await session.execute(
        delete(R).where(R.broker_id == broker_id, R.key == key, R.claim == claim_id, R.status == "pending"))
    return bool(result.rowcount)
