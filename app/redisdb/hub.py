"""One Redis client for the process, and the rule that Redis is never a hard dependency.

Every call has a short timeout (50 ms by default). A failure marks Redis down for `retry_seconds`;
while down, callers skip Redis at once (no timeout paid per request) and use their fallback: local
rate-limit buckets, no L2 cache, cache invalidation by TTL. The first call after the retry time probes
again, so recovery is automatic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from app.observability.metrics import REDIS_ERRORS, REDIS_UP

T = TypeVar("T")
log = structlog.get_logger("redis")


class RedisUnavailable(Exception):
    """Redis is down (or was within the retry window); the caller takes its fallback path."""


class RedisHub:
    def __init__(self, url: str, timeout: float = 0.05, retry_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.retry_seconds = retry_seconds
        self.clock = clock
        # BlockingConnectionPool: redis-py's default pool raises above max_connections instead of
        # waiting (perf-notes 4.8). The wait is bounded by the same short timeout.
        self.pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=timeout,
                                                    socket_timeout=timeout, socket_connect_timeout=timeout)
        self.client: Redis = Redis(connection_pool=self.pool)
        self.down_until = 0.0
        self.was_down = False
        REDIS_UP.set(1)

    @property
    def available(self) -> bool:
        return self.clock() >= self.down_until

    def script(self, lua: str) -> AsyncScript:
        # redis-py's Script runs EVALSHA and reloads the script on NOSCRIPT (a restarted Redis).
        return self.client.register_script(lua)

    async def run(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call, or raise RedisUnavailable at once while Redis is considered down."""
        if self.clock() < self.down_until:
            raise RedisUnavailable(op)
        try:
            result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(op, exc)
            raise RedisUnavailable(op) from exc
        if self.was_down:
            self._recovered()
        return result

    def _recovered(self) -> None:
        self.down_until = 0.0
        self.was_down = False
        REDIS_UP.set(1)
        log.info("redis_recovered")

    def _failed(self, op: str, exc: BaseException) -> None:
        REDIS_ERRORS.labels(op).inc()
        self.down_until = self.clock() + self.retry_seconds
        if not self.was_down:
            self.was_down = True
            REDIS_UP.set(0)
            log.warning("redis_unavailable", op=op, error=f"{type(exc).__name__}: {exc}")

    async def get(self, key: str) -> bytes | None:
        value: Any = await self.run("get", lambda: self.client.get(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        await self.run("set", lambda: self.client.set(key, value, ex=ttl_seconds))

    async def publish(self, channel: str, message: str) -> None:
        await self.run("publish", lambda: self.client.publish(channel, message))

    async def ping(self) -> bool:
        """A live check for /readyz; it ignores the retry window."""
        try:
            async with asyncio.timeout(0.5):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("ping", exc)
            return False
        if self.was_down:
            self._recovered()
        self.down_until = 0.0
        return True

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()
