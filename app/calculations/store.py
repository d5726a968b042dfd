"""Stored calculations: recorded off the response path, written in batches per tenant.

A calculation's response never waits for the database: the route appends (principal, kind, raw
body, result) to an in-memory buffer; a background task parses, hashes and inserts them every
`interval` seconds in one transaction per broker (under that broker's RLS scope). Reads flush first,
so a client that reads its calculation right after computing it finds it. If the database is down,
rows stay buffered (up to `max_buffer`, oldest dropped first and logged) and are retried.
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

import orjson
import structlog
from sqlalchemy import insert, update

from app.auth.principal import Principal
from app.db.engine import Database
from app.models import ApiKey, Calculation

log = structlog.get_logger(__name__)
MAX_STORED_INPUT = 1_000_000  # bytes; larger bodies (big batches) are stored as a digest


@dataclass(frozen=True)
class Pending:
    id: uuid.UUID
    broker_id: uuid.UUID
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    kind: str
    body: bytes
    result: dict[str, Any]
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

    def record(self, principal: Principal, kind: str, body: bytes, result: dict[str, Any]) -> None:
        calc_id = result.get("calculationId")
        if not calc_id:
            return
        if len(self.buffer) >= self.max_buffer:
            self.buffer.pop(0)
            self.dropped += 1
        self.buffer.append(Pending(uuid.UUID(str(calc_id)), principal.broker_id, principal.user_id,
                                   principal.api_key_id, kind, body, result, datetime.now(UTC)))

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
    def _row(p: Pending) -> dict[str, Any]:
        digest = hashlib.sha256(p.body).hexdigest()
        if len(p.body) > MAX_STORED_INPUT:
            stored: Any = {"truncated": True, "bytes": len(p.body), "sha256": digest}
            input_hash = digest
        else:
            try:
                stored = orjson.loads(p.body)
                input_hash = hashlib.sha256(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)).hexdigest()
            except orjson.JSONDecodeError:
                stored, input_hash = {"unparsed": True, "sha256": digest}, digest
        return {"id": p.id, "broker_id": p.broker_id, "user_id": p.user_id, "api_key_id": p.api_key_id,
                "kind": p.kind, "input": stored, "result": p.result, "input_hash": input_hash, "created_at": p.at}

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
                try:
                    async with self.db.tenant(broker_id) as session:
                        await session.execute(insert(Calculation), [self._row(p) for p in items])
                        await session.commit()
                except Exception:
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
