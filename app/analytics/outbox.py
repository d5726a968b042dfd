"""The usage outbox: events Postgres stores nowhere else (widget loads, calculations that failed after
admission, exports), written to `usage_events` off the request path.

Calculations, logins and key/config changes are not written here: they already live in Postgres
(`calculations`, `audit_logs`) and the shipper reads them there.

Nothing acknowledged is lost across a crash: before the request answers, its event is appended to
this process's journal (app.db.journal: one write to a file under an exclusive flock; it reaches the
page cache, so it survives kill -9; each tick fsyncs). Every `interval` seconds a background task
seals the journal (new events go to a fresh one), inserts the sealed journals' events, one
transaction per broker under its RLS scope, and deletes them once stored. Postgres unreachable: the
sealed journals wait on disk and the next tick tries again. A process that died leaves its journals
to the next one that starts on the data directory, which adopts and stores them. Each event has its
id from the start and is inserted with `on conflict (id) do nothing`, so a replay stores nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy.dialects.postgresql import insert

from app.db.errors import database_unreachable
from app.db.journal import Journal
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
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def encode(event: Event) -> bytes:
    # orjson writes UUIDs and datetimes as strings; `str` covers the UUID type asyncpg hands out
    return orjson.dumps(asdict(event), default=str) + b"\n"


def decode(line: bytes) -> Event:
    raw = orjson.loads(line)
    for name in ("broker_id", "user_id", "api_key_id", "id"):
        if raw.get(name) is not None:
            raw[name] = uuid.UUID(raw[name])
    raw["created_at"] = datetime.fromisoformat(raw["created_at"])
    return Event(**raw)


class UsageOutbox:
    def __init__(self, db: Database, journal_dir: Path, interval: float = 0.25) -> None:
        self.db = db
        self.journal_dir = journal_dir
        self.interval = interval
        self.journal: Journal[Event] | None = None  # where new events go
        self.sealed: list[Journal[Event]] = []  # full journals, stored (then deleted) by the next flush
        self.dropped = 0  # events Postgres refused as data (their broker deleted meanwhile)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def open(self) -> None:
        """This process's first journal, adopting the journals of processes that died."""
        if self.journal is None:
            self.journal = Journal(self.journal_dir, encode, decode)
            self.journal.open()

    def emit(self, event: Event) -> None:
        """Journal the event (before the request that caused it answers)."""
        self.open()
        assert self.journal is not None
        self.journal.append([event])

    def calculation_failed(self, principal: Principal, endpoint: str, status: int, usage: Usage) -> None:
        units, latency_ms, instrument, currency, risk = usage
        self.emit(Event(principal.broker_id, "calculation", datetime.now(UTC), principal.user_id,
                        principal.api_key_id, endpoint, status, latency_ms, units, instrument, currency, risk))

    def widget_loaded(self, broker_id: uuid.UUID, api_key_id: uuid.UUID | None, endpoint: str) -> None:
        self.emit(Event(broker_id, "widget_load", datetime.now(UTC), None, api_key_id, endpoint, 200))

    def start(self) -> None:
        self.open()
        self._task = asyncio.create_task(self._loop(), name="usage-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # Postgres down at shutdown: the journals stay for the next start
            await self.flush()
        for journal in [*self.sealed, *([self.journal] if self.journal is not None else [])]:
            journal.close()  # an empty one is deleted, one holding events stays to be adopted
        self.sealed, self.journal = [], None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("usage_outbox_flush_failed", waiting=sum(j.rows for j in self.sealed))

    def _seal(self) -> None:
        """Close the current journal to new events (they go to a fresh one) and queue it for storing."""
        if self.journal is None or not self.journal.rows:
            return
        self.journal.sync()
        self.sealed.append(self.journal)
        self.journal = None
        self.open()  # also adopts the journals of processes that died since

    async def flush(self) -> None:
        async with self._lock:
            self._seal()
            if not self.sealed:
                return
            by_broker: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
            for journal in self.sealed:
                for event in journal.read():
                    by_broker[event.broker_id].append(asdict(event))
            for broker_id, rows in by_broker.items():
                try:
                    async with self.db.tenant(broker_id) as session:
                        await session.execute(insert(UsageEvent).on_conflict_do_nothing(index_elements=["id"]), rows)
                        await session.commit()
                except Exception as exc:
                    if database_unreachable(exc):
                        raise  # the sealed journals stay; the next tick stores them (replays are no-ops)
                    self.dropped += len(rows)  # a broker deleted meanwhile: these rows can never be stored
                    log.error("usage_outbox_rejected", broker_id=str(broker_id), rows=len(rows), error=str(exc))
            for journal in self.sealed:
                journal.discard()
            self.sealed = []
