"""The live book's wire format (GET /api/v1/brokers/{brokerId}/accounts/{traderId}/risk)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from app.alerts.book import VAR_CONFIDENCES
from app.schemas import ApiModel, OutModel, RateOrigin


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
    prices: dict[str, RateOrigin] = Field(
        default_factory=dict, description="The quote each instrument of the book is valued at (source, time, "
        "live or a dated snapshot); flag PRICES_NOT_LIVE when any is not live")
    var: LiveVar | None = Field(description="Historical VaR and ES of the open positions from the market history")
    unavailable: list[Unavailable] = Field(description="Parts that could not be computed, with the reason")
    flags: list[str]
    conventions: dict[str, str] = Field(description="How each figure is computed (valuation, riskAtStop, "
                                        "percentOfEquity, margin, marginLevel, netExposure, var)")


# ---- alert rules and alerts ----

RuleKind = Literal["risk-per-trade", "total-risk", "margin-level", "currency-exposure", "portfolio-var"]
Threshold = Annotated[float, Field(ge=0, le=1e13)]
# The live book computes VaR at these two confidences (app.alerts.book.VAR_CONFIDENCES).
def _one_of_the_book(v: float) -> float:
    if v not in VAR_CONFIDENCES:
        raise ValueError("the live book's VaR is at 0.95 or 0.99")
    return v


Confidence = Annotated[float, Field(ge=0.95, le=0.99, description="0.95 or 0.99"), AfterValidator(_one_of_the_book)]


class RuleCreate(ApiModel):
    kind: RuleKind = Field(description="risk-per-trade: a position's risk at its stop above X % of equity; "
                           "total-risk: the risk at all stops above Y %; margin-level: equity / margin below Z %; "
                           "currency-exposure: one currency's net exposure above W % of equity; portfolio-var: the "
                           "1-day historical VaR above V (account currency)")
    threshold: Threshold
    clear_threshold: Threshold | None = Field(
        default=None, description="Where an active alert clears (default: the threshold). Below the threshold for "
        "an above rule, above it for margin-level: the band between is the hysteresis")
    confidence: Confidence | None = Field(default=None, description="portfolio-var only: 0.95 or 0.99 (default)")
    description: Annotated[str, Field(max_length=500)] | None = None
    enabled: bool = True


class RulePatch(ApiModel):
    threshold: Threshold | None = None
    clear_threshold: Threshold | None = None
    confidence: Confidence | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    enabled: bool | None = None


class RuleOut(OutModel):
    id: uuid.UUID
    kind: RuleKind
    threshold: float
    clear_threshold: float
    confidence: float | None
    unit: str
    direction: Literal["above", "below"]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AlertOut(OutModel):
    id: uuid.UUID
    rule_id: uuid.UUID
    kind: RuleKind
    trader_id: str
    subject: str | None = Field(description="The position id (risk-per-trade) or currency (currency-exposure)")
    status: Literal["active", "cleared"]
    value: float | None = Field(description="The measured value when it fired")
    threshold: float
    triggered_at: datetime
    cleared_at: datetime | None
    evidence: dict[str, Any] = Field(description="The part of the live book that showed the breach")
    cleared_evidence: dict[str, Any] | None
