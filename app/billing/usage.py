"""Daily units per broker for usage-based billing: the analytics issue's metered daily usage (units charged
per UTC day, read from Postgres, the source of truth; app.analytics.service.daily_usage)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, timedelta

from app.analytics.service import daily_usage
from app.db.engine import Database

SOURCE = "analytics.daily_usage: units charged (Postgres)"


async def daily_units(db: Database, brokers: Iterable[uuid.UUID], day: date) -> dict[uuid.UUID, int]:
    out: dict[uuid.UUID, int] = {}
    for broker_id in brokers:
        (usage,) = await daily_usage(db, broker_id, day, day + timedelta(days=1))
        out[broker_id] = usage.units
    return out
