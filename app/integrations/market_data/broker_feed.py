"""The broker's own prices, pushed to us (PUT /api/v1/brokers/{brokerId}/quotes), kept in Postgres.

Table `broker_quotes` (migration 0006): one row per (broker, symbol), the latest price; RLS forced, so a
broker's session can neither read nor write another broker's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from app.db.engine import Database
from app.db.errors import database_unreachable
from app.integrations.market_data.quotes import MarketQuote, ProviderUnavailable

MAX_PUSH = 1000

# One statement for the whole push (up to 1,000 rows): arrays unnested server-side. The `where` keeps the
# stored price when the pushed one is older (feeds deliver out of order; the latest price wins, not the
# latest request).
UPSERT = text("""
insert into broker_quotes (broker_id, symbol, bid, ask, mid, quote_time, received_at)
select :broker_id, s, b, a, m, t, now()
from unnest(cast(:symbols as text[]), cast(:bids as float8[]), cast(:asks as float8[]), cast(:mids as float8[]),
            cast(:times as timestamptz[])) as u(s, b, a, m, t)
on conflict (broker_id, symbol) do update
set bid = excluded.bid, ask = excluded.ask, mid = excluded.mid, quote_time = excluded.quote_time,
    received_at = excluded.received_at
where broker_quotes.quote_time <= excluded.quote_time
""")

SELECT = text("""
select symbol, bid, ask, mid, quote_time from broker_quotes
where broker_id = :broker_id and symbol = any(cast(:symbols as text[]))
""")


@dataclass(frozen=True, slots=True)
class PushedQuote:
    symbol: str
    bid: float
    ask: float
    mid: float | None
    time: datetime


class BrokerQuotes:
    """Repository: every statement runs in a tenant session (RLS), the broker id bound from the caller."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(self, broker_id: uuid.UUID, quotes: Sequence[PushedQuote]) -> None:
        if not quotes:
            return
        if len(quotes) > MAX_PUSH:
            raise ValueError(f"at most {MAX_PUSH} quotes per statement")
        async with self.db.tenant(broker_id) as session:
            await session.execute(UPSERT, {
                "broker_id": broker_id, "symbols": [q.symbol for q in quotes], "bids": [q.bid for q in quotes],
                "asks": [q.ask for q in quotes], "mids": [q.mid for q in quotes], "times": [q.time for q in quotes],
            })
            await session.commit()

    async def read(self, broker_id: uuid.UUID, symbols: Sequence[str]) -> list[PushedQuote]:
        async with self.db.tenant(broker_id) as session:
            rows = (await session.execute(SELECT, {"broker_id": broker_id, "symbols": list(symbols)})).all()
        return [PushedQuote(symbol=r.symbol, bid=r.bid, ask=r.ask, mid=r.mid, time=r.quote_time) for r in rows]


class BrokerFeedProvider:
    """Reads the broker's pushed quotes. Not shared: cached per broker, never served to another."""

    name = "broker"
    shared = False

    def __init__(self, repository: BrokerQuotes, freshness_seconds: float = 60.0) -> None:
        self.repository = repository
        self.freshness_seconds = freshness_seconds

    async def fetch(self, symbols: Sequence[str], broker_id: uuid.UUID) -> dict[str, MarketQuote]:
        try:
            rows = await self.repository.read(broker_id, symbols)
        except Exception as exc:
            # Postgres down or restarting: the feed failed like a vendor that cannot be reached (the chain goes
            # on to the next provider; with none left the calculation is a 503 naming this provider), not a
            # bare 503 of the whole service.
            if database_unreachable(exc):
                raise ProviderUnavailable("the broker feed's store (Postgres) cannot be reached") from exc
            raise
        return {row.symbol: to_quote(row) for row in rows}


def to_quote(row: PushedQuote) -> MarketQuote:
    return MarketQuote(symbol=row.symbol, bid=row.bid, ask=row.ask, time=row.time, source="broker",
                       given_mid=row.mid)
