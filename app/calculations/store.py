"""Stored calculations: journaled before the response goes out, written to Postgres in batches per tenant.

Nothing answered is lost across a crash: before the route answers, the recorder appends the
calculation to this worker's journal (app.calculations.journal over app.db.journal: one `writev` of
one line to a file under an exclusive flock; it reaches the page cache, so it survives kill -9 and
an OOM kill). The line is cheap to build: the request body (already valid JSON, it passed validation)
and the response bytes go in verbatim behind a small JSON header, no JSON work on them. Every
`interval` seconds a background task seals the journal (new calculations go to a fresh one), inserts
the sealed journals' rows in order, one statement per broker under that broker's RLS scope, and
deletes each journal once stored. Rows go to Postgres as text, kept as json (checked, not converted to
jsonb: migration 0005). (COPY would be faster still, but Postgres refuses COPY FROM into tables with
row-level security.) `inputHash` is the SHA-256 of the request body as sent. Reads flush first, so a
client that reads its calculation right after computing it finds it. A row Postgres refuses (a value
it cannot store, a broker deleted meanwhile) is logged and dropped instead of blocking its broker's queue.

When Postgres cannot be reached, the sealed journals are fsynced and wait on disk; new calculations
keep going to the current journal, which is not sealed again until Postgres answers (one file per
outage, not one per tick). Each tick then probes Postgres and, once it answers, stores the journals
oldest first. A worker that dies leaves its journals to the next one that starts (or seals) on the
data directory, which adopts and stores them; rows are inserted with `on conflict (id) do nothing`, so
a replay stores nothing twice. A journal is fsynced when it waits for Postgres or the worker stops: a
machine crash can lose at most the last tick that Postgres had not stored yet. `waiting` counts every
calculation not yet stored (all of them are journaled).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import text, update

from app.auth.principal import Principal
from app.calculations.journal import NO_USAGE, Journal, Row, Usage, parts
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
          "select id, broker_id, user_id, api_key_id, kind, input::json, result::json, input_hash, "
          "created_at::timestamptz, units, latency_ms, instrument, account_currency, risk_pct "
          "from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], "
          "$8::text[], $9::text[], $10::int[], $11::real[], $12::text[], $13::text[], $14::float8[]) "
          "as t(id, broker_id, user_id, api_key_id, kind, input, result, input_hash, created_at, units, latency_ms, "
          "instrument, account_currency, risk_pct) on conflict (id) do nothing")
CHUNK = 5_000  # rows per insert when a journal is stored


class CalculationRecorder:
    def __init__(self, db: Database, key_usage: dict[uuid.UUID, tuple[datetime, str | None]], journal_dir: Path,
                 interval: float = 0.25) -> None:
        self.db = db
        self.key_usage = key_usage
        self.journal_dir = journal_dir
        self.interval = interval
        self.journal: Journal | None = None  # where new calculations go
        self.sealed: list[Journal] = []  # taken by a flush, oldest first; deleted once stored
        self.down = False  # the last flush found Postgres unreachable: probe before sealing again
        self.dropped = 0  # rows Postgres refused as data
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def waiting(self) -> int:
        """Calculations recorded and not yet stored, every one of them in a journal on disk."""
        return (self.journal.rows if self.journal is not None else 0) + sum(j.rows for j in self.sealed)

    def open(self) -> None:
        """This worker's journal, adopting the journals of workers that died."""
        if self.journal is None:
            self.journal = Journal(self.journal_dir)
            self.journal.open()

    def record(self, principal: Principal, kind: str, body: bytes, result: dict[str, Any],
               payload: bytes | None = None, usage: Usage = NO_USAGE) -> None:
        """Journal the calculation (before its response goes out)."""
        calc_id = result.get("calculationId")
        if not calc_id:
            return
        digest = hashlib.sha256(body).hexdigest()
        if len(body) > (MAX_STORED_BATCH_INPUT if kind == "batch" else MAX_STORED_INPUT):
            stored = orjson.dumps({"truncated": True, "bytes": len(body), "sha256": digest})
        else:
            stored = _one_line(body)
        out = _one_line(payload if payload is not None else orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY))
        if self.journal is None:
            self.open()
        assert self.journal is not None
        self.journal.write(parts(str(calc_id), principal.broker_id, principal.user_id, principal.api_key_id, kind,
                                 digest, datetime.now(UTC), usage, stored, out))

    def start(self) -> None:
        """Open this worker's journal (adopting those of workers that died) and start the flush loop."""
        self.open()
        self._task = asyncio.create_task(self._loop(), name="calculation-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:  # the journals stay for the next worker to start
            log.exception("calculation_store_flush_failed", waiting=self.waiting)
        finally:
            for journal in [*self.sealed, *([self.journal] if self.journal is not None else [])]:
                journal.close()  # fsynced; an empty one is deleted, one holding rows stays to be adopted
            self.sealed, self.journal = [], None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # keep recording; nothing is lost (it is journaled)
                log.exception("calculation_store_flush_failed", waiting=self.waiting)

    async def _insert(self, broker_id: str, rows: list[Row]) -> None:
        async with self.db.tenant(uuid.UUID(broker_id)) as session:
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

    async def _one_by_one(self, broker_id: str, rows: list[Row]) -> bool:
        """A batch Postgres refused as data: store what it accepts, drop (and log) what it never will.
        False: the database went away meanwhile."""
        for row in rows:
            try:
                await self._insert(broker_id, [row])
            except Exception as exc:
                if database_unreachable(exc):
                    return False
                self.dropped += 1
                log.error("calculation_store_rejected", calculation_id=row[0], error=str(exc))
        return True

    async def _store(self, rows: list[Row]) -> bool:
        """Insert rows, per broker under its RLS scope. False: Postgres is unreachable (some rows may be
        stored already; a replay of them is a no-op)."""
        by_broker: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            by_broker[row[1]].append(row)
        for broker_id, items in by_broker.items():
            for at in range(0, len(items), CHUNK):
                chunk = items[at:at + CHUNK]
                try:
                    await self._insert(broker_id, chunk)
                except Exception as exc:
                    if database_unreachable(exc):
                        log.warning("calculation_store_unreachable", broker_id=broker_id, rows=len(chunk),
                                    error=f"{type(exc).__name__}: {exc}")
                        return False
                    # A value Postgres refuses (or a broker deleted meanwhile): find it, keep the others.
                    if not await self._one_by_one(broker_id, chunk):
                        return False
        return True

    def _seal(self) -> None:
        """Close the current journal to new calculations (they go to a fresh one) and queue it for storing."""
        if self.journal is None or not self.journal.rows:
            return
        self.sealed.append(self.journal)
        self.journal = None
        self.open()  # also adopts the journals of workers that died since

    def _wait(self) -> None:
        """Postgres is unreachable: what waits for it must survive the machine too."""
        self.down = True
        for journal in [*self.sealed, *([self.journal] if self.journal is not None else [])]:
            journal.sync()

    async def flush(self) -> None:
        async with self._lock:
            if self.down and not await self._reachable():
                self._wait()
                return
            self._seal()
            while self.sealed:
                if not await self._store(self.sealed[0].read()):
                    self._wait()
                    return
                self.sealed.pop(0).discard()
            if self.down:
                self.down = False
                log.info("calculation_journal_stored")
            await self._stamp_key_usage()

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


def _one_line(data: bytes) -> bytes:
    """JSON on one line: a raw newline in valid JSON is whitespace between tokens (in a string it is
    escaped), so a space stands for it. `in` first: most bodies have none and are not copied."""
    return data.replace(b"\n", b" ") if b"\n" in data else data
