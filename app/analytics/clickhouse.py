"""The ClickHouse client and who may use it.

`CLICKHOUSE_URL` set: a ClickHouse server; every process opens its own HTTP client (clickhouse-connect)
and queries it directly. Unset: an embedded chDB engine under `data_dir/clickhouse`, opened through
clickhouse-connect's `chdb://` DSN, so the code above this module is the same for both.

chDB is ClickHouse inside this process, with two limits we design around:
- one process per data path: the process that holds an exclusive `flock` on
  `data_dir/clickhouse.lock` owns the path; it ships events and answers queries. The kernel drops the
  lock however the owner ends (exit, crash, kill -9), so the next process to ask takes over. Other
  processes on the same data directory forward their queries to the owner (app.analytics.forward).
- one engine path per process: a process that already opened chDB at another path (a test process
  that builds apps on several data directories) cannot open a second one: that app has no analytics.

clickhouse-connect's client is synchronous (its chdb backend has no async client): every call runs in a
worker thread (`asyncio.to_thread`), so the event loop never waits for ClickHouse.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
import structlog
from clickhouse_connect.driver.client import Client

from app.config import Settings

log = structlog.get_logger(__name__)

TABLE = "usage_metrics"
COLUMNS = ("event_id", "source", "at", "broker_id", "user_id", "api_key_id", "event_type", "action", "endpoint",
           "instrument", "account_currency", "risk_pct", "status", "latency_ms", "units")


# Rollups kept by materialized views on `usage_metrics` (each insert block that is stored also feeds
# them; a block dropped by its insert_deduplication_token feeds nothing:
# deduplicate_blocks_in_dependent_materialized_views, on by default, tested in tests/test_analytics.py).
HOURLY = "usage_hourly"  # per broker, event type, hour, endpoint: counts, units, latency sketch
HOURLY_ALL = "usage_hourly_all"  # the same without the broker: the platform operator's view
FIRST_SEEN = "usage_first_seen"  # per broker and user: first and last event
DAILY_USERS = "usage_daily_users"  # per broker, UTC day and user: one row (the user was active that day)
ROLLUPS = (HOURLY, HOURLY_ALL, FIRST_SEEN, DAILY_USERS)
USER_TABLES = (TABLE, FIRST_SEEN, DAILY_USERS)  # the tables with a user_id (GDPR erasure deletes from each)
# Latency percentiles come from a DDSketch (ClickHouse quantilesDD): mergeable across hours and brokers,
# so a report reads hundreds of rollup rows instead of every event; each percentile is within 1 % of the
# exact value (relative accuracy 0.01). Exact percentiles need every value, which no rollup keeps.
LATENCY_SKETCH = "quantilesTDigest(0.5, 0.95, 0.99)"
_HOURLY_COLUMNS = f"""
    hour DateTime('UTC'),
    endpoint LowCardinality(String),
    ok SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    units SimpleAggregateFunction(sum, UInt64),
    timed SimpleAggregateFunction(sum, UInt64),
    latency AggregateFunction({LATENCY_SKETCH}, Float32)"""
HOURLY_SELECT = (  # the rollup columns of a set of usage_metrics rows, grouped by hour (and more)
    "toStartOfHour(at) AS hour, endpoint, countIf(status < 400) AS ok, countIf(status >= 400) AS errors, "
    "sum(units) AS units, count(latency_ms) AS timed, "
    f"{LATENCY_SKETCH.replace('(', 'StateIf(', 1)}(assumeNotNull(latency_ms), isNotNull(latency_ms)) AS latency")


# A rollup keeps the tokens of its last blocks too: a block the event table dropped as a resend reaches the
# views all the same (seen on chDB 26.9), and is dropped here, by the token derived from the source's.
DEDUP = "\nSETTINGS non_replicated_deduplication_window = 1000"


def ddl(retention_days: int) -> list[str]:
    """The event table, its rollups and the views that feed them. Real columns for everything a report
    filters or aggregates (no JSON strings).

    The shipper stores each event exactly once (app.analytics.shipper: a resent batch is dropped by its
    insert_deduplication_token, and a batch that changed in between is re-sent without the rows
    ClickHouse already has), so reports read without FINAL and the rollups count exactly.
    ReplacingMergeTree on (broker_id, event_type, at, event_id) stays as a last guard: a copy that ever
    got in anyway (a manual insert) collapses at the next merge.
    """
    days = int(retention_days)
    return [f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id UUID,
    source LowCardinality(String),
    at DateTime64(3, 'UTC'),
    broker_id UUID,
    user_id Nullable(UUID),
    api_key_id Nullable(UUID),
    event_type LowCardinality(String),
    action LowCardinality(String),
    endpoint LowCardinality(String),
    instrument LowCardinality(String),
    account_currency LowCardinality(String),
    risk_pct Nullable(Float64),
    status UInt16,
    latency_ms Nullable(Float32),
    units UInt32
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (broker_id, event_type, at, event_id)
TTL toDateTime(at) + INTERVAL {days} DAY
SETTINGS non_replicated_deduplication_window = 1000""",
            f"ALTER TABLE {TABLE} MODIFY TTL toDateTime(at) + INTERVAL {days} DAY",
            f"""
CREATE TABLE IF NOT EXISTS {HOURLY} (broker_id UUID, event_type LowCardinality(String), {_HOURLY_COLUMNS}
) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(hour) ORDER BY (broker_id, event_type, hour, endpoint)
TTL hour + INTERVAL {days} DAY{DEDUP}""",
            f"""
CREATE TABLE IF NOT EXISTS {HOURLY_ALL} (event_type LowCardinality(String), {_HOURLY_COLUMNS}
) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(hour) ORDER BY (event_type, hour, endpoint)
TTL hour + INTERVAL {days} DAY{DEDUP}""",
            # A user's first and last event. min and max: a row seen twice changes nothing. Kept while the
            # user is active within the retention period.
            f"""
CREATE TABLE IF NOT EXISTS {FIRST_SEEN} (
    broker_id UUID,
    user_id UUID,
    first_at SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = AggregatingMergeTree ORDER BY (broker_id, user_id)
TTL toDateTime(last_at) + INTERVAL {days} DAY{DEDUP}""",
            # Who was active on which UTC day: the active, returning and DAU/WAU/MAU counts of whole days
            # read it instead of the events (a user with 30 events on a day is one row here). Nothing but
            # the key, so a row stored twice changes no count (the reports count distinct users, and the
            # next merge collapses it): no deduplication window needed, nothing a resend can break.
            f"""
CREATE TABLE IF NOT EXISTS {DAILY_USERS} (broker_id UUID, day Date, user_id UUID
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (broker_id, day, user_id)
TTL day + INTERVAL {days} DAY""",
            *(f"ALTER TABLE {t} MODIFY TTL {c} + INTERVAL {days} DAY"
              for t, c in ((HOURLY, "hour"), (HOURLY_ALL, "hour"), (FIRST_SEEN, "toDateTime(last_at)"),
                           (DAILY_USERS, "day"))),
            *view_ddl()]


