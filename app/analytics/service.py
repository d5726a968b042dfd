"""Usage analytics: who answers queries, the flush loop, the reports, retention hooks, metered usage.

`Analytics` is built in the lifespan (app.main) and held by the service container. With
CLICKHOUSE_URL it opens its own client and queries directly. Without it, the process that owns the
embedded chDB path (app.analytics.clickhouse.OwnerLock) opens it, ships events every
`analytics_flush_seconds` and answers its own and the other processes' queries (app.analytics.forward);
the others forward. Nothing here runs on the calculation path.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text

from app.analytics.clickhouse import HOURLY, USER_TABLES, ClickHouse, OwnerLock
from app.analytics.forward import ForwardedError, OwnerServer, OwnerUnreachable, ask_owner
from app.analytics.queries import REPORTS, Scope, Window
from app.analytics.shipper import Shipper
from app.config import Settings
from app.db.engine import Database
from app.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DailyUsage:
    day: date
    calculations: int
    units: int


async def daily_usage(db: Database, broker_id: uuid.UUID, start: date, end: date) -> list[DailyUsage]:
    """Metered usage for billing: per UTC day in [start, end), answered calculations and units charged.

    Read from Postgres, not ClickHouse: Postgres is the source of truth and is always complete, while
    ClickHouse lags by a flush interval (or by an outage). Billing must neither miss nor double-count a
    calculation, and it runs as a daily job over one broker's index range (calculations_broker_created),
    so exactness matters more here than ClickHouse's speed. Failed calculations are not billed.
    Days without calculations are in the answer with zeros.
    """
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC)
    async with db.tenant(broker_id) as session:  # RLS: only this broker's rows
        rows = (await session.execute(text(
            "select (created_at at time zone 'UTC')::date as day, count(*), coalesce(sum(units), 0) "
            "from calculations where broker_id = :b and created_at >= :lo and created_at < :hi "
            "group by day"), {"b": broker_id, "lo": lo, "hi": hi})).all()
    found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    return [DailyUsage(start + timedelta(days=i), *found.get(start + timedelta(days=i), (0, 0)))
            for i in range((end - start).days)]


class Analytics:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.clickhouse: ClickHouse | None = None
        self.shipper: Shipper | None = None
        self.lock = OwnerLock(settings.data_dir / "clickhouse.lock")
        self.socket = settings.data_dir / "run" / "analytics.sock"
        self.server: OwnerServer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._open_lock = asyncio.Lock()
        self.last_error: str | None = None

    @property
    def direct(self) -> bool:
        """True when this process queries ClickHouse itself (a server URL, or it owns the embedded path)."""
        return self.clickhouse is not None

    async def start(self) -> None:
        if not self.settings.analytics_enabled:
            return
        await self._open()
        self.resume()

    def pause(self) -> None:
        """Stop the periodic flush (maintenance, tests); `flush()` still ships on demand."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None

    def resume(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="analytics-flush")

    async def _open(self) -> bool:
        """Open ClickHouse if this process may: always with a URL, with the embedded engine only when it
        takes the owner lock. False: another process owns the path (or opening failed: `last_error`)."""
        async with self._open_lock:
            if self.clickhouse is not None:
                return True
            embedded = not self.settings.clickhouse_url
            if embedded and not self.lock.acquire():
                return False
            try:
                ch = await asyncio.to_thread(ClickHouse.connect, self.settings)
                await asyncio.to_thread(ch.migrate, self.settings.analytics_retention_days)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("analytics_clickhouse_unavailable", error=self.last_error)
                if embedded:
                    self.lock.release()
                return False
            self.clickhouse = ch
            self.shipper = Shipper(self.db, ch, self.settings.analytics_batch_rows)
            if embedded:
                self.server = OwnerServer(self.socket, self._answer)
                await self.server.start()
                log.info("analytics_owner", path=str(self.settings.data_dir / "clickhouse"))
            return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.analytics_flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # ClickHouse or Postgres away: the rows wait in Postgres
                log.warning("analytics_flush_failed", error=f"{type(exc).__name__}: {exc}")

    async def flush(self) -> dict[str, Any]:
        """Ship what Postgres has that ClickHouse has not (the owner, or any process with a URL)."""
        if not self.settings.analytics_enabled:
            return {"skipped": "analytics disabled"}
        if self.shipper is None and not await self._open():
            return {"skipped": "another process owns the embedded ClickHouse"}
        assert self.shipper is not None
        return {"shipped": await self.shipper.ship()}

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self.server is not None:
            await self.server.stop()
        if self.clickhouse is not None:
            self.clickhouse.close()
            self.clickhouse = None
        self.lock.release()

    # --- queries --------------------------------------------------------------------------------
    async def report(self, name: str, broker_id: uuid.UUID | None, window: Window) -> dict[str, Any]:
        request = {"op": "report", "report": name, "broker": str(broker_id) if broker_id else None,
                   "start": window.start.isoformat(), "end": window.end.isoformat(),
                   "granularity": window.granularity}
        return await self._run(request)

    async def forget_broker(self, broker_id: uuid.UUID) -> dict[str, Any]:
        """Retention hook (offboarding): delete a broker's events from ClickHouse. Postgres rows are the
        caller's to delete; rows not yet shipped are never shipped once deleted there."""
        return await self._run({"op": "forget", "broker": str(broker_id), "user": None})

    async def forget_user(self, broker_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
        """Retention hook (GDPR erasure): delete one user's events of one broker from ClickHouse."""
        return await self._run({"op": "forget", "broker": str(broker_id), "user": str(user_id)})

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        if not self.settings.analytics_enabled:
            raise ServiceUnavailable("Usage analytics are turned off on this deployment.")
        timeout = self.settings.analytics_query_timeout_seconds
        for _ in range(2):
            if self.clickhouse is not None or (self.settings.clickhouse_url and await self._open()):
                try:
                    return await asyncio.wait_for(self._answer(request), timeout)
                except ServiceUnavailable:
                    raise
                except Exception as exc:
                    log.warning("analytics_query_failed", error=f"{type(exc).__name__}: {exc}")
                    raise ServiceUnavailable("Usage analytics cannot be reached right now; try again shortly.") \
                        from exc
            if self.settings.clickhouse_url:
                break
            try:
                return await ask_owner(self.socket, request, timeout)
            except ForwardedError as exc:
                raise ServiceUnavailable("Usage analytics cannot be reached right now; try again shortly.") from exc
            except OwnerUnreachable:
                if not await self._open():  # nobody owns the path any more: take it, then answer ourselves
                    break
        raise ServiceUnavailable("Usage analytics cannot be reached right now; try again shortly.")

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request on this process's ClickHouse (its own, or forwarded by another process)."""
        ch = self.clickhouse
        if ch is None:
            raise ServiceUnavailable("This process does not hold the analytics store.")
        broker = uuid.UUID(request["broker"]) if request.get("broker") else None
        if request["op"] == "forget":
            if broker is None:
                raise ValueError("forget needs a broker")
            # The hourly rollups hold no user: a forgotten user's calculations stay in them as anonymous
            # counts. A forgotten broker leaves its rows in usage_hourly_all (platform totals, no broker).
            if request.get("user"):
                for table in USER_TABLES:
                    await ch.command(f"DELETE FROM {table} WHERE broker_id = {{b:UUID}} AND user_id = {{u:UUID}}",
                                     {"b": broker, "u": uuid.UUID(request["user"])})
            else:
                for table in (*USER_TABLES, HOURLY):
                    await ch.command(f"DELETE FROM {table} WHERE broker_id = {{b:UUID}}", {"b": broker})
            return {"deleted": True}
        window = Window(datetime.fromisoformat(request["start"]), datetime.fromisoformat(request["end"]),
                        request["granularity"])
        return await REPORTS[request["report"]](ch, Scope(broker), window)
