"""Result cache for calculations that cost more to compute than to look up.

Measured on this machine (perf-notes 4.4 and 6): one Redis round trip costs ~110-180 us of event-loop
time, GET + SET on a miss ~283 us; a position size costs ~30 us of CPU warm and 100-200 us inside a real
request. Caching cheap results makes them slower, so a request is looked up (and stored) only when its
priced cost (app.calculations.cost: engine CPU estimated from the validated input before it runs) is
at or above CACHE_MIN_US (300 us, the measured cost of the miss path). The decision is a function of
the input, never of a measured time, so a loaded machine cannot flip a cheap route into the cache. VaR
(Monte Carlo, historical with many observations), projections and large batches qualify; single
position sizes never do.

Two levels: a small in-process LRU (L1, per worker, no round trip) in front of Redis (L2, shared by
workers, `calc:{brokerId}:{inputHash}`, TTL `cache_ttl_seconds`). The input hash covers the route,
the canonical request (validated and re-serialised, so key order and whitespace do not matter), the
explain flag, the broker's config version and the conventions version: a config change bumps the
version, so stale entries are never read and nothing is ever deleted by wildcard. The broker id in
the key keeps tenants apart even for identical inputs.

Each response has its own `calculationId`: a hit is served with a fresh id swapped into the cached bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from app.calc.sizing import CONVENTIONS_VERSION
from app.observability.metrics import CACHE_LOOKUPS
from app.redisdb.hub import RedisHub, RedisUnavailable

# Cached value layout in Redis: a 48-byte head "<calculation id>|<rate-limit units>" padded with spaces,
# then the response bytes.
HEAD_LEN = 48


@dataclass(frozen=True, slots=True)
class Cached:
    payload: bytes
    calc_id: bytes  # the id inside payload, b"" when the response has none
    units: int = 1  # what the request costs in rate-limit units (a batch: one per 100 items)

    def fresh(self) -> tuple[bytes, str | None]:
        """The payload with a new calculation id (each response is its own calculation)."""
        if not self.calc_id:
            return self.payload, None
        new = str(uuid.uuid4())
        return self.payload.replace(self.calc_id, new.encode(), 1), new


class ResultCache:
    def __init__(self, hub: RedisHub | None, *, ttl_seconds: int, l1_entries: int,
                 l1_max_bytes: int = 32 * 1024 * 1024) -> None:
        self.hub = hub
        self.ttl_seconds = ttl_seconds
        self.l1_entries = l1_entries
        self.l1_max_bytes = l1_max_bytes
        self.l1_bytes = 0
        self.l1: OrderedDict[str, tuple[float, Cached]] = OrderedDict()
        self._writes: set[asyncio.Task[None]] = set()

    @staticmethod
    def key(broker_id: uuid.UUID, config_version: int, kind: str, canonical: bytes, explain: bool) -> str:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{kind}\0{int(explain)}\0{config_version}\0{CONVENTIONS_VERSION}\0".encode())
        h.update(canonical)
        return f"calc:{broker_id}:{h.hexdigest()}"

    async def get(self, key: str, now: float) -> Cached | None:
        hit = self.l1.get(key)
        if hit is not None:
            if hit[0] > now:
                self.l1.move_to_end(key)
                CACHE_LOOKUPS.labels("l1", "hit").inc()
                return hit[1]
            self._forget(key)
        CACHE_LOOKUPS.labels("l1", "miss").inc()
        if self.hub is None or not self.hub.available:
            return None
        try:
            raw = await self.hub.get(key)
        except RedisUnavailable:
            return None  # Redis down: the cache is bypassed, the calculation runs
        if raw is None or len(raw) < HEAD_LEN:
            CACHE_LOOKUPS.labels("redis", "miss").inc()
            return None
        CACHE_LOOKUPS.labels("redis", "hit").inc()
        calc_id, _, units = raw[:HEAD_LEN].strip().partition(b"|")
        cached = Cached(raw[HEAD_LEN:], calc_id, int(units) if units.isdigit() else 1)
        self._remember(key, cached, now)
        return cached

    def put(self, key: str, payload: bytes, calc_id: str | None, now: float, units: int = 1) -> None:
        cached = Cached(payload, calc_id.encode() if calc_id else b"", units)
        self._remember(key, cached, now)
        if self.hub is not None and self.hub.available:
            # Written after the response is on its way: the client never waits for the L2 write.
            task = asyncio.get_running_loop().create_task(self._write(key, cached))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, key: str, cached: Cached) -> None:
        assert self.hub is not None
        try:
            head = cached.calc_id + b"|" + str(cached.units).encode()
            await self.hub.set(key, head.ljust(HEAD_LEN) + cached.payload, self.ttl_seconds)
        except RedisUnavailable:
            pass

    async def drain(self) -> None:
        """Wait for pending L2 writes (shutdown, tests)."""
        await asyncio.gather(*self._writes, return_exceptions=True)

    def _remember(self, key: str, cached: Cached, now: float) -> None:
        size = len(cached.payload)
        if size > self.l1_max_bytes // 8:
            return  # one huge batch result must not evict the whole first level
        self._forget(key)
        self.l1[key] = (now + self.ttl_seconds, cached)
        self.l1_bytes += size
        while len(self.l1) > self.l1_entries or self.l1_bytes > self.l1_max_bytes:
            _, (_, old) = self.l1.popitem(last=False)
            self.l1_bytes -= len(old.payload)

    def _forget(self, key: str) -> None:
        old = self.l1.pop(key, None)
        if old is not None:
            self.l1_bytes -= len(old[1].payload)
