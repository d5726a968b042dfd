"""Account state and the inbound message and event ids, in Postgres (migration 17a_platform_events).

Every statement runs in a tenant session (RLS). Applying an event is order-independent, so events that
arrive out of order end in the same state as in order:
- an account keeps the figures of its newest `account.updated` (by event time);
- a position keeps the fields of its newest `position.opened` (a later one with the same id is a change of
  stop or take-profit); `position.closed` is final: an `opened` that arrives after it (older) changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.platform_events.schemas import AccountUpdated, MarginCall, PositionClosed, PositionEvent

SECRET_READ = text("select secret_enc, previous_secret_enc, previous_valid_until, rotated_at "
                   "from platform_event_secrets where broker_id = :b")
SECRET_ROTATE = text("""
insert into platform_event_secrets (broker_id, secret_enc, rotated_at) values (:b, :enc, :now)
on conflict (broker_id) do update
set previous_secret_enc = platform_event_secrets.secret_enc, previous_valid_until = :until,
    secret_enc = excluded.secret_enc, rotated_at = excluded.rotated_at
""")
MESSAGE_SEEN = text("""
insert into platform_messages (broker_id, message_id, received_at, events) values (:b, :m, :now, :n)
on conflict do nothing returning message_id
""")
EVENT_SEEN = text("""
insert into platform_events (broker_id, event_id, type, trader_id, occurred_at, received_at, data)
values (:b, :id, :type, :trader, :at, :now, cast(:data as jsonb))
on conflict do nothing returning event_id
""")
MESSAGE_TRADERS = text("update platform_messages set traders = :t where broker_id = :b and message_id = :m")
MESSAGE_EVALUATED = text("update platform_messages set evaluated_at = :now "
                         "where broker_id = :b and message_id = :m and evaluated_at is null")
# Platform session (cross-tenant): the messages whose traders' alert rules were never evaluated.
UNEVALUATED = text("""
select broker_id, message_id, traders from platform_messages
where evaluated_at is null and cardinality(traders) > 0 and received_at <= :before and received_at > :since
order by received_at limit :n
""")
# Platform session: message ids past the replay window. One kept for a sweep (its traders never evaluated) goes
# only once the sweep has given up on it (`:hard`).
PRUNE_MESSAGES = text("""
with doomed as (
    select broker_id, message_id from platform_messages
    where received_at < :cutoff
      and (evaluated_at is not null or cardinality(traders) = 0 or received_at < :hard)
    limit :n)
delete from platform_messages m using doomed
where m.broker_id = doomed.broker_id and m.message_id = doomed.message_id returning 1
""")
ACCOUNT_EXISTS = text("insert into trading_accounts (broker_id, trader_id) values (:b, :t) on conflict do nothing")
ACCOUNT_UPDATE = text("""
insert into trading_accounts (broker_id, trader_id, currency, balance, equity, free_margin, margin, updated_at)
values (:b, :t, :currency, :balance, :equity, :free_margin, :margin, :at)
on conflict (broker_id, trader_id) do update
set currency = excluded.currency, balance = excluded.balance, equity = excluded.equity,
    free_margin = excluded.free_margin, margin = excluded.margin, updated_at = excluded.updated_at
where trading_accounts.updated_at is null or trading_accounts.updated_at < excluded.updated_at
""")
MARGIN_CALL = text("""
insert into trading_accounts (broker_id, trader_id, margin_call_at, margin_call_level) values (:b, :t, :at, :level)
on conflict (broker_id, trader_id) do update
set margin_call_at = excluded.margin_call_at, margin_call_level = excluded.margin_call_level
where trading_accounts.margin_call_at is null or trading_accounts.margin_call_at < excluded.margin_call_at
""")
POSITION_OPENED = text("""
insert into account_positions (broker_id, trader_id, position_id, symbol, side, lots, open_price, stop_loss,
                               take_profit, status, event_at, opened_at)
values (:b, :t, :p, :symbol, :side, :lots, :open_price, :stop_loss, :take_profit, 'open', :at, :at)
on conflict (broker_id, trader_id, position_id) do update
set symbol = excluded.symbol, side = excluded.side, lots = excluded.lots, open_price = excluded.open_price,
    stop_loss = excluded.stop_loss, take_profit = excluded.take_profit, event_at = excluded.event_at,
    opened_at = least(account_positions.opened_at, excluded.opened_at)
where account_positions.status = 'open' and account_positions.event_at < excluded.event_at
""")
POSITION_CLOSED = text("""
insert into account_positions (broker_id, trader_id, position_id, symbol, side, lots, open_price, stop_loss,
                               take_profit, status, event_at, closed_at)
values (:b, :t, :p, :symbol, :side, :lots, :open_price, :stop_loss, :take_profit, 'closed', :at, :at)
on conflict (broker_id, trader_id, position_id) do update
set status = 'closed', closed_at = excluded.closed_at,
    event_at = greatest(account_positions.event_at, excluded.event_at)
