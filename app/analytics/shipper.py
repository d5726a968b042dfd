"""Ships usage events from Postgres (the source of truth) to ClickHouse, exactly once as counted.

Three sources, each with its own watermark in `analytics_cursors`: `calculations` (answered
calculations), `audit_logs` (logins, key and config changes, exports), `usage_events` (the outbox:
widget loads, failed calculations). Nothing is written twice on the request path: the shipper reads
what Postgres already stores.

The watermark is (xid, id), where xid is the transaction that wrote the row (migration
20261203_analytics). A pass reads only rows whose xid is below `upper`, a past value of
`pg_snapshot_xmin(pg_current_snapshot())`: every transaction below it had ended when it was taken,
so no row can still appear below it. Rows are read in (xid, id) order, `batch` at a time, after the
watermark; the watermark moves in Postgres only after ClickHouse took the batch. So:
- ClickHouse down for any length of time: the watermark stays, the rows stay in Postgres; nothing is lost.
- a crash (or a lost answer) between the insert and the watermark update: the same batch is read
  again (same watermark, same `upper`, so the same rows). Before each insert the shipper asks
  ClickHouse which of the batch's event ids it already has (the batch's brokers and time range) and
  sends only the others; an unchanged batch also carries the same insert_deduplication_token, which
  ClickHouse drops. So a row is stored once even when the batch changed in between (a row deleted in
  Postgres), and the reports and the rollups fed by materialized views count it once, without FINAL.
- two shippers at once (several processes on one ClickHouse server): a transaction-scoped advisory
  lock per source lets one of them work, the other skips.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import text

from app.analytics.clickhouse import ClickHouse
from app.db.engine import Database

log = structlog.get_logger(__name__)

AFTER = "(t.xid, t.id) > (cast(:last_xid as xid8), cast(:last_id as uuid)) and t.xid < cast(:upper as xid8)"
# A user erased (GDPR) before their rows ship goes to ClickHouse without their id: the erasure's
# forget_user can only delete what ClickHouse already held, and the shipper reads behind a snapshot.
USER = "case when u.erased_at is null then t.user_id end as user_id"
ERASED = "left join users u on u.id = t.user_id"
SOURCES: dict[str, str] = {
    "calculations": (
        f"select t.xid, t.id, t.created_at, t.broker_id, {USER}, t.api_key_id, t.kind, t.instrument, "
        f"t.account_currency, t.risk_pct, t.latency_ms, t.units from calculations t {ERASED} where {AFTER} "
        "order by t.xid, t.id limit :n"),
    "audit_logs": (
        "select t.xid, t.id, t.created_at, t.broker_id, t.actor_type, "
        "case when u.erased_at is null then t.actor_id end as actor_id, t.action, t.target_type "
        "from audit_logs t left join users u on t.actor_type = 'user' and u.id::text = t.actor_id::text "
        f"where {AFTER} order by t.xid, t.id limit :n"),
    "usage_events": (
        f"select t.xid, t.id, t.created_at, t.broker_id, {USER}, t.api_key_id, t.event_type, t.endpoint, "
        "t.instrument, t.account_currency, t.risk_pct, t.status, t.latency_ms, t.units "
        f"from usage_events t {ERASED} where {AFTER} order by t.xid, t.id limit :n"),
}
LOGIN_FAILED = {"auth.login_failed", "auth.login_locked", "auth.sso_failed", "auth.exchange_failed",
                "auth.mfa_failed", "auth.refresh_reuse_detected", "auth.exchange_replay"}
LOGIN = {"auth.login", "auth.sso_login", "auth.exchange"}


def audit_event_type(action: str) -> tuple[str, int]:
    """The event type (and status) of an audit action: logins, key changes, config changes, exports."""
    if action in LOGIN:
        return "login", 200
    if action in LOGIN_FAILED:
        return "login", 401
    if action.startswith("api_key."):
        return "key_change", 200
    if action in {"broker.config_updated", "broker.tier_changed"} or action.startswith("sso.config"):
        return "config_change", 200
    if "export" in action:
        return "export", 200
    return "audit", 200


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def to_metric(source: str, row: Any) -> list[Any]:
    """A Postgres row as a usage_metrics row (clickhouse.COLUMNS order)."""
    if source == "calculations":
        _, rid, at, broker, user, key, kind, instrument, currency, risk, latency, units = row
        return [rid, source, at, broker, user, key, "calculation", "", kind, instrument or "", currency or "",
                risk, 200, latency, units]
    if source == "audit_logs":
        _, rid, at, broker, actor_type, actor_id, action, target_type = row
        event_type, status = audit_event_type(action)
        user = _uuid(actor_id) if actor_type == "user" else None
        key = _uuid(actor_id) if actor_type == "api_key" else None
        return [rid, source, at, broker, user, key, event_type, action, target_type or "", "", "", None, status,
                None, 0]
    _, rid, at, broker, user, key, event_type, endpoint, instrument, currency, risk, status, latency, units = row
    return [rid, source, at, broker, user, key, event_type, "", endpoint or "", instrument or "", currency or "",
            risk, status or 0, latency, units]


def batch_token(source: str, rows: Sequence[Any]) -> str:
    """Deterministic for a batch: the same rows after the same watermark give the same token."""
    first, last = rows[0], rows[-1]
    key = f"{source}:{first[0]}:{first[1]}:{last[0]}:{last[1]}:{len(rows)}"
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Shipper:
    db: Database
    clickhouse: ClickHouse
    batch: int = 50_000

    async def ship_once(self, source: str) -> int:
        """One batch of one source. Returns the rows shipped; 0 when there is nothing (yet) to ship."""
        async with self.db.platform() as session:
            lock = await session.scalar(text("select pg_try_advisory_xact_lock(hashtext(:k))"),
                                        {"k": f"analytics-ship:{source}"})
            if not lock:
                return 0  # another shipper works on this source now
            cursor = (await session.execute(text(
                "select upper_xid, last_xid, last_id from analytics_cursors where source = :s"),
                {"s": source})).one()
            upper, last_xid, last_id = cursor
            rows = (await session.execute(text(SOURCES[source]), {
                "last_xid": last_xid, "last_id": last_id, "upper": upper, "n": self.batch})).all()
            if not rows:
                # Caught up to `upper`: move it to the oldest running transaction, in a commit of its own,
                # so the batch read next is the same whether or not this process crashes after reading it.
                horizon = await session.scalar(text("select pg_snapshot_xmin(pg_current_snapshot())"))
                if horizon == upper:
                    return 0
                await session.execute(text("update analytics_cursors set upper_xid = cast(:u as xid8), "
                                           "updated_at = now() where source = :s"), {"u": horizon, "s": source})
                await session.commit()
                return 0
            metrics = [to_metric(source, r) for r in rows]
            # A batch read again after a crash or a lost answer may differ from the one sent (a row deleted
            # in between): the token would not match, so send only what ClickHouse does not have yet.
            # One small query per batch (the batch's brokers and time range, on the sort key).
            stored = await self.clickhouse.stored_ids(source, sorted({m[3] for m in metrics}),
                                                      min(m[2] for m in metrics), max(m[2] for m in metrics))
            fresh = [m for m in metrics if m[0] not in stored]
            if len(fresh) == len(metrics):
                await self.clickhouse.insert(metrics, batch_token(source, rows))
            elif fresh:
                await self.clickhouse.insert(fresh, batch_token(source, [(m[0], m[0]) for m in fresh]))
            await session.execute(text(
                "update analytics_cursors set last_xid = cast(:x as xid8), last_id = :i, shipped = shipped + :n, "
                "updated_at = now() where source = :s"),
                {"x": rows[-1][0], "i": rows[-1][1], "n": len(rows), "s": source})
            await session.commit()
            return len(rows)

    async def ship(self, max_batches: int = 100) -> int:
        """Everything committed so far, source by source (bounded per call, so one call never runs for ever)."""
        total = 0
        for source in SOURCES:
            moved_upper = False
            for _ in range(max_batches):
                shipped = await self.ship_once(source)
                total += shipped
                if shipped:
                    continue
                if moved_upper:
                    break
                moved_upper = True  # a pass that found nothing may have moved `upper`: read once more
        return total

    async def lag(self) -> dict[str, Any]:
        async with self.db.platform() as session:
            rows = (await session.execute(text(
                "select source, shipped, updated_at from analytics_cursors order by source"))).all()
        return {r[0]: {"shipped": int(r[1]), "updatedAt": r[2].isoformat() if isinstance(r[2], datetime) else None}
                for r in rows}
