"""Short-lived in-process caches of API keys and broker records.

Every calculation request authenticates; a database round trip per request would cost more than the
calculation (perf-notes). Entries live `key_cache_seconds`; this worker drops an entry at once when it
changes it (revoke, rotate, config update), other workers within the TTL (issue 5 adds pub/sub).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from app.errors import ServiceUnavailable
from app.policy import BrokerPolicy

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries live `ttl` seconds. Concurrent misses of one key share one load (single flight): when the
    TTL runs out, or the invalidation channel clears everything after a Redis reconnect, the requests in
    flight (dozens under load) used to load the same row each, one database round trip and ORM pass
    apiece. A drop or clear while a load runs wins: the load's result is not kept (it may predate the
    change) and the next request loads again."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[K, tuple[float, V | None]] = {}
        self._loading: dict[K, asyncio.Future[V | None]] = {}
        self._generation = 0  # bumped by drop and clear

    async def get(self, key: K, load: Callable[[K], Awaitable[V | None]]) -> V | None:
        hit = self._data.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._loading.get(key)
        if pending is None:
            pending = self._loading[key] = asyncio.ensure_future(self._load(key, load, hit, self._generation))
            pending.add_done_callback(_retrieved)
        # Shielded: a caller that goes away (client disconnect) does not cancel the others' load.
        return await asyncio.shield(pending)

    async def _load(self, key: K, load: Callable[[K], Awaitable[V | None]],
                    hit: tuple[float, V | None] | None, generation: int) -> V | None:
        try:
            try:
                value = await load(key)
            except (SQLAlchemyError, OSError) as exc:
                # The database is unreachable: a known credential keeps working from its last-known state
                # (stale-if-error), an unknown one gets a 503 problem, never a 500.
                if hit is not None:
                    if generation == self._generation:
                        self._data[key] = (time.monotonic() + min(self.ttl, 5.0), hit[1])
                    return hit[1]
                raise ServiceUnavailable("Credentials cannot be checked right now (database unreachable).") from exc
            if generation == self._generation:
                if len(self._data) >= self.max_entries:
                    self._data.clear()  # crude but bounded: a flood of random ids cannot grow memory
                self._data[key] = (time.monotonic() + self.ttl, value)  # misses are cached too (negative caching)
            return value
        finally:
            if self._loading.get(key) is asyncio.current_task():  # not a newer load started after a drop
                del self._loading[key]

    def drop(self, key: K) -> None:
        self._generation += 1
        self._data.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._data.clear()
        self._loading.clear()


def _retrieved(task: asyncio.Future[Any]) -> None:
    # Every waiter may have gone (disconnects): mark the outcome seen so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True)
class KeyRecord:
    id: uuid.UUID
    broker_id: uuid.UUID
    key_id: str
    kind: str
    mode: str
    scopes: tuple[str, ...]
    secret_hash: bytes
    status: str
    expires_at: datetime | None


@dataclass(frozen=True)
class BrokerRecord:
    id: uuid.UUID
    slug: str
    name: str
    tier: str
    status: str
    is_platform: bool
    domains: tuple[str, ...]
    config: dict[str, Any]
    config_version: int

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return tuple(self.config.get("allowedOrigins") or ())

    @cached_property
    def policy(self) -> BrokerPolicy:
        # Built once per cached record, not per calculation request (the hot path).
        return BrokerPolicy.from_config(self.config)
