"""The usage outbox (migration 20261203_analytics): events Postgres stores nowhere else."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Integer, SmallInteger, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.tables import Base


class UsageEvent(Base):
    __tablename__ = "usage_events"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    broker_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(Text)  # widget_load | calculation (a failed one) | export
    user_id: Mapped[uuid.UUID | None]
    api_key_id: Mapped[uuid.UUID | None]
    endpoint: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(SmallInteger)
    latency_ms: Mapped[float | None]
    units: Mapped[int] = mapped_column(Integer, server_default="0")
    instrument: Mapped[str | None] = mapped_column(Text)
    account_currency: Mapped[str | None] = mapped_column(Text)
    risk_pct: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
