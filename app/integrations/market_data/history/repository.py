"""Stored daily bars (table market_daily_bars) and the range each source has been asked for
(market_history_coverage). Market data, shared by every tenant: plain app-role sessions, no tenant scope."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from app.db.engine import Database
from app.integrations.market_data.history.bars import DailyBar

# One statement per save: the rows travel as arrays (unnest), not as one Bind/Execute each.
UPSERT_BARS = text(
    "insert into market_daily_bars (symbol, day, source, open, high, low, close, fetched_at) "
    "select t.symbol, t.day, t.source, t.open, t.high, t.low, t.close, now() "
    "from unnest(cast(:symbol as text[]), cast(:day as date[]), cast(:source as text[]), "
    "cast(:open as float8[]), cast(:high as float8[]), cast(:low as float8[]), cast(:close as float8[])) "
    "as t(symbol, day, source, open, high, low, close) "
    "on conflict (symbol, source, day) do update set open = excluded.open, high = excluded.high, "
    "low = excluded.low, close = excluded.close, fetched_at = excluded.fetched_at")
# The ranges a save records always touch the stored one (the service fetches what is missing next to it),
# so their union is one range.
UPSERT_COVERAGE = text(
    "insert into market_history_coverage (symbol, source, first_day, last_day, fetched_at) "
    "values (:symbol, :source, :first, :last, now()) "
    "on conflict (symbol, source) do update set "
    "first_day = least(market_history_coverage.first_day, excluded.first_day), "
    "last_day = greatest(market_history_coverage.last_day, excluded.last_day), fetched_at = now()")
COVERAGE = text("select first_day, last_day from market_history_coverage where symbol = :symbol and source = :source")
BARS = text("select day, open, high, low, close from market_daily_bars "
            "where symbol = :symbol and source = :source and day between :start and :end order by day")


class HistoryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def coverage(self, symbol: str, source: str) -> tuple[date, date] | None:
        async with self.db.app_sessions() as s:
            row = (await s.execute(COVERAGE, {"symbol": symbol, "source": source})).first()
        return (row[0], row[1]) if row is not None else None

    async def bars(self, symbol: str, source: str, start: date, end: date) -> list[DailyBar]:
        async with self.db.app_sessions() as s:
            rows = (await s.execute(BARS, {"symbol": symbol, "source": source, "start": start, "end": end})).all()
        return [DailyBar(symbol, r[0], r[1], r[2], r[3], r[4], source) for r in rows]

    async def save(self, symbol: str, source: str, first: date, last: date, bars: list[DailyBar]) -> None:
        """Upsert `bars` and record that [first, last] has been asked of `source` (in one transaction)."""
        async with self.db.app_sessions() as s, s.begin():
            if bars:
                await s.execute(UPSERT_BARS, {
                    "symbol": [b.symbol for b in bars], "day": [b.day for b in bars],
                    "source": [b.source for b in bars], "open": [b.open for b in bars],
                    "high": [b.high for b in bars], "low": [b.low for b in bars],
                    "close": [b.close for b in bars]})
            await s.execute(UPSERT_COVERAGE, {"symbol": symbol, "source": source, "first": first, "last": last})
