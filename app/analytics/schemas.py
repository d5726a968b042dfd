"""Wire formats of the analytics API (camelCase; the models refuse undeclared fields)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.analytics.queries import Granularity
from app.schemas import OutModel


class Latency(OutModel):
    p50: float | None = Field(description="Median latency in ms (null: no timed calculation)")
    p95: float | None
    p99: float | None


class UsageFigures(OutModel):
    calculations: int = Field(description="Answered calculations")
    errors: int = Field(description="Calculations that ended in an error after admission (4xx/5xx, 429 included)")
    units: int = Field(description="Rate-limit units charged (failed calculations included when charged)")
    latency_ms: Latency


class EndpointCounts(OutModel):
    calculations: int
    errors: int
    units: int


class UsagePeriod(UsageFigures):
    start: str = Field(description="Start of the period, UTC (ISO 8601)")
    endpoints: dict[str, EndpointCounts] = Field(description="The period's figures per endpoint (calculation kind)")


class EndpointUsage(UsageFigures):
    endpoint: str


class Report(OutModel):
    broker_id: uuid.UUID | None = Field(description="The broker (null: every broker, platform operator only)")
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    granularity: Granularity


class UsageReport(Report):
    totals: UsageFigures
    series: list[UsagePeriod]
    endpoints: list[EndpointUsage]


class EngagementPeriod(OutModel):
    start: str
    active_users: int = Field(description="Distinct users with any event in the period")
    returning_users: int = Field(description="Of those, users seen before the period started")
    widget_loads: int
    calculations: int


class EngagementReport(Report):
    dau: int = Field(description="Distinct users in the day before `to`")
    wau: int = Field(description="Distinct users in the 7 days before `to`")
    mau: int = Field(description="Distinct users in the 30 days before `to`")
    widget_loads: int
    calculations: int
    series: list[EngagementPeriod]


class Pair(OutModel):
    instrument: str
    calculations: int
    average_risk_percent: float | None
    units: int


class Currency(OutModel):
    currency: str
    calculations: int


class InstrumentPeriod(OutModel):
    start: str
    calculations: int = Field(description="Answered calculations that named an instrument")
    average_risk_percent: float | None


class InstrumentsReport(Report):
    average_risk_percent: float | None
    pairs: list[Pair] = Field(description="Top instruments by calculations (at most 20)")
    account_currencies: list[Currency]
    series: list[InstrumentPeriod]
