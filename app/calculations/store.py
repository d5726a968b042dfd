"""Stored calculations: recorded off the response path, written in batches per tenant.

A calculation's response never waits for the database: the route appends (principal, kind, raw
body, the response bytes) to an in-memory buffer; a background task inserts them every `interval`
seconds in one transaction per broker (under that broker's RLS scope). The worker does no JSON work
for it: the request body (already valid JSON, it passed validation) and the response bytes go to
Postgres as text and Postgres parses them into jsonb, on its own CPU. (COPY would be faster still,
but Postgres refuses COPY FROM into tables with row-level security.) `inputHash` is the SHA-256 of
the request body as sent. Reads flush first, so a client that reads its calculation right after
computing it finds it. If the database is down, rows stay buffered (up to `max_buffer`, oldest
dropped first and logged) and are retried; a row Postgres refuses (e.g. a \u0000 in a string, which
jsonb cannot hold) is logged and dropped instead of blocking its broker's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog
from sqlalchemy import update

from app.auth.principal import Principal
from app.db.engine import Database
from app.models import ApiKey

log = structlog.get_logger(__name__)
MAX_STORED_INPUT = 1_000_000  # bytes; larger bodies are stored as a digest
# A batch's items are the client's own data and can be megabytes per request; parsing them into jsonb
# at batch rates costs Postgres more than the batch costs us, so a batch keeps its digest and counts.
MAX_STORED_BATCH_INPUT = 64_000
INSERT = ("insert into calculations (id, broker_id, user_id, api_key_id, kind, input, result, input_hash, created_at) "
          "values ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8, $9)")


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


class CalculationRecorder:
    def __init__(self, db: Database, key_usage: dict[uuid.UUID, tuple[datetime, str | None]],
                 interval: float = 0.25, max_buffer: int = 100_000) -> None:
        self.db = db
        self.key_usage = key_usage
        self.interval = interval
        self.max_buffer = max_buffer
        self.buffer: list[Pending] = []
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, principal: Principal, kind: str, body: bytes, result: dict[str, Any],
               payload: bytes | None = None) -> None:
        calc_id = result.get("calculationId")
        if not calc_id:
            return
        if len(self.buffer) >= self.max_buffer:
            self.buffer.pop(0)
            self.dropped += 1
        self.buffer.append(Pending(uuid.UUID(str(calc_id)), principal.broker_id, principal.user_id,
                                   principal.api_key_id, kind, body,
                                   payload if payload is not None else result, datetime.now(UTC)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="calculation-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # keep recording; the rows stay buffered for the next attempt
                log.exception("calculation_store_flush_failed", buffered=len(self.buffer))

    @staticmethod
    def _row(p: Pending) -> tuple[Any, ...]:
        digest = hashlib.sha256(p.body).hexdigest()
        if len(p.body) > (MAX_STORED_BATCH_INPUT if p.kind == "batch" else MAX_STORED_INPUT):
            stored = orjson.dumps({"truncated": True, "bytes": len(p.body), "sha256": digest}).decode()
        else:
            stored = p.body.decode("utf-8", "replace")
        result = p.result if isinstance(p.result, bytes) else orjson.dumps(p.result, option=orjson.OPT_SERIALIZE_NUMPY)
        return (p.id, p.broker_id, p.user_id, p.api_key_id, p.kind, stored, result.decode(), digest, p.at)

    async def _insert(self, broker_id: uuid.UUID, rows: list[tuple[Any, ...]]) -> None:
        async with self.db.tenant(broker_id) as session:
            conn = await session.connection()  # begins the transaction: the tenant is set for it
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg: executemany pipelines the rows
            await driver.executemany(INSERT, rows)
            await session.commit()

    async def _one_by_one(self, broker_id: uuid.UUID, items: list[Pending],
                          rows: list[tuple[Any, ...]]) -> list[Pending]:
        """A batch Postgres refused as data: store what it accepts, drop (and log) what it never will;
        return the rows to retry later (the database went away meanwhile)."""
        retry: list[Pending] = []
        for p, row in zip(items, rows, strict=True):
            try:
                await self._insert(broker_id, [row])
            except asyncpg.DataError as exc:
                self.dropped += 1
                log.error("calculation_store_rejected", calculation_id=str(p.id), error=str(exc))
            except Exception:
                retry.append(p)
        return retry

    async def flush(self) -> None:
        async with self._lock:
            pending, self.buffer = self.buffer, []
            usage, used = dict(self.key_usage), list(self.key_usage)
            for k in used:
                self.key_usage.pop(k, None)
            by_broker: dict[uuid.UUID, list[Pending]] = defaultdict(list)
            for p in pending:
                by_broker[p.broker_id].append(p)
            failed: list[Pending] = []
            for broker_id, items in by_broker.items():
                rows = [self._row(p) for p in items]
                try:
                    await self._insert(broker_id, rows)
                except asyncpg.DataError:  # a value Postgres refuses; find it, keep the others
                    failed.extend(await self._one_by_one(broker_id, items, rows))
                except Exception:  # the database is unreachable or busy: keep everything for the next flush
                    failed.extend(items)
                    log.warning("calculation_store_retry", broker_id=str(broker_id), rows=len(items))
            if failed:
                self.buffer[:0] = failed
            if usage:
                with contextlib.suppress(Exception):  # usage stamps are best effort
                    async with self.db.platform() as session:
                        for key_row_id, (at, ip) in usage.items():
                            await session.execute(update(ApiKey).where(ApiKey.id == key_row_id)
                                                  .values(last_used_at=at, last_used_ip=ip))
                        await session.commit()
