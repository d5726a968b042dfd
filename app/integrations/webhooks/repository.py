"""Endpoints, deliveries and attempts in Postgres (migration 17b_webhooks); every statement in a tenant
session (RLS), the broker id bound from the caller."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

ENDPOINT_COLUMNS = ("id, url, description, event_types, secret_enc, previous_secret_enc, previous_valid_until, "
                    "enabled, disabled_reason, disabled_at, last_success_at, created_at, updated_at")
DELIVERY_COLUMNS = ("id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, "
                    "last_status_code, last_latency_ms, last_error, redelivery_of, created_at, delivered_at")


async def insert_endpoint(session: AsyncSession, broker_id: uuid.UUID, endpoint_id: uuid.UUID, url: str,
                          description: str | None, event_types: list[str], secret_enc: str, now: datetime) -> None:
    await session.execute(text(
        "insert into webhook_endpoints (id, broker_id, url, description, event_types, secret_enc, created_at, "
        "updated_at) values (:id, :b, :url, :d, :types, :enc, :now, :now)"),
        {"id": endpoint_id, "b": broker_id, "url": url, "d": description, "types": event_types, "enc": secret_enc,
         "now": now})


async def endpoints(session: AsyncSession, endpoint_id: uuid.UUID | None = None) -> list[Row[Any]]:
    where = "where id = :id" if endpoint_id is not None else ""
    found = await session.execute(text(f"select {ENDPOINT_COLUMNS} from webhook_endpoints {where} "
                                       "order by created_at, id"), {"id": endpoint_id})
    return list(found.all())


async def subscribed(session: AsyncSession, event_type: str) -> list[Row[Any]]:
    found = await session.execute(text(f"select {ENDPOINT_COLUMNS} from webhook_endpoints "
                                       "where enabled and :t = any(event_types) order by created_at, id"),
                                  {"t": event_type})
    return list(found.all())


async def update_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, values: dict[str, Any]) -> bool:
    sets = ", ".join(f"{k} = :{k}" for k in values)
    found = await session.execute(text(f"update webhook_endpoints set {sets} where id = :id returning id"),
                                  {**values, "id": endpoint_id})
    return found.first() is not None


async def delete_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> bool:
    found = await session.execute(text("delete from webhook_endpoints where id = :id returning id"),
                                  {"id": endpoint_id})
    return found.first() is not None


async def insert_delivery(session: AsyncSession, broker_id: uuid.UUID, delivery_id: uuid.UUID,
                          endpoint_id: uuid.UUID, message_id: str, event_type: str, payload: str, now: datetime,
                          redelivery_of: uuid.UUID | None = None) -> None:
    await session.execute(text(
        "insert into webhook_deliveries (id, broker_id, endpoint_id, message_id, event_type, payload, status, "
        "attempts, next_attempt_at, created_at, redelivery_of) values (:id, :b, :e, :m, :t, :p, 'pending', 0, :now, "
        ":now, :r)"),
        {"id": delivery_id, "b": broker_id, "e": endpoint_id, "m": message_id, "t": event_type, "p": payload,
         "now": now, "r": redelivery_of})


async def delivery(session: AsyncSession, delivery_id: uuid.UUID, endpoint_id: uuid.UUID | None = None) -> \
        Row[Any] | None:
    where = " and endpoint_id = :e" if endpoint_id is not None else ""
    found = await session.execute(text(f"select {DELIVERY_COLUMNS} from webhook_deliveries where id = :id{where}"),
                                  {"id": delivery_id, "e": endpoint_id})
    return found.one_or_none()


async def deliveries(session: AsyncSession, endpoint_id: uuid.UUID, limit: int, status: str | None) -> list[Row[Any]]:
    where = " and status = :s" if status else ""
    found = await session.execute(text(f"select {DELIVERY_COLUMNS} from webhook_deliveries where endpoint_id = :e"
                                       f"{where} order by created_at desc, id limit :n"),
                                  {"e": endpoint_id, "s": status, "n": limit})
    return list(found.all())


async def attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[Row[Any]]:
    found = await session.execute(text("select attempt, attempted_at, status_code, latency_ms, error "
                                       "from webhook_attempts where delivery_id = :d order by attempt"),
                                  {"d": delivery_id})
    return list(found.all())


async def record_attempt(session: AsyncSession, broker_id: uuid.UUID, delivery_id: uuid.UUID, attempt: int,
                         at: datetime, status_code: int | None, latency_ms: float, error: str | None,
                         status: str, next_at: datetime | None) -> bool:
    """The attempt's outcome, only if it is still the delivery's next attempt (a rerun of a job that already
    recorded it changes nothing)."""
    found = await session.execute(text(
        "update webhook_deliveries set attempts = :n, status = :s, next_attempt_at = :next, "
        "last_status_code = :code, last_latency_ms = :ms, last_error = :err, "
        "delivered_at = case when :s = 'delivered' then cast(:at as timestamptz) else delivered_at end "
        "where id = :id and attempts = :n - 1 and status = 'pending' returning id"),
        {"id": delivery_id, "n": attempt, "s": status, "next": next_at, "code": status_code, "ms": latency_ms,
         "err": error, "at": at})
    if found.first() is None:
        return False
    await session.execute(text(
        "insert into webhook_attempts (broker_id, delivery_id, attempt, attempted_at, status_code, latency_ms, error) "
        "values (:b, :d, :n, :at, :code, :ms, :err)"),
        {"b": broker_id, "d": delivery_id, "n": attempt, "at": at, "code": status_code, "ms": latency_ms,
         "err": error})
    return True


async def first_attempt_at(session: AsyncSession, delivery_id: uuid.UUID) -> datetime | None:
    found = await session.scalar(text("select attempted_at from webhook_attempts where delivery_id = :d and "
                                      "attempt = 1"), {"d": delivery_id})
    return found  # type: ignore[no-any-return]
