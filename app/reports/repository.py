"""Queries of compliance reports and of what they report on (tenant session: RLS scopes every statement)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditLog, Broker, Calculation, ComplianceReport

BATCH = 1000  # rows fetched per round trip while streaming a period


async def get(session: AsyncSession, report_id: uuid.UUID, lock: bool = False) -> ComplianceReport | None:
    return await session.get(ComplianceReport, report_id, with_for_update=lock)


async def recent(session: AsyncSession, limit: int) -> list[ComplianceReport]:
    stmt = select(ComplianceReport).order_by(ComplianceReport.created_at.desc(), ComplianceReport.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def broker_name(session: AsyncSession, broker_id: uuid.UUID) -> str:
    name = await session.scalar(select(Broker.name).where(Broker.id == broker_id))
    return str(name or broker_id)


async def calculations(session: AsyncSession, start: datetime, end: datetime) -> AsyncIterator[Calculation]:
    stmt = (select(Calculation).where(Calculation.created_at >= start, Calculation.created_at < end)
            .order_by(Calculation.created_at, Calculation.id).execution_options(yield_per=BATCH))
    async for row in await session.stream_scalars(stmt):
        yield row


async def audit_entries(session: AsyncSession, start: datetime, end: datetime) -> AsyncIterator[AuditLog]:
    stmt = (select(AuditLog).where(AuditLog.created_at >= start, AuditLog.created_at < end)
            .order_by(AuditLog.created_at, AuditLog.id).execution_options(yield_per=BATCH))
    async for row in await session.stream_scalars(stmt):
        yield row
