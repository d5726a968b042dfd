"""The live book's wire format (GET /api/v1/brokers/{brokerId}/accounts/{traderId}/risk)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from app.schemas import OutModel


class LivePosition(OutModel):
    position_id: str
    symbol: str
    side: str
    lots: float
    open_price: float
    stop_loss: float | None
    take_profit: float | None
    risk_at_stop: float | None = Field(description="Money lost at the stop, account currency; null without a stop")
    risk_percent_of_equity: float | None
    required_margin: float | None
    notional: float | None


class CurrencyExposure(OutModel):
    amount: float = Field(description="Net units of the currency (long > 0)")
    account_value: float | None
    percent_of_equity: float | None = Field(description="|accountValue| in % of equity")


class VarFigure(OutModel):
    confidence: float
    var: float
    es: float


class LiveVar(OutModel):
    method: str
    horizon_days: float
    observations: int
    results: list[VarFigure]
    history: dict[str, Any] | None = Field(description="The market history the returns came from")


class Unavailable(OutModel):
    part: str = Field(description="book, portfolio or var: what could not be computed")
    code: str
    field: str | None = None
    detail: str


class LiveRiskOut(OutModel):
    trader_id: str
    account_currency: str | None
    balance: float | None
    equity: float | None
    free_margin: float | None
    as_of: datetime | None = Field(description="Event time of the account figures")
    margin_call_at: datetime | None
    positions: list[LivePosition]
    total_risk_at_stops: float
    total_risk_percent_of_equity: float | None
    total_risk_complete: bool = Field(description="false: a position has no stop (its risk is unbounded)")
    margin: float | None = Field(description="Used margin: the platform's figure, else the sum of required margins")
    margin_source: str | None = Field(description="platform or computed")
    margin_level: float | None = Field(description="equity / margin x 100; null without margin")
    net_exposure_by_currency: dict[str, CurrencyExposure]
    priced_at_open: list[str] = Field(description="Instruments without a fresh quote in the broker's chain, valued "
                                      "at their open price")
    var: LiveVar | None = Field(description="Historical VaR and ES of the open positions from the market history")
    unavailable: list[Unavailable] = Field(description="Parts that could not be computed, with the reason")
    flags: list[str]
