"""Responses of the platform-event admin routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from app.schemas import ApiModel, OutModel


class SecretRotate(ApiModel):
    overlap_hours: Annotated[float, Field(ge=0, le=24 * 30)] | None = Field(
        default=None, description="How long the previous secret keeps verifying (default: the server's setting, 24 h)")


class InboundSecretOut(OutModel):
    secret: str = Field(description="The new secret (`whsec_` + base64): shown once, never again")
    rotated_at: datetime
    previous_valid_until: datetime | None = Field(description="Until when the previous secret still verifies "
                                                              "(null when there was none)")


class InboundSecretInfo(OutModel):
    configured: bool
    rotated_at: datetime | None
    previous_valid_until: datetime | None


class PositionOut(OutModel):
    position_id: str
    symbol: str
    side: str
    lots: float
    open_price: float
    stop_loss: float | None
    take_profit: float | None
    opened_at: datetime | None
    updated_at: datetime


class AccountOut(OutModel):
    trader_id: str
    currency: str | None = Field(description="null until the first account.updated")
    balance: float | None
    equity: float | None
    free_margin: float | None
    margin: float | None
    updated_at: datetime | None = Field(description="The event time of the figures")
    margin_call_at: datetime | None
    margin_call_level: float | None
    positions: list[PositionOut] = Field(description="Open positions")
