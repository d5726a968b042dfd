"""Used `jti`s of broker-minted end-user tokens: a replay inside the token's lifetime is refused."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.tables import Base


class ExchangeJti(Base):
    __tablename__ = "exchange_jtis"
    broker_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(Text, primary_key=True)
    # The token's own exp (plus leeway): after it the token is refused as expired, so the row can go.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
