"""Alert rules and alerts in Postgres (migration 17c_alerts); tenant sessions only (RLS)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

RULE_COLUMNS = "id, kind, threshold, clear_threshold, confidence, description, enabled, created_at, updated_at"
ALERT_COLUMNS = ("a.id, a.rule_id, r.kind, a.trader_id, a.subject, a.status, a.value, a.threshold, a.triggered_at, "
                 "a.cleared_at, a.evidence, a.cleared_evidence")


async def insert_rule(session: AsyncSession, broker_id: uuid.UUID, rule_id: uuid.UUID, values: dict[str, Any],
                      now: datetime) -> None:
    await session.execute(text(
        "insert into alert_rules (id, broker_id, kind, threshold, clear_threshold, confidence, description, enabled, "
        "created_at, updated_at) values (:id, :b, :kind, :threshold, :clear_threshold, :confidence, :description, "
        ":enabled, :now, :now)"), {"id": rule_id, "b": broker_id, "now": now, **values})


async def rules(session: AsyncSession, rule_id: uuid.UUID | None = None, enabled_only: bool = False) -> list[Row[Any]]:
    where = []
    if rule_id is not None:
        where.append("id = :id")
    if enabled_only:
        where.append("enabled")
    clause = f"where {' and '.join(where)}" if where else ""
    found = await session.execute(text(f"select {RULE_COLUMNS} from alert_rules {clause} order by created_at, id"),
                                  {"id": rule_id})
    return list(found.all())


async def update_rule(session: AsyncSession, rule_id: uuid.UUID, values: dict[str, Any]) -> bool:
    sets = ", ".join(f"{k} = :{k}" for k in values)
    found = await session.execute(text(f"update alert_rules set {sets} where id = :id returning id"),
                                  {**values, "id": rule_id})
    return found.first() is not None


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID) -> bool:
    found = await session.execute(text("delete from alert_rules where id = :id returning id"), {"id": rule_id})
    return found.first() is not None


async def active(session: AsyncSession, trader_id: str) -> list[Row[Any]]:
    found = await session.execute(text(
        f"select {ALERT_COLUMNS} from alerts a join alert_rules r on r.id = a.rule_id "
        "where a.trader_id = :t and a.status = 'active' for update of a"), {"t": trader_id})
    return list(found.all())


async def fire(session: AsyncSession, broker_id: uuid.UUID, alert_id: uuid.UUID, rule_id: uuid.UUID, trader_id: str,
               subject: str, value: float, threshold: float, at: datetime, evidence: str) -> bool:
    """The alert, unless one is active for the same rule, trader and subject (then nothing: it fired already)."""
    found = await session.execute(text(
        "insert into alerts (id, broker_id, rule_id, trader_id, subject, status, value, threshold, triggered_at, "
        "evidence) values (:id, :b, :r, :t, :s, 'active', :v, :th, :at, cast(:e as jsonb)) "
        "on conflict (rule_id, trader_id, subject) where status = 'active' do nothing returning id"),
        {"id": alert_id, "b": broker_id, "r": rule_id, "t": trader_id, "s": subject, "v": value, "th": threshold,
         "at": at, "e": evidence})
    return found.first() is not None


async def clear(session: AsyncSession, alert_id: uuid.UUID, at: datetime, evidence: str) -> bool:
    found = await session.execute(text(
        "update alerts set status = 'cleared', cleared_at = :at, cleared_evidence = cast(:e as jsonb) "
        "where id = :id and status = 'active' returning id"), {"id": alert_id, "at": at, "e": evidence})
    return found.first() is not None


async def alerts(session: AsyncSession, alert_id: uuid.UUID | None = None, status: str | None = None,
                 trader_id: str | None = None, limit: int = 100) -> list[Row[Any]]:
    where, params = [], {"n": limit, "id": alert_id, "s": status, "t": trader_id}
    for cond, value in (("a.id = :id", alert_id), ("a.status = :s", status), ("a.trader_id = :t", trader_id)):
        if value is not None:
            where.append(cond)
    clause = f"where {' and '.join(where)}" if where else ""
    found = await session.execute(text(f"select {ALERT_COLUMNS} from alerts a join alert_rules r on r.id = a.rule_id "
                                       f"{clause} order by a.triggered_at desc, a.id limit :n"), params)
    return list(found.all())
