"""`/api/v1/brokers/{brokerId}/analytics/{usage, engagement, instruments}`; the platform operator may use
any broker's id, or `all` for every broker at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.analytics.queries import MAX_BUCKETS, Granularity, Window, bucket_count
from app.analytics.schemas import EngagementReport, InstrumentsReport, UsageReport
from app.analytics.service import Analytics
from app.auth.principal import Principal
from app.auth.service import require
from app.deps import BrokerScope, CurrentPrincipal
from app.errors import Forbidden, InvalidField
from app.jsonbody import StrictRoute
from app.services import services

router = APIRouter(prefix="/api/v1/brokers", tags=["analytics"], route_class=StrictRoute)

From = Annotated[datetime | None, Query(alias="from", description="Start (inclusive), ISO 8601; no offset means "
                                                                 "UTC. Default: 30 days before `to`")]
To = Annotated[datetime | None, Query(alias="to", description="End (exclusive), ISO 8601; no offset means UTC. "
                                                             "Default: now")]
Grain = Annotated[Granularity, Query(description="Period of each point of the series (UTC; weeks start on Monday)")]
REPORT_MODELS = {"usage": UsageReport, "engagement": EngagementReport, "instruments": InstrumentsReport}
SUMMARIES = {
    "usage": "Calculations by period and endpoint: counts, errors, units charged, latency percentiles",
    "engagement": "Active users (DAU, WAU, MAU, returning users), widget loads vs calculations",
    "instruments": "Top instruments, average risk %, account currencies",
}


# What ClickHouse's DateTime64(3) holds with room to spare; outside it a date is a typo, not a query.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _utc(at: datetime, field: str) -> datetime:
    try:
        found = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (OverflowError, ValueError):
        found = datetime.max.replace(tzinfo=UTC)  # an offset pushed it off the calendar: refused below
    if not EARLIEST <= found <= LATEST:
        raise InvalidField(field, f"`{field}` must lie between 1970-01-01 and 2200-01-01 (UTC)", "range")
    return found


def window(start: datetime | None, end: datetime | None, granularity: Granularity) -> Window:
    hi = _utc(end, "to") if end is not None else datetime.now(UTC)
    lo = _utc(start, "from") if start is not None else max(hi - timedelta(days=30), EARLIEST)
    if lo >= hi:
        raise InvalidField("from", "`from` must be before `to`", "range")
    found = Window(lo, hi, granularity)
    if bucket_count(found) > MAX_BUCKETS:
        raise InvalidField("granularity", f"this range has more than {MAX_BUCKETS} periods of one {granularity}: "
                                          "choose a coarser granularity or a shorter range", "too_many_periods")
    return found


def analytics(request: Request) -> Analytics:
    found: Analytics = services(request.app).analytics
    return found


async def _report(request: Request, name: str, principal: Principal, broker_id: uuid.UUID | None,
                  start: datetime | None, end: datetime | None, granularity: Granularity) -> dict[str, Any]:
    require(principal, "analytics:read:own")
    span = window(start, end, granularity)
    body = await analytics(request).report(name, broker_id, span)
    return {"brokerId": broker_id, "from": span.start, "to": span.end, "granularity": granularity, **body}


def _platform(principal: Principal) -> None:
    if not principal.is_superadmin:
        raise Forbidden("Only the platform operator sees every broker's analytics; use your broker's id.")


# Every broker at once (declared before the {broker_id} routes, whose id must be a UUID).
@router.get("/all/analytics/usage", response_model=UsageReport, summary=SUMMARIES["usage"] + " (every broker)")
async def usage_all(request: Request, principal: CurrentPrincipal, start: From = None, end: To = None,
                    granularity: Grain = "day") -> dict[str, Any]:
    _platform(principal)
    return await _report(request, "usage", principal, None, start, end, granularity)


@router.get("/all/analytics/engagement", response_model=EngagementReport,
            summary=SUMMARIES["engagement"] + " (every broker)")
async def engagement_all(request: Request, principal: CurrentPrincipal, start: From = None, end: To = None,
                         granularity: Grain = "day") -> dict[str, Any]:
    _platform(principal)
    return await _report(request, "engagement", principal, None, start, end, granularity)


@router.get("/all/analytics/instruments", response_model=InstrumentsReport,
            summary=SUMMARIES["instruments"] + " (every broker)")
async def instruments_all(request: Request, principal: CurrentPrincipal, start: From = None, end: To = None,
                          granularity: Grain = "day") -> dict[str, Any]:
    _platform(principal)
    return await _report(request, "instruments", principal, None, start, end, granularity)


@router.get("/{broker_id}/analytics/usage", response_model=UsageReport, summary=SUMMARIES["usage"])
async def usage(request: Request, target: BrokerScope, principal: CurrentPrincipal, start: From = None,
                end: To = None, granularity: Grain = "day") -> dict[str, Any]:
    return await _report(request, "usage", principal, target, start, end, granularity)


@router.get("/{broker_id}/analytics/engagement", response_model=EngagementReport, summary=SUMMARIES["engagement"])
async def engagement(request: Request, target: BrokerScope, principal: CurrentPrincipal, start: From = None,
                     end: To = None, granularity: Grain = "day") -> dict[str, Any]:
    return await _report(request, "engagement", principal, target, start, end, granularity)


@router.get("/{broker_id}/analytics/instruments", response_model=InstrumentsReport,
            summary=SUMMARIES["instruments"])
async def instruments(request: Request, target: BrokerScope, principal: CurrentPrincipal, start: From = None,
                      end: To = None, granularity: Grain = "day") -> dict[str, Any]:
    return await _report(request, "instruments", principal, target, start, end, granularity)
