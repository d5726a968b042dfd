"""The usage outbox: events Postgres stores nowhere else (widget loads, calculations that failed after
admission, exports), written to `usage_events` off the request path.

Calculations, logins and key/config changes are not written here: they already live in Postgres
(`calculations`, `audit_logs`) and the shipper reads them there. Like the calculation recorder, the
request only appends to a list; a background task inserts the list every `interval` seconds, one
transaction per broker under its RLS scope. While Postgres is unreachable the rows wait in memory (at
most `max_buffer`, the oldest dropped first and counted): these are soft events, and unlike a stored
calculation nobody reads them back, so they get no disk journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import insert

from app.db.errors import database_unreachable
from app.models import UsageEvent

if TYPE_CHECKING:
    from app.auth.principal import Principal
    from app.calculations.journal import Usage
    from app.db.engine import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    broker_id: uuid.UUID
    event_type: str
    created_at: datetime
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    endpoint: str | None = None
    status: int | None = None
    latency_ms: float | None = None
    units: int = 0
    instrument: str | None = None
    account_currency: str | None = None
    risk_pct: float | None = None


class UsageOutbox:
    def __init__(self, db: Database, interval: float = 0.25, max_buffer: int = 100_000) -> None:
        self.db = db
        self.interval = interval
        self.max_buffer = max_buffer
        self.buffer: list[Event] = []
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def emit(self, event: Event) -> None:
        if len(self.buffer) >= self.max_buffer:
            self.buffer.pop(0)
            self.dropped += 1
        self.buffer.append(event)

    def calculation_failed(self, principal: Principal, endpoint: str, status: int, usage: Usage) -> None:
        units, latency_ms, instrument, currency, risk = usage
        self.emit(Event(principal.broker_id, "calculation", datetime.now(UTC), principal.user_id,
                        principal.api_key_id, endpoint, status, latency_ms, units, instrument, currency, risk))

    def widget_loaded(self, broker_id: uuid.UUID, api_key_id: uuid.UUID | None, endpoint: str) -> None:
        self.emit(Event(broker_id, "widget_load", datetime.now(UTC), None, api_key_id, endpoint, 200))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="usage-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # Postgres down at shutdown: these soft events are lost
            await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("usage_outbox_flush_failed", waiting=len(self.buffer))

    async def flush(self) -> None:
        async with self._lock:
            batch, self.buffer = self.buffer, []
            by_broker: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
            for event in batch:
                by_broker[event.broker_id].append(asdict(event))
            done: set[uuid.UUID] = set()
            for broker_id, rows in by_broker.items():
                try:
                    async with self.db.tenant(broker_id) as session:
                        await session.execute(insert(UsageEvent), rows)
                        await session.commit()
                except Exception as exc:
                    if database_unreachable(exc):
                        # Put back what was not stored (in front: order kept) and retry on the next tick.
                        self.buffer[:0] = [e for e in batch if e.broker_id not in done]
                        raise
                    self.dropped += len(rows)  # a broker deleted meanwhile: these rows can never be stored
                    log.error("usage_outbox_rejected", broker_id=str(broker_id), rows=len(rows), error=str(exc))
                done.add(broker_id)
