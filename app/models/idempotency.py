"""Idempotency-Key records: the first response to a (broker, key), replayed until `expires_at`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.tables import Base


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    broker_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    principal: Mapped[str] = mapped_column(Text)
    claim: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[list[Any] | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Written from the service's clock (not now()), so expiry is testable and one clock decides it.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
