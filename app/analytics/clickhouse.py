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


def ddl(retention_days: int) -> list[str]:
    """The event table. Real columns for everything a report filters or aggregates (no JSON strings).

    ReplacingMergeTree on (broker_id, event_type, at, event_id): an event shipped twice (a crash between
    the insert and the watermark update) collapses to one row; reports read with FINAL, so they count
    exactly even before the background merge. The shipper also sends a deterministic
    insert_deduplication_token per batch, so a retried batch is normally not stored at all (the
    non-replicated deduplication window keeps the last tokens).
    """
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
TTL toDateTime(at) + INTERVAL {int(retention_days)} DAY
SETTINGS non_replicated_deduplication_window = 1000""",
            f"ALTER TABLE {TABLE} MODIFY TTL toDateTime(at) + INTERVAL {int(retention_days)} DAY"]


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
        for statement in ddl(retention_days):
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

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        async with self._lock:
            await asyncio.to_thread(self.client.command, sql, parameters=parameters)

    def close(self) -> None:
        self.client.close()
