"""Purge what is past its retention: stored calculations (2 years by default) and audit entries (7 years).

Both run per broker, in batches of `batch` rows, each batch its own short transaction, until a batch comes
back short; a dry run only counts. The clock is the caller's (`now`), so a test or an operator can ask
"what would go on that day".

- Calculations: a batched DELETE on the (broker_id, created_at) index, as the platform role (BYPASSRLS,
  the job crosses tenants). Why not partitions: `calculations` is one plain table, and the recorder's
  `on conflict (id) do nothing` (journal replays) and the lookups by id rely on `id` alone being unique;
  a partitioned table needs the partition key in every unique constraint, and converting a large live
  table means copying every row under a lock, not something a start-up migration should do. At a
  few thousand calculations a second a day's expiry is a few hundred million rows at worst, removed in
  batches that never hold a lock long; partitioning (monthly, dropped whole) is the step after, with an
  online copy.
- Audit entries: the app and platform roles cannot DELETE from the audit log at all; the purge calls the
  owner-run `audit_purge_expired` (migration 20261203_21), which deletes only entries older than 7 years
  and caps the clock at the database's own `now()`, so no caller can purge younger entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text

from app.db.engine import Database
from app.models import Broker

AUDIT_YEARS = 7  # fixed in the database function; stated here for the report

COUNT_CALCULATIONS = text("select count(*) from calculations where broker_id = :b and created_at < :cutoff")
DELETE_CALCULATIONS = text(
    "with doomed as (select id from calculations where broker_id = :b and created_at < :cutoff "
    "order by created_at limit :n) delete from calculations c using doomed where c.id = doomed.id returning 1")
PURGE_AUDIT = text("select audit_purge_expired(:b, :now, :n, :dry)")
CUTOFF = text("select cast(:now as timestamptz) - make_interval(years => :years)")


@dataclass
class Purged:
    cutoff: datetime
    total: int = 0
    per_broker: dict[str, int] = field(default_factory=dict)

    def add(self, broker_id: uuid.UUID, n: int) -> None:
        if n:
            self.total += n
            self.per_broker[str(broker_id)] = self.per_broker.get(str(broker_id), 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "count": self.total, "perBroker": self.per_broker}


async def _brokers(db: Database) -> list[uuid.UUID]:
    async with db.platform() as s:
        return list((await s.execute(select(Broker.id).order_by(Broker.id))).scalars())


async def purge_calculations(db: Database, now: datetime, years: int, dry_run: bool, batch: int) -> Purged:
    async with db.platform() as s:
        cutoff: datetime = (await s.execute(CUTOFF, {"now": now, "years": years})).scalar_one()
    out = Purged(cutoff)
    for broker_id in await _brokers(db):
        params = {"b": broker_id, "cutoff": cutoff, "n": batch}
        while True:
            async with db.platform() as s:
                if dry_run:
                    out.add(broker_id, int((await s.execute(COUNT_CALCULATIONS, params)).scalar_one()))
                    break
                deleted = len((await s.execute(DELETE_CALCULATIONS, params)).all())
                await s.commit()
            out.add(broker_id, deleted)
            if deleted < batch:
                break
    return out


async def purge_audit(db: Database, now: datetime, dry_run: bool, batch: int) -> Purged:
    async with db.platform() as s:
        # The function caps the clock at the database's now(): report the cutoff it uses.
        cutoff: datetime = (await s.execute(text("select least(cast(:now as timestamptz), now()) "
                                                 "- make_interval(years => :years)"),
                                            {"now": now, "years": AUDIT_YEARS})).scalar_one()
    out = Purged(cutoff)
    for broker_id in await _brokers(db):
        while True:
            async with db.platform() as s:
                n = int((await s.execute(PURGE_AUDIT, {"b": broker_id, "now": now, "n": batch, "dry": dry_run}))
                        .scalar_one())
                await s.commit()
            out.add(broker_id, n)
            if dry_run or n < batch:
                break
    return out
