"""The quote cache: per symbol, in-process first, Redis second, `ttl` seconds (10 by default).

Concurrent misses of one symbol make one upstream call (single flight, as app.auth.cache.TtlCache): the
first caller's load serves every caller that arrives while it runs. One lookup's misses for one provider
go upstream together, in one call (vendors price many symbols per request).

Keys: a vendor's (and the snapshot's) quotes are public market prices, the same for every broker, so one
cached copy is shared by all brokers (`md:q:oanda:EURUSD`): this saves vendor calls, which cost money and
rate-limit budget, and reveals nothing about any tenant. A broker's pushed feed is its own business
(its spreads, its prices): those keys carry the broker id (`md:q:broker:<id>:EURUSD`), so no other broker
can ever be served them, in-process or from Redis.

Redis is never required (app.redisdb.hub): while it is down this is an in-process cache in front of the
providers. Errors are not cached (the breaker in resilience.py deals with a failing vendor); "this
provider has no such symbol" is cached in-process, like a quote, for the TTL.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from app.integrations.market_data.quotes import MarketQuote, ProviderError, QuoteProvider
from app.observability.metrics import MARKET_DATA_CACHE
from app.redisdb.hub import RedisHub, RedisUnavailable

PREFIX = "md:q:"
Result = MarketQuote | None | ProviderError  # a quote, absent, or the call's failure


# Bound once: labels() on every lookup costs more than the hit it counts.
LOCAL_HIT = MARKET_DATA_CACHE.labels("local", "hit")
LOCAL_JOINED = MARKET_DATA_CACHE.labels("local", "joined")


def cache_key(provider: QuoteProvider, broker_id: uuid.UUID, symbol: str) -> str:
    return key_prefix(provider, broker_id) + symbol


def key_prefix(provider: QuoteProvider, broker_id: uuid.UUID) -> str:
    return f"{provider.name}:" if provider.shared else f"{provider.name}:{broker_id}:"


class QuoteCache:
    def __init__(self, hub: RedisHub | None, ttl_seconds: float = 10.0, max_entries: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._local: dict[str, tuple[float, MarketQuote | None]] = {}
        self._loading: dict[str, asyncio.Future[Result]] = {}
        self._generation = 0
        # Bumped by every change of the in-process level: with the entries' expiry it tells a caller that
        # what it read from here is still what it would read (app.integrations.market_data.service's memo).
        self.version = 0

    def peek(self, provider: QuoteProvider, broker_id: uuid.UUID,
             symbols: Sequence[str]) -> tuple[dict[str, Result], float] | None:
        """Every symbol from the in-process level and the earliest of their expiries, or None when any is not
        there fresh (then get_many): the warm path of a calculation without the cost of a coroutine."""
        out: dict[str, Result] = {}
        now = self.clock()
        local = self._local
        prefix = key_prefix(provider, broker_id)
        until = math.inf
        for symbol in symbols:
            hit = local.get(prefix + symbol)
            if hit is None or hit[0] <= now:
                return None
            out[symbol] = hit[1]
            until = hit[0] if hit[0] < until else until
        LOCAL_HIT.inc(len(out))
        return out, until

    async def get_many(self, provider: QuoteProvider, broker_id: uuid.UUID,
                       symbols: Sequence[str]) -> dict[str, Result]:
        out: dict[str, Result] = {}
        waiting: dict[str, asyncio.Future[Result]] = {}
        mine: dict[str, str] = {}  # key -> symbol this call loads
        now = self.clock()
        for symbol in symbols:
            key = cache_key(provider, broker_id, symbol)
            hit = self._local.get(key)
            if hit is not None and hit[0] > now:
                LOCAL_HIT.inc()
                out[symbol] = hit[1]
            elif key in self._loading:
                LOCAL_JOINED.inc()
                waiting[symbol] = self._loading[key]
            else:
                mine[key] = symbol
        if mine:
            loop = asyncio.get_running_loop()
            futures = {key: loop.create_future() for key in mine}
            for key, future in futures.items():
                self._loading[key] = future
                future.add_done_callback(_retrieved)
                waiting[mine[key]] = future
            task = asyncio.ensure_future(self._load(provider, broker_id, mine, futures, self._generation))
            task.add_done_callback(_retrieved)
        for symbol, future in waiting.items():
            # Shielded: a caller that goes away (client disconnect) does not cancel the others' load.
            out[symbol] = await asyncio.shield(future)
        return out

    async def _load(self, provider: QuoteProvider, broker_id: uuid.UUID, mine: dict[str, str],
                    futures: dict[str, asyncio.Future[Result]], generation: int) -> None:
        results: dict[str, Result] = {}
        try:
            todo = dict(mine)
            for key, quote in (await self._remote_get(list(todo))).items():
                results[key] = quote
                del todo[key]
            if todo:
                try:
                    fetched = await provider.fetch(list(todo.values()), broker_id)
                except ProviderError as exc:
                    for key in todo:
                        results[key] = exc
                else:
                    fresh = {}
                    for key, symbol in todo.items():
                        results[key] = fetched.get(symbol)
                        if results[key] is not None:
                            fresh[key] = results[key]
                    await self._remote_set(fresh)  # type: ignore[arg-type]
            if generation == self._generation:
                self._remember({k: v for k, v in results.items() if not isinstance(v, ProviderError)})
        except BaseException as exc:  # an unexpected failure reaches every waiter, never hangs them
            for future in futures.values():
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            for key, future in futures.items():
                if self._loading.get(key) is future:
                    del self._loading[key]
                if not future.done():
                    future.set_result(results.get(key))

    def _remember(self, entries: dict[str, MarketQuote | None]) -> None:
        self.version += 1
        if len(self._local) + len(entries) > self.max_entries:
            self._local.clear()  # crude but bounded
        expires = self.clock() + self.ttl
        for key, value in entries.items():
            self._local[key] = (expires, value)

    async def _remote_get(self, keys: list[str]) -> dict[str, MarketQuote]:
        if self.hub is None or not keys:
            return {}
        hub = self.hub
        try:
            values: list[Any] = await hub.run("mget", lambda: hub.client.mget([PREFIX + k for k in keys]))
        except RedisUnavailable:
            MARKET_DATA_CACHE.labels("redis", "unavailable").inc()
            return {}
        out: dict[str, MarketQuote] = {}
        for key, raw in zip(keys, values, strict=True):
            if isinstance(raw, bytes):
                try:
                    out[key] = MarketQuote.from_json(orjson.loads(raw))
                except (ValueError, KeyError, TypeError):
                    continue  # a foreign or older-format value: treat as a miss
        MARKET_DATA_CACHE.labels("redis", "hit").inc(len(out))
        MARKET_DATA_CACHE.labels("redis", "miss").inc(len(keys) - len(out))
        return out

    async def _remote_set(self, quotes: dict[str, MarketQuote]) -> None:
        if self.hub is None or not quotes:
            return
        hub = self.hub
        ttl_ms = max(int(self.ttl * 1000), 1)

        async def write() -> None:
            async with hub.client.pipeline(transaction=False) as pipe:
                for key, quote in quotes.items():
                    pipe.set(PREFIX + key, orjson.dumps(quote.to_json()), px=ttl_ms)
                await pipe.execute()

        try:
            await hub.run("mset", write)
        except RedisUnavailable:
            pass  # degraded: this worker's in-process cache still holds them

    async def put(self, provider: QuoteProvider, broker_id: uuid.UUID, quotes: Sequence[MarketQuote]) -> None:
        """Write-through after a push: the new prices replace cached ones at once (this worker, and Redis
        for the others; another worker's in-process copy lives out its TTL)."""
        entries = {cache_key(provider, broker_id, q.symbol): q for q in quotes}
        self._generation += 1  # a load running now may predate the push: do not keep its result
        for key in entries:
            self._loading.pop(key, None)
        self._remember(dict(entries))
        await self._remote_set(entries)

    def clear(self) -> None:
        self._generation += 1
        self.version += 1
        self._local.clear()


def _retrieved(task: asyncio.Future[Any]) -> None:
    # Every waiter may have gone (disconnects): mark the outcome seen so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()