def rollup_inserts(source: str = TABLE) -> dict[str, str]:
    """What each rollup holds, as an INSERT … SELECT from `source` (the views' bodies; the backfill)."""
    return {
        HOURLY: f"INSERT INTO {HOURLY} SELECT broker_id, event_type, {HOURLY_SELECT} FROM {source} "
                "GROUP BY broker_id, event_type, hour, endpoint",
        HOURLY_ALL: f"INSERT INTO {HOURLY_ALL} SELECT event_type, {HOURLY_SELECT} FROM {source} "
                    "GROUP BY event_type, hour, endpoint",
        # `{source}.user_id`: a bare user_id in WHERE would be the alias, never NULL.
        FIRST_SEEN: f"INSERT INTO {FIRST_SEEN} SELECT broker_id, assumeNotNull(user_id) AS user_id, "
                    f"min(at) AS first_at, max(at) AS last_at FROM {source} WHERE isNotNull({source}.user_id) "
                    "GROUP BY broker_id, user_id",
        DAILY_USERS: f"INSERT INTO {DAILY_USERS} SELECT broker_id, toDate(at) AS day, "
                     f"assumeNotNull(user_id) AS user_id FROM {source} WHERE isNotNull({source}.user_id) "
                     "GROUP BY broker_id, day, user_id",
    }