where account_positions.status = 'open'
""")
ACCOUNT_READ = text("select trader_id, currency, balance, equity, free_margin, margin, updated_at, margin_call_at, "
                    "margin_call_level from trading_accounts where broker_id = :b and trader_id = :t")
POSITIONS_READ = text("select position_id, symbol, side, lots, open_price, stop_loss, take_profit, opened_at, event_at "
                      "from account_positions where broker_id = :b and trader_id = :t and status = 'open' "
                      "order by opened_at nulls last, position_id")


@dataclass(frozen=True, slots=True)
class StoredSecret:
    secret_enc: str
    previous_secret_enc: str | None
    previous_valid_until: datetime | None
    rotated_at: datetime


@dataclass(frozen=True, slots=True)
class Position:
    position_id: str
    symbol: str
    side: str
    lots: float
    open_price: float
    stop_loss: float | None
    take_profit: float | None
    opened_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    trader_id: str
    currency: str | None
    balance: float | None
    equity: float | None
    free_margin: float | None
    margin: float | None
    updated_at: datetime | None
    margin_call_at: datetime | None
    margin_call_level: float | None
    positions: list[Position]


async def read_secret(session: AsyncSession, broker_id: uuid.UUID) -> StoredSecret | None:
    row = (await session.execute(SECRET_READ, {"b": broker_id})).one_or_none()
    return None if row is None else StoredSecret(row.secret_enc, row.previous_secret_enc, row.previous_valid_until,
                                                 row.rotated_at)


async def rotate_secret(session: AsyncSession, broker_id: uuid.UUID, secret_enc: str, now: datetime,
                        previous_until: datetime) -> None:
    await session.execute(SECRET_ROTATE, {"b": broker_id, "enc": secret_enc, "now": now, "until": previous_until})


async def first_sight_of_message(session: AsyncSession, broker_id: uuid.UUID, message_id: str, now: datetime,
                                 events: int) -> bool:
    """Records the message id; False when it was recorded before (a replay). Concurrent copies serialise on
    the primary key: the second waits for the first's commit, then sees the row."""
    found = await session.execute(MESSAGE_SEEN, {"b": broker_id, "m": message_id, "now": now, "n": events})
    return found.first() is not None


async def message_traders(session: AsyncSession, broker_id: uuid.UUID, message_id: str,
                          traders: list[str]) -> None:
    await session.execute(MESSAGE_TRADERS, {"b": broker_id, "m": message_id, "t": traders})


async def message_evaluated(session: AsyncSession, broker_id: uuid.UUID, message_id: str, now: datetime) -> None:
    await session.execute(MESSAGE_EVALUATED, {"b": broker_id, "m": message_id, "now": now})


async def unevaluated(session: AsyncSession, before: datetime, since: datetime,
                      limit: int) -> list[tuple[uuid.UUID, str, list[str]]]:
    found = await session.execute(UNEVALUATED, {"before": before, "since": since, "n": limit})
    return [(r.broker_id, r.message_id, list(r.traders)) for r in found]


async def prune_messages(session: AsyncSession, cutoff: datetime, hard: datetime, limit: int) -> int:
    return len((await session.execute(PRUNE_MESSAGES, {"cutoff": cutoff, "hard": hard, "n": limit})).all())


async def first_sight_of_event(session: AsyncSession, broker_id: uuid.UUID, event_id: str, type_: str,
                               trader_id: str, at: datetime, now: datetime, data: str) -> bool:
    found = await session.execute(EVENT_SEEN, {"b": broker_id, "id": event_id, "type": type_, "trader": trader_id,
                                               "at": at, "now": now, "data": data})
    return found.first() is not None


async def apply(session: AsyncSession, broker_id: uuid.UUID, at: datetime,
                data: AccountUpdated | PositionEvent | MarginCall) -> bool:
    """Applies the event; False when the state already holds a newer one (an older account update or position
    change arriving late, a close of a closed position): nothing changed, by design."""
    b, t = broker_id, data.trader_id
    if isinstance(data, AccountUpdated):
        margin = data.margin if data.margin is not None else max(data.equity - data.free_margin, 0.0)
        done = await session.execute(ACCOUNT_UPDATE, {"b": b, "t": t, "currency": data.currency,
                                                      "balance": data.balance, "equity": data.equity,
                                                      "free_margin": data.free_margin, "margin": margin, "at": at})
    elif isinstance(data, MarginCall):
        done = await session.execute(MARGIN_CALL, {"b": b, "t": t, "at": at, "level": data.margin_level})
    else:
        await session.execute(ACCOUNT_EXISTS, {"b": b, "t": t})
        params: dict[str, Any] = {"b": b, "t": t, "p": data.position_id, "symbol": data.symbol,
                                  "side": data.direction, "lots": data.lots, "open_price": data.open_price,
                                  "stop_loss": data.stop_loss, "take_profit": data.take_profit, "at": at}
        done = await session.execute(POSITION_CLOSED if isinstance(data, PositionClosed) else POSITION_OPENED,
                                     params)
    # An insert ... on conflict do update ... where: one row when inserted or updated, none when the where held it.
    return bool(done.rowcount)  # type: ignore[attr-defined]


async def read_account(session: AsyncSession, broker_id: uuid.UUID, trader_id: str) -> Account | None:
    row = (await session.execute(ACCOUNT_READ, {"b": broker_id, "t": trader_id})).one_or_none()
    if row is None:
        return None
    rows = (await session.execute(POSITIONS_READ, {"b": broker_id, "t": trader_id})).all()
    positions = [Position(r.position_id, r.symbol, r.side, r.lots, r.open_price, r.stop_loss, r.take_profit,
                          r.opened_at, r.event_at) for r in rows]
    return Account(row.trader_id, row.currency, row.balance, row.equity, row.free_margin, row.margin, row.updated_at,
                   row.margin_call_at, row.margin_call_level, positions)
