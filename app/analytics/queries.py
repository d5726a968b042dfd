"""The three reports, as ClickHouse SQL over `usage_metrics`, shaped into JSON-able dicts.

Every statement is built by `scoped()`, which always adds the broker filter (a bound UUID parameter,
never spliced text); only the platform operator's cross-broker scope leaves it out. Every read uses
FINAL (exact counts even if a batch was ever stored twice; see app.analytics.clickhouse). Periods are
UTC buckets computed here, so a bucket with no events is in the answer with zeros.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

Granularity = Literal["hour", "day", "week", "month"]
MAX_BUCKETS = 5_000
QUANTILES = (0.5, 0.95, 0.99)
TOP = 20


class Runner(Protocol):
    async def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    granularity: Granularity

    def buckets(self) -> list[datetime]:
        """Every bucket start from the one holding `start` up to `end` (exclusive)."""
        out: list[datetime] = []
        at = truncate(self.start, self.granularity)
        while at < self.end:
            out.append(at)
            at = step(at, self.granularity)
        return out


def truncate(at: datetime, granularity: Granularity) -> datetime:
    at = at.astimezone(UTC)
    if granularity == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "day":
        return day
    if granularity == "week":  # ISO weeks: Monday, as ClickHouse's dateTrunc('week')
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def step(at: datetime, granularity: Granularity) -> datetime:
    if granularity == "hour":
        return at + timedelta(hours=1)
    if granularity == "day":
        return at + timedelta(days=1)
    if granularity == "week":
        return at + timedelta(days=7)
    return (at.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_count(window: Window) -> int:
    """How many buckets a window has, without building them (a guard against absurd requests)."""
    span = (window.end - truncate(window.start, window.granularity)).total_seconds()
    per = {"hour": 3600, "day": 86_400, "week": 604_800, "month": 28 * 86_400}[window.granularity]
    return math.ceil(span / per)


@dataclass(frozen=True)
class Scope:
    """Whose events: one broker, or every broker (platform operator only: `broker_id` None)."""

    broker_id: uuid.UUID | None


def scoped(scope: Scope, window: Window, extra: str = "") -> tuple[str, dict[str, Any]]:
    """The WHERE clause every report starts from: the broker (unless platform-wide) and the window."""
    where = ["at >= {start:DateTime64(3, 'UTC')}", "at < {end:DateTime64(3, 'UTC')}"]
    params: dict[str, Any] = {"start": window.start, "end": window.end}
    if scope.broker_id is not None:
        where.insert(0, "broker_id = {broker:UUID}")
        params["broker"] = scope.broker_id
    if extra:
        where.append(extra)
    return " AND ".join(where), params


def bucket_expr(granularity: Granularity) -> str:
    return f"toUnixTimestamp(toDateTime(dateTrunc('{granularity}', at), 'UTC'))"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _latency(count: int, values: list[float]) -> dict[str, float | None]:
    if not count:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = (round(float(v), 3) if not math.isnan(v) else None for v in values)
    return {"p50": p50, "p95": p95, "p99": p99}


async def usage(ch: Runner, scope: Scope, window: Window) -> dict[str, Any]:
    """Calculations by period and endpoint: count, errors, units charged, latency percentiles."""
    where, params = scoped(scope, window, "event_type = 'calculation'")
    q = ", ".join(str(x) for x in QUANTILES)
    rows = await ch.query(
        f"SELECT {bucket_expr(window.granularity)} AS b, endpoint, grouping(b, endpoint) AS g, "
        "countIf(status < 400) AS ok, countIf(status >= 400) AS errors, sum(units) AS units, "
        f"countIf(isNotNull(latency_ms)) AS timed, quantilesExact({q})(assumeNotNull(latency_ms)) AS lat "
        f"FROM usage_metrics FINAL WHERE {where} "
        "GROUP BY GROUPING SETS ((b, endpoint), (b), (endpoint), ())", params)
    zero = {"calculations": 0, "errors": 0, "units": 0, "latencyMs": _latency(0, [])}
    series: dict[int, dict[str, Any]] = {int(at.timestamp()): {"start": iso(at), **zero, "endpoints": {}}
                                         for at in window.buckets()}
    endpoints: dict[str, dict[str, Any]] = {}
    totals: dict[str, Any] = dict(zero)
    for b, endpoint, g, ok, errors, units, timed, lat in rows:
        figures = {"calculations": int(ok), "errors": int(errors), "units": int(units),
                   "latencyMs": _latency(int(timed), list(lat))}
        if g == 0 and int(b) in series:  # (bucket, endpoint)
            series[int(b)]["endpoints"][endpoint] = {k: figures[k] for k in ("calculations", "errors", "units")}
        elif g == 1 and int(b) in series:  # (bucket)
            series[int(b)].update(figures)
        elif g == 2:  # (endpoint)
            endpoints[endpoint] = {"endpoint": endpoint, **figures}
        elif g == 3:
            totals = figures
    return {"totals": totals, "series": list(series.values()),
            "endpoints": sorted(endpoints.values(), key=lambda e: (-e["calculations"], e["endpoint"]))}


async def engagement(ch: Runner, scope: Scope, window: Window) -> dict[str, Any]:
    """Active users per period (and of them, returning ones: seen before the period), widget loads vs
    calculations; DAU, WAU and MAU as of the window's end. A user is a user id (logins, calculations
    with a user token); API-key and anonymous widget traffic has none."""
    where, params = scoped(scope, window)
    broker = "broker_id = {broker:UUID} AND " if scope.broker_id is not None else ""
    rows = await ch.query(
        f"SELECT {bucket_expr(window.granularity)} AS b, "
        "countIf(event_type = 'widget_load') AS loads, "
        "countIf(event_type = 'calculation' AND status < 400) AS calcs "
        f"FROM usage_metrics FINAL WHERE {where} GROUP BY b", params)
    users = await ch.query(
        f"WITH firsts AS (SELECT user_id, min(at) AS first_at FROM usage_metrics FINAL "
        f"WHERE {broker}isNotNull(user_id) AND at < {{end:DateTime64(3, 'UTC')}} GROUP BY user_id) "
        f"SELECT b, uniqExact(user_id), uniqExactIf(user_id, first_at < toDateTime64(b, 3, 'UTC')) FROM ("
        f"SELECT {bucket_expr(window.granularity)} AS b, user_id FROM usage_metrics FINAL "
        f"WHERE {where} AND isNotNull(user_id)) AS a INNER JOIN firsts USING (user_id) GROUP BY b", params)
    active = await ch.query(
        "SELECT uniqExactIf(user_id, at >= {end:DateTime64(3, 'UTC')} - INTERVAL 1 DAY), "
        "uniqExactIf(user_id, at >= {end:DateTime64(3, 'UTC')} - INTERVAL 7 DAY), uniqExact(user_id) "
        f"FROM usage_metrics FINAL WHERE {broker}isNotNull(user_id) "
        "AND at >= {end:DateTime64(3, 'UTC')} - INTERVAL 30 DAY AND at < {end:DateTime64(3, 'UTC')}", params)
    series: dict[int, dict[str, Any]] = {
        int(at.timestamp()): {"start": iso(at), "activeUsers": 0, "returningUsers": 0, "widgetLoads": 0,
                              "calculations": 0} for at in window.buckets()}
    for b, loads, calcs in rows:
        if int(b) in series:
            series[int(b)].update(widgetLoads=int(loads), calculations=int(calcs))
    for b, active_users, returning in users:
        if int(b) in series:
            series[int(b)].update(activeUsers=int(active_users), returningUsers=int(returning))
    dau, wau, mau = active[0] if active else (0, 0, 0)
    return {"dau": int(dau), "wau": int(wau), "mau": int(mau),
            "widgetLoads": sum(s["widgetLoads"] for s in series.values()),
            "calculations": sum(s["calculations"] for s in series.values()),
            "series": list(series.values())}


async def instruments(ch: Runner, scope: Scope, window: Window) -> dict[str, Any]:
    """Top instruments (calculations, average risk %), account currencies, and per period the
    calculations that named an instrument and their average risk %."""
    where, params = scoped(scope, window, "event_type = 'calculation' AND status < 400")
    pairs = await ch.query(
        "SELECT instrument, count(), avgOrNull(risk_pct), sum(units) FROM usage_metrics FINAL "
        f"WHERE {where} AND instrument != '' GROUP BY instrument ORDER BY count() DESC, instrument LIMIT {TOP}",
        params)
    currencies = await ch.query(
        "SELECT account_currency, count() FROM usage_metrics FINAL "
        f"WHERE {where} AND account_currency != '' GROUP BY account_currency "
        f"ORDER BY count() DESC, account_currency LIMIT {TOP}", params)
    rows = await ch.query(
        f"SELECT {bucket_expr(window.granularity)} AS b, countIf(instrument != ''), avgOrNull(risk_pct) "
        f"FROM usage_metrics FINAL WHERE {where} GROUP BY b", params)
    overall = await ch.query(f"SELECT avgOrNull(risk_pct) FROM usage_metrics FINAL WHERE {where}", params)
    series: dict[int, dict[str, Any]] = {
        int(at.timestamp()): {"start": iso(at), "calculations": 0, "averageRiskPercent": None}
              for at in window.buckets()}
    for b, count, risk in rows:
        if int(b) in series:
            series[int(b)].update(calculations=int(count), averageRiskPercent=_round(risk))
    return {"averageRiskPercent": _round(overall[0][0]) if overall else None,
            "pairs": [{"instrument": i, "calculations": int(n), "averageRiskPercent": _round(r), "units": int(u)}
                      for i, n, r, u in pairs],
            "accountCurrencies": [{"currency": c, "calculations": int(n)} for c, n in currencies],
            "series": list(series.values())}


def _round(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 4)


REPORTS = {"usage": usage, "engagement": engagement, "instruments": instruments}