def view_ddl() -> list[str]:
    return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv TO {table} AS "
            + statement.split(" ", 3)[3]  # the SELECT of "INSERT INTO <table> SELECT …"
            for table, statement in rollup_inserts().items()]


class NotOwner(RuntimeError):
    """This process may not open the embedded engine: another process owns the data path."""


class OwnerLock:
    """The exclusive flock that makes a process the owner of an embedded ClickHouse path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # flock, not fcntl record locks: those belong to the process, so a second app in the same
            # process would "get" the lock again; flock belongs to this open file description.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class ClickHouse:
    """One ClickHouse client for this process, used from worker threads (one call at a time)."""

    def __init__(self, client: Client, embedded: bool) -> None:
        self.client = client
        self.embedded = embedded
        self._lock = asyncio.Lock()  # clickhouse-connect clients are not meant for concurrent calls

    @classmethod
    def connect(cls, settings: Settings) -> ClickHouse:
        if settings.clickhouse_url:
            client = clickhouse_connect.get_client(dsn=settings.clickhouse_url, connect_timeout=5,
                                                   send_receive_timeout=settings.analytics_query_timeout_seconds)
            return cls(client, embedded=False)
        path = (settings.data_dir / "clickhouse").resolve()
        path.mkdir(parents=True, exist_ok=True)
        return cls(clickhouse_connect.get_client(dsn=f"chdb://{path}"), embedded=True)

    def migrate(self, retention_days: int) -> None:
        """Create or update the tables. A rollup created here on an event table that already holds rows
        (an upgrade) is filled from it once, before its view exists: this runs before this process ships
        anything, and with the embedded engine no other process writes (the owner lock)."""
        existing = {str(r[0]) for r in self.client.query("SHOW TABLES").result_rows}
        statements = ddl(retention_days)
        views = set(view_ddl())
        for statement in statements:
            if statement not in views:
                self.client.command(statement)
        if TABLE in existing:
            for table, backfill in rollup_inserts().items():
                if table not in existing:
                    self.client.command(backfill)
        for statement in views:
            self.client.command(statement)

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self._lock:
            result = await asyncio.to_thread(self.client.query, sql, parameters=parameters,
                                             settings={"do_not_merge_across_partitions_select_final": 1})
        return [tuple(row) for row in result.result_rows]

    async def insert(self, rows: Sequence[Sequence[Any]], token: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self.client.insert, TABLE, rows, column_names=list(COLUMNS),
                                    settings={"insert_deduplication_token": token})

    async def stored_ids(self, source: str, brokers: Sequence[Any], lo: Any, hi: Any) -> set[Any]:
        """The event ids of `source` ClickHouse already has for these brokers between lo and hi (inclusive,
        give or take a second): what of a batch about to be sent is already there."""
        rows = await self.query(
            f"SELECT event_id FROM {TABLE} WHERE broker_id IN {{brokers:Array(UUID)}} AND source = {{source:String}} "
            "AND at >= {lo:DateTime64(3, 'UTC')} - INTERVAL 1 SECOND "
            "AND at <= {hi:DateTime64(3, 'UTC')} + INTERVAL 1 SECOND",
            {"brokers": list(brokers), "source": source, "lo": lo, "hi": hi})
        return {row[0] for row in rows}

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        async with self._lock:
            await asyncio.to_thread(self.client.command, sql, parameters=parameters)

    def close(self) -> None:
        self.client.close()
