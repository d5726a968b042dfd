"""Daily calculation units per broker, for usage-based billing.

SOURCE today: the `calculations` table in Postgres (one row per stored calculation), counted per broker per
UTC day. The analytics helper's metered daily usage (units charged, per broker) replaces this once it is on
main: change `daily_units` to read it; the reporting job (tasks.report_usage) stays as it is.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from app.db.engine import Database
from app.models import Calculation

SOURCE = "postgres:calculations"


async def daily_units(db: Database, day: date) -> dict[uuid.UUID, int]:
    start = datetime.combine(day, time(0), UTC)
    async with db.platform() as session:  # every broker's count: the platform role (cross-tenant job)
        rows = await session.execute(
            select(Calculation.broker_id, func.count()).where(Calculation.created_at >= start,
                                                              Calculation.created_at < start + timedelta(days=1))
            .group_by(Calculation.broker_id))
        return {broker_id: int(n) for broker_id, n in rows.all()}
