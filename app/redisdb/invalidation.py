"""Cross-worker cache invalidation over Redis pub/sub.

A worker that changes a key or a broker drops its own cache entry at once and publishes the change;
every worker (itself included) drops the entry when the message arrives. While the subscription is
broken, messages can be missed, so every (re)subscribe clears the local caches entirely; without Redis
the caches' short TTL is the bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.redisdb.hub import RedisHub, RedisUnavailable

CHANNEL = "forexrisk:invalidate"
log = structlog.get_logger("invalidation")


class Invalidation:
    def __init__(self, hub: RedisHub, on_message: Callable[[str], None], on_reset: Callable[[], None]) -> None:
        self.hub = hub
        self.on_message = on_message
        self.on_reset = on_reset
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def publish(self, message: str) -> None:
        """Fire and forget: the caller (an admin request) never waits on or fails because of Redis.
        Callable from the app's loop or, thread-safely, from any other thread (CLI tools, tests)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self._loop:
            self._spawn(message)
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._spawn, message)

    def _spawn(self, message: str) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, message: str) -> None:
        try:
            await self.hub.publish(CHANNEL, message)
        except RedisUnavailable:
            pass  # other workers see the change within the cache TTL

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            # Its own connection without the hub's 50 ms socket timeout: a subscriber waits by design.
            client: Redis = Redis.from_url(self.hub.url, socket_connect_timeout=1.0, health_check_interval=15)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.on_reset()
                    self.subscribed.set()
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            data = message["data"]
                            self.on_message(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed.is_set():
                    log.warning("invalidation_subscription_lost", error=f"{type(exc).__name__}: {exc}")
                self.subscribed.clear()
                await asyncio.sleep(self.hub.retry_seconds)
            finally:
                await client.aclose()
