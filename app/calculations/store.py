"""Stored calculations: recorded off the response path, written in batches per tenant.

A calculation's response never waits for the database: the route appends (principal, kind, raw
body, the response bytes) to an in-memory buffer; a background task inserts them every `interval`
seconds in one transaction per broker (under that broker's RLS scope). The worker does no JSON work
for it: the request body (already valid JSON, it passed validation) and the response bytes go to
Postgres as text, kept as json (checked, not converted to jsonb: migration 0005), all rows of a flush
in one statement. (COPY would be faster still, but Postgres refuses COPY FROM into tables with
row-level security.) `inputHash` is the SHA-256 of
the request body as sent. Reads flush first, so a client that reads its calculation right after
computing it finds it. A row Postgres refuses (a value it cannot store, a broker deleted meanwhile)
is logged and dropped instead of blocking its broker's queue.

When Postgres cannot be reached, nothing waits in memory: the rows of the failed flush, and every
calculation recorded until Postgres answers again, go to a durable local journal
(app.calculations.journal, a file per worker under `data_dir/journal/`), so a worker that crashes
during the outage loses nothing; the next worker to start adopts its journal. Each tick then probes
Postgres and, once it answers, stores the journal (`on conflict do nothing`: replays are harmless)
and empties it. `waiting` counts everything not yet stored: buffered, being inserted, journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import text, update

from app.auth.principal import Principal
from app.calculations.journal import NO_USAGE, Journal, Row, Usage
from app.db.engine import Database
from app.db.errors import database_unreachable
from app.models import ApiKey

log = structlog.get_logger(__name__)
MAX_STORED_INPUT = 1_000_000  # bytes; larger bodies are stored as a digest
# A batch's items are the client's own data and can be megabytes per request; checking them as json
# at batch rates costs Postgres more than the batch costs us, so a batch keeps its digest and counts.
MAX_STORED_BATCH_INPUT = 64_000
# One statement per flush and broker: the rows travel as arrays (unnest), not as one Bind/Execute each.
INSERT = ("insert into calculations (id, broker_id, user_id, api_key_id, kind, input, result, input_hash, created_at, "
          "units, latency_ms, instrument, account_currency, risk_pct) "
          "select id, broker_id, user_id, api_key_id, kind, input::json, result::json, input_hash, created_at, "
          "units, latency_ms, instrument, account_currency, risk_pct "
          "from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], "
          "$8::text[], $9::timestamptz[], $10::int[], $11::real[], $12::text[], $13::text[], $14::float8[]) "
          "as t(id, broker_id, user_id, api_key_id, kind, input, result, input_hash, created_at, units, latency_ms, "
          "instrument, account_currency, risk_pct) on conflict (id) do nothing")
CHUNK = 5_000  # rows per insert when a journal is stored


@dataclass(frozen=True)
class Pending:
    id: uuid.UUID
    broker_id: uuid.UUID
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    kind: str
    body: bytes
    result: dict[str, Any] | bytes
    at: datetime
    usage: Usage


class CalculationRecorder:
    def __init__(self, db: Database, key_usage: dict[uuid.UUID, tuple[datetime, str | None]], journal_dir: Path,
                 interval: float = 0.25, max_buffer: int = 100_000) -> None:
        self.db = db
        self.key_usage = key_usage
        self.interval = interval
        self.max_buffer = max_buffer
        self.buffer: list[Pending] = []
        self.journal = Journal(journal_dir)
        self.down = False  # the last flush found Postgres unreachable: record straight to the journal
        self.in_flight = 0  # rows taken from the buffer by the flush that runs now
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def waiting(self) -> int:
        """Calculations recorded and not yet stored: buffered, being inserted, or journaled."""
        return len(self.buffer) + self.in_flight + self.journal.rows

    def record(self, principal: Principal, kind: str, body: bytes, result: dict[str, Any],
               payload: bytes | None = None, usage: Usage = NO_USAGE) -> None:
        calc_id = result.get("calculationId")
        if not calc_id:
            return
        pending = Pending(uuid.UUID(str(calc_id)), principal.broker_id, principal.user_id, principal.api_key_id,
                          kind, body, payload if payload is not None else result, datetime.now(UTC), usage)
        if self.down:
            self.journal.append([self._row(pending)])
            return
        if len(self.buffer) >= self.max_buffer:
            self.buffer.pop(0)
            self.dropped += 1
        self.buffer.append(pending)

    def start(self) -> None:
        """Open this worker's journal (adopting those of workers that died) and start the flush loop."""
        self.journal.open()
        self._task = asyncio.create_task(self._loop(), name="calculation-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        self.journal.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # keep recording; nothing is lost (buffered or journaled)
                log.exception("calculation_store_flush_failed", waiting=self.waiting)

    @staticmethod
    def _row(p: Pending) -> Row:
        digest = hashlib.sha256(p.body).hexdigest()
        if len(p.body) > (MAX_STORED_BATCH_INPUT if p.kind == "batch" else MAX_STORED_INPUT):
            stored = orjson.dumps({"truncated": True, "bytes": len(p.body), "sha256": digest}).decode()
        else:
            stored = p.body.decode("utf-8", "replace")
        result = p.result if isinstance(p.result, bytes) else orjson.dumps(p.result, option=orjson.OPT_SERIALIZE_NUMPY)
        return (p.id, p.broker_id, p.user_id, p.api_key_id, p.kind, stored, result.decode(), digest, p.at, p.usage)

    async def _insert(self, broker_id: uuid.UUID, rows: list[Row]) -> None:
        async with self.db.tenant(broker_id) as session:
            conn = await session.connection()  # begins the transaction: the tenant is set for it
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            columns = [list(column) for column in zip(*(row[:9] for row in rows), strict=True)]
            columns += [list(column) for column in zip(*(row[9] for row in rows), strict=True)]
            await driver.execute(INSERT, *columns)
            await session.commit()

    async def _reachable(self) -> bool:
        try:
            async with self.db.app_engine.connect() as conn:
                await conn.execute(text("select 1"))
        except Exception as exc:
            if database_unreachable(exc):
                return False
            raise
        return True

    async def _one_by_one(self, broker_id: uuid.UUID, rows: list[Row]) -> bool:
        """A batch Postgres refused as data: store what it accepts, drop (and log) what it never will.
        False: the database went away meanwhile."""
        for row in rows:
            try:
                await self._insert(broker_id, [row])
            except Exception as exc:
                if database_unreachable(exc):
                    return False
                self.dropped += 1
                log.error("calculation_store_rejected", calculation_id=str(row[0]), error=str(exc))
        return True

    async def _store(self, rows: list[Row]) -> bool:
        """Insert rows, per broker under its RLS scope. False: Postgres is unreachable (some rows may be
        stored already; a replay of them is a no-op)."""
        by_broker: dict[uuid.UUID, list[Row]] = defaultdict(list)
        for row in rows:
            by_broker[row[1]].append(row)
        for broker_id, items in by_broker.items():
            for at in range(0, len(items), CHUNK):
                chunk = items[at:at + CHUNK]
                try:
                    await self._insert(broker_id, chunk)
                except Exception as exc:
                    if database_unreachable(exc):
                        log.warning("calculation_store_unreachable", broker_id=str(broker_id), rows=len(chunk),
                                    error=f"{type(exc).__name__}: {exc}")
                        return False
                    # A value Postgres refuses (or a broker deleted meanwhile): find it, keep the others.
                    if not await self._one_by_one(broker_id, chunk):
                        return False
        return True

    async def flush(self) -> None:
        async with self._lock:
            batch, self.buffer = self.buffer, []
            rows = [self._row(p) for p in batch]
            self.in_flight = len(rows)
            try:
                if self.journal.rows:  # an outage, or journals adopted at start: store those first
                    if not await self._reachable():
                        self._park(rows)
                        return
                    self.down = False  # new calculations go to memory while the journal is stored
                    if not await self._store(self.journal.read()):
                        self._park(rows)
                        return
                    self.journal.clear()
                    log.info("calculation_journal_stored")
                if not await self._store(rows):
                    self._park(rows)
                    return
            finally:
                self.in_flight = 0
            await self._stamp_key_usage()

    def _park(self, rows: list[Row]) -> None:
        self.down = True
        self.journal.append(rows)
        self.journal.sync()

    async def _stamp_key_usage(self) -> None:
        usage, used = dict(self.key_usage), list(self.key_usage)
        for k in used:
            self.key_usage.pop(k, None)
        if usage:
            with contextlib.suppress(Exception):  # usage stamps are best effort
                async with self.db.platform() as session:
                    for key_row_id, (at, ip) in usage.items():
                        await session.execute(update(ApiKey).where(ApiKey.id == key_row_id)
                                              .values(last_used_at=at, last_used_ip=ip))
                    await session.commit()
