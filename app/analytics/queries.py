"""The three reports, as ClickHouse SQL over `usage_metrics`, shaped into JSON-able dicts.

Every statement is built by `scoped()`, `hourly()`, `active_users()` or `recent_users()`, which always
add the broker filter (a bound UUID parameter, never spliced text); only the platform operator's
cross-broker scope leaves it out. No read uses FINAL: the shipper stores each event once
(app.analytics.shipper), and distinct counts would not change anyway. Counts by period come from the
hourly rollups where whole hours allow, distinct users from the daily users rollup where whole days
allow (app.analytics.clickhouse). Periods are UTC buckets computed here, so a bucket with no events is in the
answer with zeros.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from app.analytics.clickhouse import (
    DAILY_USERS,
    FIRST_SEEN,
    HOURLY,
    HOURLY_ALL,
    HOURLY_SELECT,
    LATENCY_SKETCH,
    TABLE,
)

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


def bucket_expr(granularity: Granularity, column: str = "at") -> str:
    return f"toUnixTimestamp(toDateTime(dateTrunc('{granularity}', {column}), 'UTC'))"


def hour_split(window: Window) -> tuple[datetime, datetime]:
    """(h0, h1): the whole hours [h0, h1) of the window, read from the hourly rollups; the raw events
    cover [start, h0) and [h1, end). A window without a whole hour is read raw: h0 = h1 = end."""
    h0 = truncate(window.start, "hour")
    if h0 < window.start:
        h0 += timedelta(hours=1)
    h1 = truncate(window.end, "hour")
    return (h0, h1) if h0 < h1 else (window.end, window.end)


def hourly(scope: Scope, window: Window, event_types: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """A subquery of rollup rows (event_type, hour, endpoint, ok, errors, units, timed, latency) for the
    window: whole hours from the rollup, the partial hours at either end rolled up from the raw events
    (the same expressions the materialized view uses), so the counts are exact for any from/to."""
    h0, h1 = hour_split(window)
    params: dict[str, Any] = {"start": window.start, "end": window.end, "h0": h0, "h1": h1,
                              "types": list(event_types)}
    broker = ""
    rollup = HOURLY_ALL
    if scope.broker_id is not None:
        broker, rollup = "broker_id = {broker:UUID} AND ", HOURLY
        params["broker"] = scope.broker_id
    sql = (
        "SELECT event_type, hour, endpoint, ok, errors, units, timed, latency "
        f"FROM {rollup} WHERE {broker}event_type IN {{types:Array(String)}} "
        "AND hour >= {h0:DateTime('UTC')} AND hour < {h1:DateTime('UTC')} "
        f"UNION ALL SELECT event_type, {HOURLY_SELECT} FROM {TABLE} "
        f"WHERE {broker}event_type IN {{types:Array(String)}} "
        "AND ((at >= {start:DateTime64(3, 'UTC')} AND at < {h0:DateTime64(3, 'UTC')}) "
        "OR (at >= {h1:DateTime64(3, 'UTC')} AND at < {end:DateTime64(3, 'UTC')})) "
        "GROUP BY event_type, hour, endpoint")
    return sql, params


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _latency(count: int, values: list[float]) -> dict[str, float | None]:
    if not count:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = (round(float(v), 3) if not math.isnan(v) else None for v in values)
    return {"p50": p50, "p95": p95, "p99": p99}


async def usage(ch: Runner, scope: Scope, window: Window) -> dict[str, Any]:
    """Calculations by period and endpoint: count, errors, units charged, latency percentiles (from the
    hourly rollup: exact counts, percentiles within 1 %; see app.analytics.clickhouse.LATENCY_SKETCH)."""
    source, params = hourly(scope, window, ("calculation",))
    merge = LATENCY_SKETCH.replace("(", "Merge(", 1)
    # Two levels: the sketches merged per (period, endpoint) first, then the groupings over those few rows
    # (GROUPING SETS straight on the hourly rows would merge every hour's sketch once per set).
    rows = await ch.query(
        "SELECT b, endpoint, grouping(b, endpoint) AS g, sum(ok), sum(errors), sum(units), sum(timed), "
        f"{merge}(latency) FROM (SELECT {bucket_expr(window.granularity, 'hour')} AS b, endpoint, sum(ok) AS ok, "
        "sum(errors) AS errors, sum(units) AS units, sum(timed) AS timed, "
        f"{merge.replace('(', 'State(', 1)}(latency) AS latency FROM ({source}) GROUP BY b, endpoint) "
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


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """(d0, d1): the whole UTC days [d0, d1) of [start, end), read from the daily users rollup; the raw
    events cover [start, d0) and [d1, end). A span without a whole day is read raw: d0 = d1 = end."""
    d0 = truncate(start, "day")
    if d0 < start:
        d0 += timedelta(days=1)
    d1 = truncate(end, "day")
    return (d0, d1) if d0 < d1 else (end, end)


def active_users(scope: Scope, start: datetime, end: datetime, granularity: Granularity | None,
                 key: str) -> tuple[str, dict[str, Any]]:
    """A subquery of (b, uid) rows: every user with an event in [start, end), at least once per period
    `b` (the bucket of `granularity`; None: one period, b = 0), duplicates allowed (count uniqExact).
    Whole days come from the daily users rollup, the rest (partial days at either end, and every hour
    for hourly periods) from the events. `key` prefixes the parameters, so several spans can share a
    statement."""
    def bucket(column: str) -> str:
        return bucket_expr(granularity, column) if granularity else "toUInt32(0)"

    broker = ""
    params: dict[str, Any] = {f"{key}_start": start, f"{key}_end": end}
    if scope.broker_id is not None:
        broker = "broker_id = {broker:UUID} AND "
        params["broker"] = scope.broker_id
    # (`uid`, not `user_id`: ClickHouse would read an alias user_id in the WHERE clause as the alias.)
    raw = (f"SELECT {bucket('at')} AS b, assumeNotNull(user_id) AS uid FROM {TABLE} "
           f"WHERE {broker}isNotNull(user_id) AND ")
    if granularity == "hour":
        return raw + f"at >= {{{key}_start:DateTime64(3, 'UTC')}} AND at < {{{key}_end:DateTime64(3, 'UTC')}}", params
    d0, d1 = whole_days(start, end)
    params.update({f"{key}_d0": d0, f"{key}_d1": d1, f"{key}_day0": d0.date(), f"{key}_day1": d1.date()})
    sql = (f"SELECT {bucket('day')} AS b, user_id AS uid FROM {DAILY_USERS} "
           f"WHERE {broker}day >= {{{key}_day0:Date}} AND day < {{{key}_day1:Date}} UNION ALL "
           + raw + f"((at >= {{{key}_start:DateTime64(3, 'UTC')}} AND at < {{{key}_d0:DateTime64(3, 'UTC')}}) "
           f"OR (at >= {{{key}_d1:DateTime64(3, 'UTC')}} AND at < {{{key}_end:DateTime64(3, 'UTC')}}))")
    return sql, params


def recent_users(scope: Scope, end: datetime) -> tuple[str, dict[str, Any]]:
    """A subquery of (t, uid) rows: every user with an event in the 30 days before `end`, such that a user
    was active in the last 1 (7) days exactly when one of their rows has t >= end - 1 (7) days: DAU, WAU
    and MAU from one read. Whole days of the 30 come from the daily users rollup (t = the day's start);
    the raw events cover the partial day at each span's start (t = the event's time; that day's rollup
    row, earlier than the span's start, counts for the longer spans only). The partial day at `end` is
    in the last day's span: with `end` not at midnight, that span has no whole day and is read raw."""
    broker = ""
    params: dict[str, Any] = {"end": end}
    if scope.broker_id is not None:
        broker = "broker_id = {broker:UUID} AND "
        params["broker"] = scope.broker_id
    d0, d1 = whole_days(end - timedelta(days=30), end)
    edges = [(end - timedelta(days=days), whole_days(end - timedelta(days=days), end)[0]) for days in (30, 7, 1)]
    for i, (lo, hi) in enumerate(edges):
        params.update({f"lo{i}": lo, f"hi{i}": hi})
    params.update(day0=d0.date(), day1=d1.date())
    pieces = " OR ".join(f"(at >= {{lo{i}:DateTime64(3, 'UTC')}} AND at < {{hi{i}:DateTime64(3, 'UTC')}})"
                         for i in range(len(edges)))
    sql = (f"SELECT toDateTime64(day, 3, 'UTC') AS t, user_id AS uid FROM {DAILY_USERS} "
           f"WHERE {broker}day >= {{day0:Date}} AND day < {{day1:Date}} UNION ALL "
           f"SELECT at AS t, assumeNotNull(user_id) AS uid FROM {TABLE} "
           f"WHERE {broker}isNotNull(user_id) AND ({pieces})")
    return sql, params


async def engagement(ch: Runner, scope: Scope, window: Window) -> dict[str, Any]:
    """Active users per period (and of them, returning ones: first seen before the period began), widget
    loads vs calculations; DAU, WAU and MAU as of the window's end.

    A user is a user id: a person signed in to the broker's account (logins, calculations and other
    actions with a user token). API-key traffic (server-to-server) and widget traffic (anonymous
    visitors of the broker's site; no visitor id exists) have none and are not users: widget traffic
    is in `widgetLoads`. Distinct counts are exact (uniqExact); active users of whole days come from
    the daily users rollup (app.analytics.clickhouse.DAILY_USERS), first events from usage_first_seen."""
    broker = "broker_id = {broker:UUID} AND " if scope.broker_id is not None else ""
    source, hourly_params = hourly(scope, window, ("widget_load", "calculation"))
    rows = await ch.query(
        f"SELECT {bucket_expr(window.granularity, 'hour')} AS b, sumIf(ok + errors, event_type = 'widget_load'), "
        f"sumIf(ok, event_type = 'calculation') FROM ({source}) GROUP BY b", hourly_params)
    # Returning users of a period = its active users - its new ones. A user is new in period b when their
    # first event (usage_first_seen, min over unmerged rows) is at or after b: that first event is then
    # inside the period, so either inside the window (counted from usage_first_seen alone, by the bucket of
    # first_at, no join of every (period, user) pair) or, in the first period only when the window starts
    # after it, between the period's start and the window's (`early`: those active in the window).
    active, params = active_users(scope, window.start, window.end, window.granularity, "w")
    first = truncate(window.start, window.granularity)
    early = "0"
    if first < window.start:
        params.update(first=int(first.timestamp()), first_start=first)
        early = ("uniqExactIf(uid, b = {first:UInt32} AND uid IN ("
                 f"SELECT user_id FROM {FIRST_SEEN} WHERE {broker}1 GROUP BY user_id "
                 "HAVING min(first_at) >= {first_start:DateTime64(3, 'UTC')} "
                 "AND min(first_at) < {w_start:DateTime64(3, 'UTC')}))")
    firsts = f"SELECT min(first_at) AS f FROM {FIRST_SEEN} WHERE {broker}1 GROUP BY user_id"
    users = await ch.query(
        # (Signed: a user deleted from the events but not yet from usage_first_seen must not wrap around.)
        "SELECT a.b, a.n, greatest(toInt64(a.n) - a.early - n.new, 0) FROM ("
        f"SELECT b, uniqExact(uid) AS n, {early} AS early FROM ({active}) GROUP BY b) AS a LEFT JOIN ("
        f"SELECT {bucket_expr(window.granularity, 'f')} AS b, count() AS new FROM ({firsts}) "
        "WHERE f >= {w_start:DateTime64(3, 'UTC')} AND f < {w_end:DateTime64(3, 'UTC')} GROUP BY b) AS n USING (b)",
        params)
    # DAU, WAU, MAU: the users of the day, 7 and 30 days before the window's end.
    recent, recent_params = recent_users(scope, window.end)
    counts = await ch.query(
        "SELECT uniqExactIf(uid, t >= {end:DateTime64(3, 'UTC')} - INTERVAL 1 DAY), "
        "uniqExactIf(uid, t >= {end:DateTime64(3, 'UTC')} - INTERVAL 7 DAY), uniqExact(uid) "
        f"FROM ({recent})", recent_params)
    series: dict[int, dict[str, Any]] = {
        int(at.timestamp()): {"start": iso(at), "activeUsers": 0, "returningUsers": 0, "widgetLoads": 0,
                              "calculations": 0} for at in window.buckets()}
    for b, loads, calcs in rows:
        if int(b) in series:
            series[int(b)].update(widgetLoads=int(loads), calculations=int(calcs))
    for b, active_count, returning in users:
        if int(b) in series:
            series[int(b)].update(activeUsers=int(active_count), returningUsers=int(returning))
    dau, wau, mau = counts[0] if counts else (0, 0, 0)
    return {"dau": int(dau), "wau": int(wau), "mau": int(mau),
            "widgetLoads": sum(s["widgetLoads"] for s in series.values()),
            "calculations": sum(s["calculations"] for s in series.values()),
            "series": list(series.values())}


async def instruments(ch: Runner, scope: Scope, window: Window) -> dict[str, Any]:
    """Top instruments (calculations, average risk %), account currencies, and per period the
    calculations that named an instrument and their average risk %.

    One statement: the answered calculations grouped by (period, instrument, currency) first, then the
    four groupings over that small result (GROUPING SETS straight on the events would copy every event
    once per set)."""
    where, params = scoped(scope, window, "event_type = 'calculation' AND status < 400")
    rows = await ch.query(
        "SELECT b, instrument, account_currency, grouping(b, instrument, account_currency) AS g, sum(n), "
        "sum(named), sum(units), sum(risk_sum), sum(risk_n) FROM ("
        f"SELECT {bucket_expr(window.granularity)} AS b, instrument, account_currency, count() AS n, "
        "countIf(instrument != '') AS named, sum(units) AS units, sum(risk_pct) AS risk_sum, "
        f"count(risk_pct) AS risk_n FROM {TABLE} WHERE {where} GROUP BY b, instrument, account_currency) "
        "GROUP BY GROUPING SETS ((instrument), (account_currency), (b), ())", params)
    series: dict[int, dict[str, Any]] = {
        int(at.timestamp()): {"start": iso(at), "calculations": 0, "averageRiskPercent": None}
        for at in window.buckets()}
    pairs: list[dict[str, Any]] = []
    currencies: list[dict[str, Any]] = []
    overall: float | None = None
    for b, instrument, currency, g, n, named, units, risk_sum, risk_n in rows:
        risk = _round(risk_sum / risk_n) if risk_n else None
        # grouping(): a bit set per argument left out of the row's set (b = 4, instrument = 2, currency = 1)
        if g == 5 and instrument:  # by instrument only
            pairs.append({"instrument": instrument, "calculations": int(n), "averageRiskPercent": risk,
                          "units": int(units)})
        elif g == 6 and currency:  # by account currency only
            currencies.append({"currency": currency, "calculations": int(n)})
        elif g == 3 and int(b) in series:  # by period only
            series[int(b)].update(calculations=int(named), averageRiskPercent=risk)
        elif g == 7:
            overall = risk
    pairs.sort(key=lambda p: (-p["calculations"], p["instrument"]))
    currencies.sort(key=lambda c: (-c["calculations"], c["currency"]))
    return {"averageRiskPercent": overall, "pairs": pairs[:TOP], "accountCurrencies": currencies[:TOP],
            "series": list(series.values())}


def _round(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 4)


REPORTS = {"usage": usage, "engagement": engagement, "instruments": instruments}
